/** `taskvault run --watch`: the built CLI watching a temp project while the test edits real files. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, cliEnv, runCli, tempDir, writeTree } from '../support/helpers.js';

const DEBOUNCE = 200;
/** Long enough for a debounced event to have started a run if it was going to. */
const SETTLE_MS = DEBOUNCE + 450;
const WAIT_MS = 15_000;

/** The wrapped command: counts its runs, can be slowed down or made to fail, writes one output. */
const WORK = `import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
appendFileSync('counter.log', process.pid + '\\n');
const text = readdirSync('src').sort().map((f) => readFileSync('src/' + f, 'utf8')).join('|');
const delay = existsSync('delay.txt') ? Number(readFileSync('delay.txt', 'utf8')) : 0;
console.log('work start', process.pid, [...process.argv.slice(2), text].join(' '));
if (delay > 0) await new Promise((r) => setTimeout(r, delay));
if (text.includes('FAIL')) { console.error('work failed'); process.exit(1); }
mkdirSync('out', { recursive: true });
writeFileSync('out/result.txt', text);
console.log('built', JSON.stringify(text));
`;

const config = (args: string[] = [], inputs = ['src/**']) => `export default {
  tasks: {
    build: {
      command: ${JSON.stringify(['node', 'work.mjs', ...args])},
      inputs: ${JSON.stringify(inputs)},
      outputs: ['out/**'],
    },
  },
};
`;

function project(): string {
  const dir = tempDir('tv-watch-');
  return writeTree(dir, { 'work.mjs': WORK, 'taskvault.config.ts': config(), 'src/a.txt': 'v1' });
}

const runs = (dir: string): number =>
  existsSync(join(dir, 'counter.log'))
    ? readFileSync(join(dir, 'counter.log'), 'utf8').trim().split('\n').length
    : 0;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True once `pid` has exited (a zombie waiting for its reaper counts as exited), within a bound. */
async function goneWithin(pid: number, ms = 3000): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(20)) {
    if (!alive(pid)) return true;
    const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
    if (/^\d+ \(.*\) Z/.test(stat)) return true;
  }
  return false;
}

/** A running `taskvault run --watch` whose stdout/stderr lines can be awaited one match at a time. */
class WatchProcess {
  readonly child: ChildProcess;
  private readonly lines = { out: [] as string[], err: [] as string[] };
  private readonly cursor = { out: 0, err: 0 };
  private readonly partial = { out: '', err: '' };
  private notify: () => void = () => {};
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], cwd: string) {
    // A process group of its own (and no terminal), for ctrlC().
    this.child = spawn(process.execPath, [CLI, 'run', '--watch', '--debounce', String(DEBOUNCE), ...args], {
      cwd,
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    for (const stream of ['out', 'err'] as const) {
      const source = stream === 'out' ? this.child.stdout! : this.child.stderr!;
      source.on('data', (d: Buffer) => {
        const parts = (this.partial[stream] + d.toString()).split('\n');
        this.partial[stream] = parts.pop()!;
        this.lines[stream].push(...parts);
        this.notify();
      });
    }
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => resolve({ code, signal })),
    );
    this.exited.then(() => this.notify());
  }

  /** Waits for the next line (after the last one matched on that stream) that matches `re`. */
  async next(re: RegExp, stream: 'out' | 'err' = 'err', timeoutMs = WAIT_MS): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.lines[stream];
      for (let i = this.cursor[stream]; i < lines.length; i++) {
        const m = re.exec(lines[i]!);
        if (m) {
          this.cursor[stream] = i + 1;
          return m;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `no ${stream} line matching ${re} within ${timeoutMs} ms; stderr so far:\n${this.text('err')}`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.notify = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  /** Lines not yet consumed by next() that match `re` (to prove something did NOT happen). */
  unread(re: RegExp, stream: 'out' | 'err' = 'err'): string[] {
    return this.lines[stream].slice(this.cursor[stream]).filter((l) => re.test(l));
  }

  text(stream: 'out' | 'err'): string {
    return [...this.lines[stream], this.partial[stream]].join('\n');
  }

  private n = 0;

  /** Waits for the start line of the next cycle and checks why it started. */
  async start(why: RegExp): Promise<void> {
    this.n++;
    const line = (await this.next(new RegExp(`watch: #${this.n} .+? · (.*)$`)))[1]!;
    assert.match(line, why, `#${this.n} started: ${line}`);
  }

  /** Waits for the end line of the current cycle and checks its result. */
  async end(result: RegExp): Promise<void> {
    const line = (await this.next(new RegExp(`watch: #${this.n} (.*)$`)))[1]!;
    assert.match(line, result, `#${this.n} ended: ${line}`);
  }

  /** One whole cycle: its start line, its end line, and the loop going idle again. */
  async cycle(why: RegExp, result: RegExp): Promise<void> {
    await this.start(why);
    await this.end(result);
    await this.next(/watch: waiting for changes/);
  }

  /** After the debounce window and a margin, no further cycle has started. */
  async noNewCycle(): Promise<void> {
    await sleep(SETTLE_MS);
    assert.equal(this.unread(/watch: #\d+ /), []);
  }

  /** SIGINT to the whole process group, as a terminal sends it on Ctrl-C: the command gets it too. */
  ctrlC(): void {
    process.kill(-this.child.pid!, 'SIGINT');
  }

  kill(): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // All gone already.
    }
  }
}

const cacheTmpFiles = (dir: string): string[] => {
  const tmp = join(dir, '.taskvault', 'cache', 'tmp');
  return existsSync(tmp) ? readdirSync(tmp) : [];
};

test('watch: runs, reruns on input changes only, debounces, queues, reverts to hits, survives failures and config errors, stops on SIGINT', async () => {
  const dir = project();
  const w = new WatchProcess(['build'], dir);
  try {
    // Initial run.
    await w.cycle(/^initial run$/, /miss · exit 0/);
    assert.is(runs(dir), 1);
    assert.is(readFileSync(join(dir, 'out/result.txt'), 'utf8'), 'v1');

    // A change to an input: one run.
    writeFileSync(join(dir, 'src/a.txt'), 'v2');
    await w.cycle(/changed src\/a\.txt$/, /miss · exit 0/);
    assert.is(runs(dir), 2);

    // Changes outside the inputs (and to the outputs, and to files the cache ignores): nothing.
    writeTree(dir, { 'notes.txt': 'x', 'out/extra.txt': 'x', 'node_modules/m/index.js': 'x' });
    await w.noNewCycle();
    assert.is(runs(dir), 2);

    // A burst of changes: one run that lists them all.
    writeFileSync(join(dir, 'src/a.txt'), 'v3');
    writeFileSync(join(dir, 'src/b.txt'), 'b');
    writeFileSync(join(dir, 'src/c.txt'), 'c');
    await w.cycle(/changed src\/a\.txt, added src\/b\.txt, added src\/c\.txt$/, /miss · exit 0/);
    await w.noNewCycle();
    assert.is(runs(dir), 3);

    // Back to the state of run 2: a hit, the command does not run, its output comes back.
    writeFileSync(join(dir, 'src/a.txt'), 'v2');
    rmSync(join(dir, 'src/b.txt'));
    rmSync(join(dir, 'src/c.txt'));
    await w.cycle(/changed src\/a\.txt, removed src\/b\.txt, removed src\/c\.txt$/, /hit · exit 0/);
    assert.is(runs(dir), 3);
    assert.is(readFileSync(join(dir, 'out/result.txt'), 'utf8'), 'v2');
    await w.next(/^built "v2"$/, 'out'); // replayed stdout of run 2

    // Changes during a run: the run finishes, then exactly one more run follows.
    writeFileSync(join(dir, 'delay.txt'), '1500');
    writeFileSync(join(dir, 'src/a.txt'), 'slow1');
    await w.start(/changed src\/a\.txt$/);
    await w.next(/^work start \d+ slow1$/, 'out');
    writeFileSync(join(dir, 'src/a.txt'), 'slow2');
    await sleep(DEBOUNCE + 150); // a second, separate burst while the command still runs
    writeFileSync(join(dir, 'delay.txt'), '0');
    writeFileSync(join(dir, 'src/a.txt'), 'slow3');
    await w.next(/miss .* not cached: inputs changed while the command ran$/);
    await w.end(/miss · exit 0/);
    await w.cycle(/changed src\/a\.txt$/, /miss · exit 0/);
    await w.next(/^work start \d+ slow3$/, 'out');
    await w.noNewCycle();
    assert.is(runs(dir), 5);
    // The run whose inputs changed under it was not stored under its starting key.
    writeFileSync(join(dir, 'src/a.txt'), 'slow1');
    await w.cycle(/changed src\/a\.txt$/, /miss · exit 0/);
    assert.is(runs(dir), 6);

    // A failing command: reported, and the watcher carries on; fixing it recovers.
    writeFileSync(join(dir, 'src/a.txt'), 'FAIL');
    await w.cycle(/changed src\/a\.txt$/, /miss · exit 1/);
    writeFileSync(join(dir, 'src/a.txt'), 'fixed');
    await w.cycle(/changed src\/a\.txt$/, /miss · exit 0/);

    // The config is re-read when it changes: the new command line runs.
    writeFileSync(join(dir, 'taskvault.config.ts'), config(['--v2']));
    await w.cycle(/config re-read · changed taskvault\.config\.ts$/, /miss · exit 0/);
    await w.next(/^work start \d+ --v2 fixed$/, 'out');

    // A broken config: one error line, no run, still watching; an input change meanwhile waits too.
    writeFileSync(join(dir, 'taskvault.config.ts'), 'export default {{{');
    await w.next(/^taskvault: error: taskvault\.config\.ts: cannot load/);
    await w.next(/watch: waiting for changes/);
    writeFileSync(join(dir, 'src/a.txt'), 'while-broken');
    await w.next(/^taskvault: error: taskvault\.config\.ts: cannot load/);
    assert.is(runs(dir), 9);
    writeFileSync(join(dir, 'taskvault.config.ts'), config(['--v3']));
    await w.cycle(/config re-read · changed src\/a\.txt, changed taskvault\.config\.ts$/, /miss · exit 0/);
    await w.next(/^work start \d+ --v3 while-broken$/, 'out');
    assert.is(runs(dir), 10);

    // An editor's atomic save (write a temp file, rename it over the original): one change, one run.
    writeFileSync(join(dir, 'src/.a.txt.swp-tmp'), 'renamed');
    renameSync(join(dir, 'src/.a.txt.swp-tmp'), join(dir, 'src/a.txt'));
    await w.cycle(/changed src\/a\.txt$/, /miss · exit 0/);
    await w.noNewCycle();
    assert.is(runs(dir), 11);

    // New input globs in the config: the watcher follows them (lib/ did not exist before).
    writeFileSync(join(dir, 'taskvault.config.ts'), config(['--v3'], ['src/**', 'lib/**']));
    await w.cycle(/config re-read · changed taskvault\.config\.ts$/, /hit · exit 0/); // same inputs as before
    writeTree(dir, { 'lib/x.txt': 'x' });
    await w.cycle(/added lib\/x\.txt$/, /miss · exit 0/);
    assert.is(runs(dir), 12);

    // Ctrl-C during a run: the child stops, the watcher ends by SIGINT, nothing is cached for that state.
    writeFileSync(join(dir, 'delay.txt'), '20000');
    writeFileSync(join(dir, 'src/a.txt'), 'interrupted');
    await w.start(/changed src\/a\.txt$/);
    const pid = Number((await w.next(/^work start (\d+) --v3 interrupted$/, 'out'))[1]);
    assert.ok(alive(pid));
    w.ctrlC();
    const exit = await w.exited;
    assert.equal(exit, { code: null, signal: 'SIGINT' });
    await w.next(/watch: stopped/);
    assert.not.ok(alive(pid), 'the command was left running');
    writeFileSync(join(dir, 'delay.txt'), '0');
    const dry = await runCli(['run', 'build', '--dry-run'], { cwd: dir });
    assert.is(dry.code, 0, dry.err);
    assert.match(dry.out, / miss\n$/);
    assert.equal(cacheTmpFiles(dir), []);
  } finally {
    w.kill();
  }
});

test('watch --poll --restart: polling notices changes; a change during a run cancels it, uncached', async () => {
  const dir = project();
  rmSync(join(dir, 'taskvault.config.ts'));
  writeTree(dir, { '.git/HEAD': 'ref: refs/heads/main\n' }); // the project root without a config
  const w = new WatchProcess(
    // Through the shell, with node as a grandchild: --restart must stop the whole tree.
    ['--poll', '--restart', '--inputs', 'src/**', '--outputs', 'out/**', '--', 'node work.mjs && true'],
    dir,
  );
  try {
    await w.cycle(/initial run/, /miss · exit 0/);
    writeFileSync(join(dir, 'src/a.txt'), 'polled');
    await w.cycle(/changed src\/a\.txt$/, /miss · exit 0/);

    writeFileSync(join(dir, 'delay.txt'), '20000');
    writeFileSync(join(dir, 'src/a.txt'), 'to-cancel');
    await w.start(/changed src\/a\.txt$/);
    const pid = Number((await w.next(/^work start (\d+) to-cancel$/, 'out'))[1]);
    writeFileSync(join(dir, 'delay.txt'), '0');
    writeFileSync(join(dir, 'src/b.txt'), 'newer');
    await w.end(/cancelled for newer changes/);
    assert.ok(await goneWithin(pid), 'the cancelled command is still running');
    await w.cycle(/added src\/b\.txt$/, /miss · exit 0/);
    await w.next(/^built "to-cancel\|newer"$/, 'out');
    assert.is(runs(dir), 4);

    // The cancelled state was not cached: going back to it runs the command again.
    rmSync(join(dir, 'src/b.txt'));
    await w.cycle(/removed src\/b\.txt$/, /miss · exit 0/);
    assert.is(runs(dir), 5);

    // Ctrl-C while idle.
    w.ctrlC();
    assert.equal(await w.exited, { code: null, signal: 'SIGINT' });
    assert.equal(cacheTmpFiles(dir), []);
  } finally {
    w.kill();
  }
});

test('watch: flag mistakes and a config broken at start are one-line errors', async () => {
  const dir = project();
  const restart = await runCli(['run', '--restart', '--', 'node', 'work.mjs'], { cwd: dir });
  assert.is(restart.code, 2);
  assert.match(restart.err, /--restart only applies with --watch/);
  const debounce = await runCli(['run', '--watch', '--debounce', 'soon', 'build'], { cwd: dir });
  assert.is(debounce.code, 2);
  assert.match(debounce.err, /invalid --debounce/);
  writeFileSync(join(dir, 'taskvault.config.ts'), 'export default {{{');
  const broken = await runCli(['run', '--watch', 'build'], { cwd: dir });
  assert.is(broken.code, 78);
  assert.is(broken.err.trim().split('\n').length, 1, broken.err);
  assert.is(runs(dir), 0);
});

test.run();

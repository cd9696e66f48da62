/**
 * Signals around a run behave as they do around the bare command: a Ctrl-C (which a terminal sends
 * to its whole foreground process group, the command included) reaches the command once, not once
 * from the terminal and once more from TaskVault; and a command killed by a signal takes TaskVault
 * with it by that same signal, so that whoever waits for it (a shell's loop) sees a death by a
 * signal and not an exit code of 128 + N. Real terminals (script(1) gives one), process groups and
 * child processes; the rule is in docs/guarantees.md (guarantee 10).
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, cliEnv, runCli, tempDir, writeTree } from '../support/helpers.js';

/**
 * Counts the SIGINTs it gets, like a tool that cleans up on a first Ctrl-C and quits at once on a
 * second: the first starts a clean exit 400 ms later, a second one quits there and then.
 */
const COUNTER = `
let n = 0;
process.on('SIGINT', () => {
  n++;
  process.stdout.write('got SIGINT ' + n + '\\n');
  if (n > 1) { process.stdout.write('quit at once\\n'); process.exit(9); }
  setTimeout(() => { process.stdout.write('clean exit\\n'); process.exit(0); }, 400);
});
process.stdout.write('READY\\n');
setTimeout(() => {}, 30000);
`;

interface Ended {
  out: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

function project(): string {
  return writeTree(tempDir('tv-signals-'), { 'counter.js': COUNTER });
}

/** `taskvault run` as a shell word list, with a cache of its own (each call a miss). */
const tv = (dir: string, command: string) =>
  `"${process.execPath}" "${CLI}" run -q --cache-dir "${join(dir, `cache-${Math.random()}`)}" -- ${command}`;

/**
 * Collects `child`'s stdout until it closes; `act` runs once, 100 ms after READY appears, and
 * `kill` if it has not ended within 30 s.
 */
function afterReady(
  child: ChildProcessByStdio<null | Writable, Readable, null>,
  act: () => void,
  kill: () => void,
): Promise<Ended> {
  return new Promise((resolve, reject) => {
    let out = '';
    let acted = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (acted || !out.includes('READY')) return;
      acted = true;
      setTimeout(act, 100);
    });
    const timer = setTimeout(kill, 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ out, code, signal });
    });
  });
}

/**
 * Runs `command` in a terminal of its own (script(1), util-linux) and presses Ctrl-C 100 ms after
 * it prints READY; the terminal's output (its \r\n made \n) and script's exit code, which is
 * 128 + N when the command died of signal N.
 */
async function ctrlC(command: string, cwd: string): Promise<Ended> {
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], {
    cwd,
    env: cliEnv({ SHELL: '/bin/bash' }),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const r = await afterReady(
    child,
    () => child.stdin.write('\x03'),
    () => child.kill('SIGKILL'),
  );
  return { ...r, out: r.out.replace(/\r\n/g, '\n') };
}

/**
 * Starts argv as the leader of a new process group without a terminal and sends `signal` to the
 * whole group 100 ms after it prints READY, as a terminal does on Ctrl-C (or a supervisor that
 * stops what it started by its group).
 */
function signalGroup(argv: string[], cwd: string, signal: NodeJS.Signals = 'SIGINT'): Promise<Ended> {
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd,
    env: cliEnv(),
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return afterReady(
    child,
    () => process.kill(-child.pid!, signal),
    () => process.kill(-child.pid!, 'SIGKILL'),
  );
}

/** The command got the one Ctrl-C and cleaned up. */
function gotOnce(r: Ended, what: string): void {
  assert.match(r.out, /got SIGINT 1\n/, `${what}: the command got SIGINT`);
  assert.not.match(r.out, /got SIGINT 2/, `${what}: ... once, not twice:\n${r.out}`);
  assert.match(r.out, /clean exit\n/, `${what}: and cleaned up`);
}

test('Ctrl-C in a terminal reaches the command once, as without taskvault', async () => {
  const dir = project();
  gotOnce(await ctrlC('node counter.js', dir), 'bare');
  // Twice each: a Ctrl-C and the one passed on may arrive together and count once.
  for (let round = 1; round <= 2; round++) {
    const alone = await ctrlC(tv(dir, 'node counter.js'), dir);
    gotOnce(alone, `taskvault, round ${round}`);
    assert.is(alone.code, 0, 'the exit code of the command');
    // Under a shell: the shell leads the terminal's foreground group, taskvault is one of it.
    const underShell = await ctrlC(`bash -c '${tv(dir, 'node counter.js')}; echo "after $?"'`, dir);
    gotOnce(underShell, `taskvault under bash, round ${round}`);
    assert.match(underShell.out, /after 0\n/, 'the command cleaned up and exited 0: the shell goes on');
  }
});

test('a SIGINT to the process group taskvault leads, without a terminal, reaches the command once', async () => {
  const dir = project();
  gotOnce(await signalGroup(['node', 'counter.js'], dir), 'bare');
  const run = ['node', CLI, 'run', '-q'];
  for (let round = 1; round <= 2; round++) {
    const miss = await signalGroup(
      [...run, '--cache-dir', join(dir, `c${round}`), '--', 'node', 'counter.js'],
      dir,
    );
    gotOnce(miss, `a miss, round ${round}`);
    assert.is(miss.code, 0);
    const uncached = await signalGroup([...run, '--no-cache', '--', 'node', 'counter.js'], dir);
    gotOnce(uncached, `--no-cache, round ${round}`);
  }
});

test('a command killed by a signal kills taskvault by that signal, once all is said', async () => {
  const dir = tempDir('tv-signals-');
  for (const flags of [[], ['--no-cache']]) {
    const args = ['run', ...flags, '--', 'sh', '-c', 'echo partial; kill -TERM $$'];
    const r = await runCli(args, { cwd: dir });
    assert.is(r.signal, 'SIGTERM', `${flags.join(' ')}: died of SIGTERM (exit code ${r.code})`);
    assert.is(r.code, null);
    assert.is(r.out, 'partial\n', 'the output came through first');
    if (flags.length === 0) {
      assert.match(r.err, /not cached: the run was interrupted \(SIGTERM\)/, 'the summary came first');
      const dry = await runCli(['run', '--dry-run', ...args.slice(1)], { cwd: dir });
      assert.match(dry.out, / miss\n$/, 'nothing stored');
    } else assert.match(r.err, /ran uncached/);
  }

  // SIGPIPE, which Node itself ignores: `taskvault run -- yes | head -1` ends as `yes | head -1`.
  const piped = await new Promise<Ended>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'run', '-q', '--no-cache', '--', 'yes'], {
      cwd: dir,
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child.stdout.once('data', () => child.stdout.destroy());
    child.on('close', (code, signal) => resolve({ out: '', code, signal }));
  });
  assert.is(piped.signal, 'SIGPIPE', `died of SIGPIPE (exit code ${piped.code})`);

  // A signal whose default action dumps core is not raised again (TaskVault would leave a core
  // file of its own): 128 + N.
  const quit = await runCli(['run', '--no-cache', '--', 'sh', '-c', 'ulimit -c 0; kill -QUIT $$'], {
    cwd: dir,
  });
  assert.is(quit.signal, null);
  assert.is(quit.code, 131);
});

test('a shell loop stops at Ctrl-C inside taskvault, as it does around the bare command', async () => {
  const dir = tempDir('tv-signals-');
  const loop = (command: string) => `for i in 1 2 3; do ${command}; echo "after $i"; done`;
  const sleeper = `sh -c "echo READY; exec sleep 5"`;
  const bare = await signalGroup(['bash', '-c', loop(sleeper)], dir);
  assert.is(bare.signal, 'SIGINT', 'bare: bash died of SIGINT');
  assert.not.match(bare.out, /after/);

  const grouped = await signalGroup(['bash', '-c', loop(tv(dir, sleeper))], dir);
  assert.is(grouped.signal, 'SIGINT', `bash died of SIGINT (exit code ${grouped.code}):\n${grouped.out}`);
  assert.not.match(grouped.out, /after/, 'and ran nothing after');

  const terminal = await ctrlC(`bash -c '${loop(tv(dir, sleeper))}'`, dir);
  assert.is(terminal.code, 130, `in a terminal, bash died of SIGINT:\n${terminal.out}`);
  assert.not.match(terminal.out, /after/);
});

test.run();

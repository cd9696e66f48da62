/**
 * When an SDK save counts as done (docs/guarantees.md, "Durability of a save"). `fast` (the
 * default for results) acknowledges a save once it is in the process's pending journal; `strict`
 * once its blob is fsynced and the index flushed. Real child processes on a real cache: a save
 * acknowledged and then SIGKILLed at once is found by the next process, in either mode.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, REPO, runCli, runProcess, runTraced, tempDir, writeTree } from '../support/helpers.js';

const SDK = pathToFileURL(join(REPO, 'dist', 'index.js')).href;

function project(extra: Record<string, string> = {}): string {
  return writeTree(tempDir('tv-durability-'), { '.git/HEAD': 'ref: refs/heads/main\n', ...extra });
}

/**
 * A child that saves `count` results (value i = "value <i>" repeated), prints each key once the
 * save returned, then kills itself with SIGKILL: no close, no flush, nothing after the ack.
 */
function saveThenDie(count: number, durability?: string): string {
  return `
    const { Client } = await import(${JSON.stringify(SDK)});
    const tv = new Client(${durability ? `{ durability: ${JSON.stringify(durability)} }` : ''});
    const keys = [];
    for (let i = 0; i < ${count}; i++)
      keys.push(await tv.cacheResult('t', 'input ' + i, ('value ' + i + ' ').repeat(100)));
    await tv.cacheResult('t', 'burst', Buffer.alloc(0)); // the last one: killed right after its ack
    process.stdout.write(JSON.stringify(keys), () => process.kill(process.pid, 'SIGKILL'));
  `;
}

for (const mode of ['fast', 'strict', undefined]) {
  test(`durability ${mode ?? '(default)'}: saves acknowledged before a SIGKILL are all found`, async () => {
    const dir = project();
    const r = await runProcess(process.execPath, ['--input-type=module', '-e', saveThenDie(50, mode)], {
      cwd: dir,
    });
    assert.is(r.signal, 'SIGKILL', r.err);
    const keys = JSON.parse(r.out) as string[];
    assert.is(keys.length, 50);
    // Another process, the CLI: every value, byte for byte.
    for (const i of [0, 17, 49]) {
      writeFileSync(join(dir, 'in.txt'), `input ${i}`);
      const got = await runCli(['cache', 'get', 't', 'in.txt', 'out.txt'], { cwd: dir });
      assert.is(got.code, 0, got.err);
      assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), `value ${i} `.repeat(100));
    }
    const stats = await runCli(['stats', '--json'], { cwd: dir });
    assert.is(JSON.parse(stats.out).entries, 51);
    // Whatever the killed process left pending was committed and its journal removed.
    const pending = join(dir, '.taskvault/cache/pending');
    assert.equal(
      readdirSafe(pending).filter((n) => n.endsWith('.journal')),
      [],
    );
  });
}

const readdirSafe = (d: string): string[] => {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
};

test('a journal left by a killed process is committed by the next open, cut lines skipped', async () => {
  const dir = project();
  // The first process dies before its background commit could run: it saves, then exits hard
  // in the same turn (process.reallyExit skips everything), leaving its journal.
  const code = `
    const { Client } = await import(${JSON.stringify(SDK)});
    const tv = new Client();
    await tv.cacheResult('t', 'warm', 'w'); // opens the cache
    const p = tv.cacheResult('t', 'a', 'value a');
    await p;
    process.reallyExit(9);
  `;
  const r = await runProcess(process.execPath, ['--input-type=module', '-e', code], { cwd: dir });
  assert.is(r.code, 9, r.err);
  const pending = join(dir, '.taskvault/cache/pending');
  const journals = readdirSafe(pending).filter((n) => n.endsWith('.journal'));
  assert.is(journals.length, 1, 'the killed process left its journal');
  // A power loss could leave a cut line at its end: skipped, the rest committed.
  writeFileSync(join(pending, journals[0]!), '{"entry":{"key":"ab', { flag: 'a' });
  writeFileSync(join(dir, 'in.txt'), 'a');
  const generation = join(dir, '.taskvault/cache/generation');
  const before = readFileSync(generation, 'utf8');
  const got = await runCli(['cache', 'get', 't', 'in.txt', 'out.txt'], { cwd: dir });
  assert.is.not(readFileSync(generation, 'utf8'), before, 'the replayed commit rewrote the generation');
  assert.is(got.code, 0, got.err);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'value a');
  assert.equal(readdirSafe(pending), []);
});

test('strict flushes the result before the save returns (blob file or index); fast does not', async () => {
  const traced = async (durability: string, bytes: number) => {
    const dir = project();
    const code = `
      const { Client } = await import(${JSON.stringify(SDK)});
      const tv = new Client();
      await tv.getCachedResult('t', 'opens the cache');
      process.stdout.write('SAVING\\n');
      await tv.cacheResult('t', 'in', 'v'.repeat(${bytes}));
      process.stdout.write('ACKED\\n');
      await tv.close();
    `;
    const r = await runTraced(
      'fsync,fdatasync,write',
      [process.execPath, '--input-type=module', '-e', code],
      {
        cwd: dir,
        env: { TASKVAULT_DURABILITY: durability },
      },
    );
    assert.is(r.code, 0, r.err);
    const { lines } = r;
    const acked = lines.findIndex((l) => /write\(1<[^>]*>, "ACKED/.test(l));
    const saving = lines.findIndex((l) => /write\(1<[^>]*>, "SAVING/.test(l));
    assert.ok(saving > 0 && acked > saving, 'the save was not traced');
    // Only what happens during the save counts: opening the cache flushes the index too.
    const during = (re: RegExp) => lines.findIndex((l, i) => i > saving && re.test(l));
    const synced = during(/f(data)?sync\(\d+<[^>]*\/blobs\/[0-9a-f]{2}\/[0-9a-f]+>/);
    const index = during(/f(data)?sync\(\d+<[^>]*\/index\/data\.mdb>/);
    return { acked, synced, index };
  };
  // Over 16 KB a result is a blob file; at most that, its bytes go in the index with its entry.
  const strict = await traced('strict', 20_000);
  assert.ok(strict.synced >= 0 && strict.synced < strict.acked, 'strict: blob fsynced before the ack');
  const small = await traced('strict', 9);
  assert.is(small.synced, -1, 'strict, small: no blob file to flush');
  assert.ok(small.index >= 0 && small.index < small.acked, 'strict, small: index flushed before the ack');
  const fast = await traced('fast', 20_000);
  assert.is(fast.synced, -1, 'fast: no blob fsync');
});

test('cache save, strict: a small result (in the index) is flushed before it says Cached', async () => {
  const dir = project();
  writeFileSync(join(dir, 'in.txt'), 'in');
  writeFileSync(join(dir, 'out.txt'), 'small');
  // A first save makes the index: opening it again then writes nothing of its own.
  assert.is((await runCli(['cache', 'save', 'first', 'in.txt', 'in.txt'], { cwd: dir })).code, 0);
  // Each flush is held up 300 ms, so that a save that did not wait for it would speak first.
  const r = await runTraced(
    'fdatasync,fsync,write',
    [process.execPath, CLI, 'cache', 'save', 't', 'in.txt', 'out.txt'],
    { cwd: dir, env: { TASKVAULT_DURABILITY: 'strict' } },
    ['-e', 'inject=fdatasync,fsync:delay_exit=300000'],
  );
  assert.is(r.code, 0, r.err);
  const said = r.lines.findIndex((l) => /write\(1<[^>]*>, ".*Cached t /.test(l));
  assert.ok(said > 0, `the line was not traced:\n${r.lines.join('\n')}`);
  // Done: the whole call on one line, or its "resumed" half after another thread's call.
  const started = r.lines.findIndex((l) => /f(data)?sync\(\d+<[^>]*\/index\/data\.mdb>/.test(l));
  assert.ok(started >= 0, 'the index was flushed');
  const pid = r.lines[started]!.split(' ')[0];
  const done = r.lines[started]!.includes('unfinished')
    ? r.lines.findIndex((l, i) => i > started && l.startsWith(`${pid} `) && /resumed>.* = 0/.test(l))
    : started;
  assert.ok(done >= 0 && done < said, 'the flush had returned before the save said Cached');
});

test('a durability that is not strict or fast is one clear error', async () => {
  const dir = project({ 'taskvault.config.json': '{"durability": "eventually"}' });
  writeFileSync(join(dir, 'in.txt'), 'x');
  const r = await runCli(['cache', 'save', 't', 'in.txt', 'in.txt'], { cwd: dir });
  assert.is.not(r.code, 0);
  assert.match(r.err, /durability/);
  assert.not.match(r.err, /\n\s+at /);
  const env = await runCli(['cache', 'save', 't', 'in.txt', 'in.txt'], {
    cwd: project(),
    env: { TASKVAULT_DURABILITY: 'sometimes' },
  });
  assert.is.not(env.code, 0);
  assert.match(env.err, /TASKVAULT_DURABILITY: unknown durability 'sometimes'/);
});

test.run();

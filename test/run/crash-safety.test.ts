/**
 * Invariants 1, 2 and 6 under kill -9 and signals: whatever moment TaskVault dies at, a later lookup
 * misses or restores a complete, verified result; interrupted runs are never cached.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditLines, executions, sleep, spawnCli } from '../support/fault-helpers.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

const FILES = 24;
const FILE_BYTES = 96 * 1024;

/** A command that writes FILES outputs derived from src/in.txt, logs, and prints a marker when done. */
const GEN = `
const fs = require('fs');
const seed = fs.readFileSync('src/in.txt', 'utf8');
fs.appendFileSync(process.env.COUNTER, 'x\\n');
fs.mkdirSync('out', { recursive: true });
for (let i = 0; i < ${FILES}; i++) fs.writeFileSync('out/f' + i + '.txt', (seed + ':' + i + '\\n').repeat(${FILE_BYTES} / 16).slice(0, ${FILE_BYTES}));
process.stdout.write('log for ' + seed + '\\n'.repeat(1) + 'GENERATED\\n');
`;

function expected(seed: string, i: number): string {
  return `${seed}:${i}\n`.repeat(FILE_BYTES / 16).slice(0, FILE_BYTES);
}

function project() {
  const dir = tempDir('tv-crash-');
  writeTree(dir, { 'gen.js': GEN, 'src/in.txt': 'seed' });
  return { dir, counter: join(dir, '..', `${dir.split('/').pop()}.counter`) };
}

const ARGS = [
  'run',
  '--inputs',
  'src/**',
  '--inputs',
  'gen.js',
  '--outputs',
  'out/**',
  '--',
  'node',
  'gen.js',
];

function assertOutputs(dir: string, seed: string) {
  for (let i = 0; i < FILES; i++) {
    const p = join(dir, 'out', `f${i}.txt`);
    assert.ok(existsSync(p), `out/f${i}.txt restored`);
    assert.ok(readFileSync(p, 'utf8') === expected(seed, i), `out/f${i}.txt complete and correct`);
  }
  const stray = readdirSync(join(dir, 'out')).filter((n) => n.includes('.tv-'));
  assert.equal(stray, [], 'no restore temp files left beside outputs');
}

test('kill -9 during snapshot/commit and during restore: every later lookup misses or restores a complete result', async () => {
  const { dir, counter } = project();
  const env = { COUNTER: counter };
  const maxIterations = 24;
  const deadline = Date.now() + 40_000;
  let iterations = 0;
  let killedMidRun = 0;
  let laterHits = 0;
  let killedMidRestore = 0;
  for (let i = 0; i < maxIterations && Date.now() < deadline; i++) {
    const seed = `seed-${i}`;
    writeFileSync(join(dir, 'src', 'in.txt'), seed);
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    // 1. Kill the miss run at a random moment after the command finished: snapshot or commit.
    const miss = spawnCli(ARGS, dir, env);
    assert.ok(await miss.waitFor('GENERATED'), 'command ran');
    await sleep(Math.random() * 150);
    miss.child.kill('SIGKILL');
    const ended = await miss.done;
    if (ended.signal === 'SIGKILL') killedMidRun++;

    // 2. Outputs gone: the next run must restore everything intact, or run the command again.
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    const before = executions(counter);
    const next = await runCli(ARGS, { cwd: dir, env });
    assert.is(next.code, 0, next.err);
    assert.ok(next.out.includes(`log for ${seed}`), 'stdout replayed or produced');
    if (executions(counter) === before) laterHits++;
    assertOutputs(dir, seed);

    // 3. Kill a hit while it restores, then the next hit must still produce complete files.
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    // Kill it as soon as the restore has started writing into out/ (or after a random delay).
    const hit = spawnCli(ARGS, dir, env);
    const killAt = Date.now() + 200 + Math.random() * 800;
    while (Date.now() < killAt && hit.child.exitCode === null) {
      if (existsSync(join(dir, 'out')) && readdirSync(join(dir, 'out')).length > 0) break;
      await sleep(2);
    }
    hit.child.kill('SIGKILL');
    if ((await hit.done).signal === 'SIGKILL') {
      const names = existsSync(join(dir, 'out')) ? readdirSync(join(dir, 'out')) : [];
      if (names.length > 0 && (names.length < FILES || names.some((n) => n.includes('.tv-'))))
        killedMidRestore++;
    }
    const again = await runCli(ARGS, { cwd: dir, env });
    assert.is(again.code, 0, again.err);
    assertOutputs(dir, seed);
    iterations++;
  }
  // The whole store checks out: every committed entry has all its blobs, each matching its hash.
  const verify = await runCli(['verify'], { cwd: dir });
  assert.is(verify.code, 0, verify.out + verify.err);
  assert.match(verify.out, / 0 broken/);
  console.log(
    `crash safety: ${iterations} iterations survived (${killedMidRun} miss runs killed before exiting, ${laterHits} later lookups were hits, ${killedMidRestore} restores killed half-way)`,
  );
  assert.ok(iterations >= 3, `enough iterations ran (${iterations})`);
  assert.ok(killedMidRun > 0, 'at least one kill landed mid-run');
});

/** A command that records the signal it got and exits 0, so only TaskVault can decide not to cache. */
const TRAP = `
const fs = require('fs');
fs.appendFileSync(process.env.COUNTER, 'x\\n');
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { fs.writeFileSync('got-signal', s); fs.writeFileSync('out.txt', 'partial'); process.exit(0); });
console.log('READY ' + process.ppid);
setTimeout(() => { fs.writeFileSync('out.txt', 'complete'); process.exit(0); }, 20000);
`;

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} to taskvault is forwarded to the command, and the run is never cached`, async () => {
    const dir = tempDir('tv-signal-');
    writeTree(dir, { 'trap.js': TRAP, 'src/in.txt': 'x' });
    const counter = join(dir, '..', `${dir.split('/').pop()}.counter`);
    const args = ['run', '--inputs', 'src/**', '--outputs', 'out.txt', '--', 'node', 'trap.js'];
    // Sent to taskvault alone (a `kill -INT <pid>`), not to its process group.
    const run = spawnCli(args, dir, { COUNTER: counter }, { alone: true });
    assert.ok(await run.waitFor('READY'), 'child started');
    process.kill(Number(/READY (\d+)/.exec(run.out())?.[1]), signal);
    const ended = await run.done;
    assert.is(readFileSync(join(dir, 'got-signal'), 'utf8'), signal, 'the child received the signal');
    assert.is(ended.code, 0, 'the exit code of the child passes through');
    assert.match(run.err(), /interrupted/);
    assert.not.ok(
      auditLines(join(dir, '.taskvault', 'cache')).some((l) => l.includes(' SAVE ')),
      'nothing saved',
    );
    const dry = await runCli([...args.slice(0, -3), '--dry-run', '--', 'node', 'trap.js'], { cwd: dir });
    assert.match(dry.out, / miss\n$/, 'the interrupted run left no entry');
  });
}

test.run();

/**
 * Invariant 5: many processes on one cache directory never corrupt it, and identical runs that
 * start together execute the command once (single-flight); a dead lock holder never blocks.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { executions, sleep, spawnCli, warnings } from '../support/fault-helpers.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

/** Appends to the counter, writes its output, then holds until the test creates the release file. */
const HOLD = `
const fs = require('fs');
const [task] = process.argv.slice(2);
fs.appendFileSync(process.env.COUNTER + '.' + task, 'x\\n');
const seed = fs.readFileSync('src/in.txt', 'utf8');
fs.mkdirSync('out-' + task, { recursive: true });
fs.writeFileSync('out-' + task + '/result.txt', task + ':' + seed);
const until = Date.now() + 20000;
const wait = () => {
  if (!process.env.RELEASE || fs.existsSync(process.env.RELEASE) || Date.now() > until) {
    console.log('result ' + task + ' ' + seed);
    process.exitCode = Number(process.env.EXIT_CODE || 0);
  } else setTimeout(wait, 20);
};
wait();
`;

function project() {
  const dir = tempDir('tv-conc-');
  writeTree(dir, { 'hold.js': HOLD, 'src/in.txt': 'v0' });
  const side = tempDir('tv-conc-side-');
  return { dir, counter: join(side, 'counter'), release: join(side, 'release') };
}

const args = (task: string) => [
  'run',
  '--inputs',
  'src/**',
  '--inputs',
  'hold.js',
  '--outputs',
  `out-${task}/**`,
  '--',
  'node',
  'hold.js',
  task,
];

test('8 identical runs started together execute the command once; the others wait, say so, and restore', async () => {
  const { dir, counter, release } = project();
  const N = 8;
  const ROUNDS = 3;
  for (let round = 0; round < ROUNDS; round++) {
    const seed = `v${round}`;
    writeFileSync(join(dir, 'src', 'in.txt'), seed);
    const releaseFile = `${release}.${round}`;
    const procs = Array.from({ length: N }, () =>
      spawnCli(args('a'), dir, { COUNTER: counter, RELEASE: releaseFile }),
    );
    // Hold the leader until every other process is visibly waiting: then "once" proves the lock.
    const deadline = Date.now() + 30_000;
    while (procs.filter((p) => p.err().includes('waiting for')).length < N - 1 && Date.now() < deadline)
      await sleep(50);
    writeFileSync(releaseFile, '');
    const ends = await Promise.all(procs.map((p) => p.done));
    for (const [i, e] of ends.entries()) {
      assert.is(e.code, 0, procs[i]!.err());
      assert.ok(procs[i]!.out().includes(`result a ${seed}`), 'every process printed the result');
    }
    assert.is(executions(`${counter}.a`), round + 1, `round ${round}: the command ran exactly once`);
    const waiting = procs.map((p) =>
      p
        .err()
        .split('\n')
        .filter((l) => l.includes('waiting for')),
    );
    assert.is(
      waiting.filter((w) => w.length === 1).length,
      N - 1,
      'the N-1 others each printed one waiting line',
    );
    assert.match(
      waiting.flat()[0]!,
      /waiting for node hold\.js a \([0-9a-f]{12}\): already running in pid \d+/,
    );
    assert.is(procs.filter((p) => /\bhit\b/.test(p.err())).length, N - 1, 'the waiters restored the result');
    assert.is(readFileSync(join(dir, 'out-a', 'result.txt'), 'utf8'), `a:${seed}`);
  }
  console.log(`single-flight: ${N} processes x ${ROUNDS} rounds, command executed ${ROUNDS} times`);
});

test('8 processes, 4 different tasks, 3 rounds on one cache: no errors, correct outputs, store verifies', async () => {
  const { dir, counter } = project();
  const tasks = ['p', 'q', 'r', 's'];
  const ROUNDS = 3;
  for (let round = 0; round < ROUNDS; round++) {
    const seed = `m${round}`;
    writeFileSync(join(dir, 'src', 'in.txt'), seed);
    const procs = [...tasks, ...tasks].map((t) => ({ t, p: spawnCli(args(t), dir, { COUNTER: counter }) }));
    const ends = await Promise.all(procs.map(({ p }) => p.done));
    for (const [i, e] of ends.entries()) {
      const { t, p } = procs[i]!;
      assert.is(e.code, 0, p.err());
      assert.ok(p.out().includes(`result ${t} ${seed}`), p.out());
      assert.equal(warnings(p.err()), [], 'no warnings');
    }
    for (const t of tasks) {
      assert.is(executions(`${counter}.${t}`), round + 1, `task ${t} ran once in round ${round}`);
      assert.is(readFileSync(join(dir, `out-${t}`, 'result.txt'), 'utf8'), `${t}:${seed}`);
    }
  }
  const verify = await runCli(['verify'], { cwd: dir });
  assert.is(verify.code, 0, verify.out);
  assert.match(verify.out, /checked 12 entries, .*: 0 broken/, verify.out);
  console.log(`concurrency: 8 processes x ${ROUNDS} rounds (4 tasks), 0 errors, store verified`);
});

async function keyOf(dir: string, task: string): Promise<string> {
  const dry = await runCli([...args(task).slice(0, -4), '--dry-run', '--', 'node', 'hold.js', task], {
    cwd: dir,
  });
  return dry.out.split(' ')[0]!;
}

test('a lock left by a dead process (kill -9) does not block the next run', async () => {
  const { dir, counter } = project();
  const key = await keyOf(dir, 'd');
  const dead = spawn(process.execPath, ['-e', '']);
  const pid = dead.pid!;
  await new Promise((r) => dead.on('close', r));
  const locks = join(dir, '.taskvault', 'cache', 'locks');
  mkdirSync(locks, { recursive: true });
  writeFileSync(
    join(locks, key),
    JSON.stringify({ pid, host: hostname(), startedAt: Date.now(), nonce: 'dead' }),
  );
  const r = await runCli(args('d'), { cwd: dir, env: { COUNTER: counter, TASKVAULT_LOCK_TIMEOUT: '60s' } });
  assert.is(r.code, 0, r.err);
  assert.not.match(r.err, /gave up waiting/);
  assert.is(executions(`${counter}.d`), 1);
  assert.not.ok(existsSync(join(locks, key)), 'the stale lock was broken and ours released');
});

test('a holder that never finishes: waiting is bounded, then the command runs anyway with one warning', async () => {
  const { dir, counter } = project();
  const key = await keyOf(dir, 'h');
  const locks = join(dir, '.taskvault', 'cache', 'locks');
  mkdirSync(locks, { recursive: true });
  // This test process is alive, so the lock is not stale; only the timeout can end the wait.
  writeFileSync(
    join(locks, key),
    JSON.stringify({ pid: process.pid, host: hostname(), startedAt: Date.now(), nonce: 'live' }),
  );
  const r = await runCli(args('h'), {
    cwd: dir,
    env: { COUNTER: counter, TASKVAULT_LOCK_TIMEOUT: '1s', EXIT_CODE: '3' },
  });
  assert.is(r.code, 3, 'exit code passes through');
  assert.match(r.err, /waiting for .*already running in pid \d+/);
  assert.is(warnings(r.err).length, 1, r.err);
  assert.match(warnings(r.err)[0]!, /gave up waiting .* running the command anyway/);
  assert.is(executions(`${counter}.h`), 1);
  assert.ok(existsSync(join(locks, key)), "someone else's live lock is left alone");
});

test.run();

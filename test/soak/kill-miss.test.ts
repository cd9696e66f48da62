/**
 * Issue 22 soak: kill -9 of taskvault at a random point of a miss, round after round. The next run
 * never crashes and never serves a partial result: it restores the complete result or runs the
 * command again. `npm test` runs 6 rounds; by hand: SOAK_ROUNDS=500.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { executions, sleep, spawnCli } from '../support/fault-helpers.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';
import { randomInt, soakReport, soakRounds, soakTimeUp } from '../support/soak.js';

const FILES = 12;
const BYTES = 64 * 1024;
const content = (seed: string, i: number) => `${seed}:${i}\n`.repeat(BYTES).slice(0, BYTES);

/** Writes FILES outputs and a long stdout from src/in.txt; counts itself. */
const GEN = `
const fs = require('fs');
const seed = fs.readFileSync('src/in.txt', 'utf8');
fs.appendFileSync(process.env.COUNTER, 'x\\n');
fs.mkdirSync('out', { recursive: true });
for (let i = 0; i < ${FILES}; i++) fs.writeFileSync('out/f' + i + '.txt', (seed + ':' + i + '\\n').repeat(${BYTES}).slice(0, ${BYTES}));
process.stdout.write(('log ' + seed + '\\n').repeat(4000) + 'END\\n');
`;
/** Whether a `node gen.js` started in `dir` is still running (a killed taskvault's command is not killed). */
function commandRunning(dir: string): boolean {
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) !== dir) continue;
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('gen.js')) continue;
      // A zombie has exited; it may never be reaped where pid 1 does not reap.
      if (!/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return true;
    } catch {
      // It exited while we looked, or is another user's: not ours either way.
    }
  }
  return false;
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

test('kill -9 at random points of a miss: 0 partial results served, 0 crashes of the next run', async () => {
  const rounds = soakRounds(6);
  const dir = writeTree(tempDir('tv-soak-kill-'), { 'gen.js': GEN, 'src/in.txt': '' });
  const counter = join(tempDir('tv-soak-kill-side-'), 'counter');
  const env = { COUNTER: counter };
  const tally = { rounds, killed: 0, finishedFirst: 0, nextHits: 0, nextRan: 0, partial: 0, crashes: 0 };
  // How long a whole miss takes here, so the kills spread over all of it.
  writeFileSync(join(dir, 'src', 'in.txt'), 'warm-up');
  const t0 = Date.now();
  await runCli(ARGS, { cwd: dir, env });
  const missMs = Date.now() - t0;
  let i = 0;
  for (; i < rounds && !soakTimeUp(); i++) {
    const seed = `seed-${i}-${Math.random()}`;
    writeFileSync(join(dir, 'src', 'in.txt'), seed);
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    const miss = spawnCli(ARGS, dir, env);
    await sleep(randomInt(missMs * 1.2));
    miss.child.kill('SIGKILL');
    if ((await miss.done).signal === 'SIGKILL') tally.killed++;
    else tally.finishedFirst++;
    // The command outlives a killed taskvault: let it finish before looking at out/.
    while (commandRunning(dir)) await sleep(20);
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    const before = executions(counter);
    const next = await runCli(ARGS, { cwd: dir, env });
    if (next.signal !== null || next.code !== 0) {
      tally.crashes++;
      console.log(`round ${i}: next run code ${next.code} signal ${next.signal}\n${next.err}`);
      continue;
    }
    if (executions(counter) === before) tally.nextHits++;
    else tally.nextRan++;
    const whole =
      next.out === `${`log ${seed}\n`.repeat(4000)}END\n` &&
      readdirSync(join(dir, 'out')).length === FILES &&
      Array.from({ length: FILES }, (_, f) => f).every(
        (f) =>
          existsSync(join(dir, 'out', `f${f}.txt`)) &&
          readFileSync(join(dir, 'out', `f${f}.txt`), 'utf8') === content(seed, f),
      );
    if (!whole) tally.partial++;
  }
  const verify = await runCli(['verify'], { cwd: dir });
  soakReport('kill-miss', { ...tally, rounds: i, verify: verify.code ?? 'signal' });
  assert.is(tally.crashes, 0);
  assert.is(tally.partial, 0);
  assert.is(verify.code, 0, verify.out + verify.err);
});

test.run();

/**
 * Issue 22 soak: 16 identical runs started together, round after round, execute the command exactly
 * once per round and all print byte-identical output (invariant 5). `npm test` runs 2 rounds; by
 * hand: SOAK_ROUNDS=500 (a tenth of it: 50 rounds).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { executions, spawnCli } from '../support/fault-helpers.js';
import { tempDir, writeTree } from '../support/helpers.js';
import { soakReport, soakRounds, soakTimeUp } from '../support/soak.js';

/** Counts itself, writes an output and ~64 KiB of stdout derived from the input, takes a moment. */
const CMD = `
const fs = require('fs');
const seed = fs.readFileSync('src/in.txt', 'utf8');
fs.appendFileSync(process.env.COUNTER, 'x\\n');
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/result.txt', ('result ' + seed + '\\n').repeat(500));
let text = '';
for (let i = 0; i < 2000; i++) text += seed + ' line ' + i + '\\n';
setTimeout(() => process.stdout.write(text), 300);
`;

test('16 identical runs x N rounds: one execution per round, byte-identical outputs', async () => {
  const N = 16;
  // A round is 16 runs: SOAK_ROUNDS=500 (the kill soak's count) gives the 50 rounds of issue 22.
  const rounds = soakRounds(2, 0.1);
  const dir = writeTree(tempDir('tv-soak-sf-'), { 'cmd.js': CMD, 'src/in.txt': '' });
  const counter = join(tempDir('tv-soak-sf-side-'), 'counter');
  const args = [
    'run',
    '--inputs',
    'src/**',
    '--inputs',
    'cmd.js',
    '--outputs',
    'out/**',
    '--',
    'node',
    'cmd.js',
  ];
  let extra = 0;
  let differing = 0;
  let failed = 0;
  let round = 0;
  for (; round < rounds && !soakTimeUp(); round++) {
    const seed = `seed-${round}-${Math.random()}`;
    writeFileSync(join(dir, 'src', 'in.txt'), seed);
    const before = executions(counter);
    const procs = Array.from({ length: N }, () => spawnCli(args, dir, { COUNTER: counter }));
    const ends = await Promise.all(procs.map((p) => p.done));
    const ran = executions(counter) - before;
    if (ran !== 1) extra += ran - 1;
    failed += ends.filter((e) => e.code !== 0).length;
    const first = procs[0]!.out();
    differing += procs.filter((p) => p.out() !== first).length;
    assert.is(ran, 1, `round ${round}: the command ran ${ran} times`);
    for (const [i, e] of ends.entries()) assert.is(e.code, 0, procs[i]!.err());
    assert.ok(first.startsWith(`${seed} line 0\n`) && first.endsWith(`${seed} line 1999\n`), 'whole stdout');
    assert.is(differing, 0, `round ${round}: outputs differ`);
    assert.is(readFileSync(join(dir, 'out', 'result.txt'), 'utf8'), `result ${seed}\n`.repeat(500));
  }
  soakReport('single-flight', {
    processes: N,
    rounds: round,
    executions: round + extra,
    extraExecutions: extra,
    differingOutputs: differing,
    failedRuns: failed,
  });
});

test.run();

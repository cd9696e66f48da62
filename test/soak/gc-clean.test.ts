/**
 * Issue 22 soak: `gc`, `gc --grace 0s` and `clean` at once with runs and `cache save`s on one cache,
 * round after round, over a limit that makes every round evict. Looks for what was once seen on
 * Node 22 (lmdb's `mdb_page_touch` error) and for any crash: every process must exit 0 with no
 * LMDB error and no stack trace, and the index must stay consistent. `npm test` runs 2 rounds; by
 * hand: SOAK_ROUNDS=1000 (a fifth of it: 200 rounds of 9 processes).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnCli } from '../support/fault-helpers.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';
import { soakReport, soakRounds, soakTimeUp } from '../support/soak.js';

const TASKS = ['t1', 't2', 't3', 't4'];
const SIZE = 4000;

function project(): string {
  const tasks: Record<string, unknown> = {};
  for (const name of TASKS)
    tasks[name] = {
      command: [
        'node',
        '-e',
        `require('fs').mkdirSync('out',{recursive:true});require('fs').writeFileSync('out/${name}.bin', process.env.ROUND + ':${name}:' + 'x'.repeat(${SIZE}));`,
      ],
      inputs: ['in.txt'],
      outputs: [`out/${name}.bin`],
      env: ['ROUND'],
    };
  // About two rounds' worth of blobs fit: every round's saves evict.
  return writeTree(tempDir('tv-soak-gc-'), {
    'in.txt': 'input\n',
    'taskvault.config.json': JSON.stringify({ maxSizeGb: 0.00004, lowWaterMark: 0.5, tasks }),
  });
}

/** What a crash or an LMDB failure leaves on stderr. */
const BROKEN = /mdb_|MDB_|Segmentation|Aborted|\n\s+at .+\(.*:\d+:\d+\)/;

test('gc and clean alongside runs and saves x N rounds: no crash, no LMDB error, consistent index', async () => {
  const rounds = soakRounds(2, 0.2);
  const dir = project();
  let processes = 0;
  let failed = 0;
  let round = 0;
  for (; round < rounds && !soakTimeUp(); round++) {
    const env = { ROUND: `r${round}` };
    writeFileSync(join(dir, `save${round % 3}`), `saved ${round} `.repeat(300));
    const procs = [
      ...TASKS.map((t) => spawnCli(['run', t], dir, env)),
      spawnCli(['gc'], dir),
      spawnCli(['gc', '--grace', '0s'], dir),
      spawnCli(['clean', '--task', TASKS[round % TASKS.length]!, '--yes'], dir),
      spawnCli(['cache', 'save', 'saved', 'in.txt', `save${round % 3}`], dir),
      spawnCli(['cache', 'save', 'saved2', `save${round % 3}`, 'in.txt'], dir),
    ];
    const ends = await Promise.all(procs.map((p) => p.done));
    processes += procs.length;
    for (const [i, e] of ends.entries()) {
      const err = procs[i]!.err();
      const bad = e.code !== 0 || e.signal !== null || BROKEN.test(err);
      if (bad) failed++;
      assert.not.ok(bad, `round ${round}, process ${i}: exit ${e.code ?? e.signal}: ${err}`);
    }
    for (const t of TASKS)
      assert.is(
        readFileSync(join(dir, 'out', `${t}.bin`), 'utf8').split(':')[0],
        `r${round}`,
        `${t} in round ${round}`,
      );
  }
  const gc = await runCli(['gc', '--json', '--grace', '0s'], { cwd: dir });
  assert.is(gc.code, 0, gc.err);
  const report = JSON.parse(gc.out);
  assert.is(report.refsRepaired, 0, 'reference counts never drifted');
  assert.is(report.missingBlobs, 0, 'no entry points at a missing blob');
  const verify = await runCli(['verify'], { cwd: dir });
  assert.is(verify.code, 0, verify.out + verify.err);
  soakReport('gc-clean', { rounds: round, processes, failed });
});

test.run();

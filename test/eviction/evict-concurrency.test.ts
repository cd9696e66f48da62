/** Eviction and gc while other TaskVault processes hit and save on the same cache. */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

const TASKS = ['t1', 't2', 't3', 't4', 't5', 't6', 't7', 't8'];
const SIZE = 3000;
/** t1/t2, t3/t4, ... write identical bytes, so pairs share a blob. */
const content = (task: string, round: string) =>
  `${round}:${'xyzw'[Math.floor((Number(task.slice(1)) - 1) / 2)]!.repeat(SIZE)}`;

function project(): string {
  const dir = tempDir('tv-evict-conc-');
  const tasks: Record<string, unknown> = {};
  for (const name of TASKS) {
    const letter = 'xyzw'[Math.floor((Number(name.slice(1)) - 1) / 2)];
    tasks[name] = {
      command: [
        'node',
        '-e',
        `const fs=require('fs');fs.mkdirSync('out',{recursive:true});fs.writeFileSync('out/${name}.bin', process.env.ROUND + ':' + '${letter}'.repeat(${SIZE}));`,
      ],
      inputs: ['in.txt'],
      outputs: [`out/${name}.bin`],
      env: ['ROUND'],
    };
  }
  // About 4 rounds' worth of unique blobs fit; low-water 50%: every round makes saves evict.
  writeTree(dir, {
    'in.txt': 'input\n',
    'taskvault.config.json': JSON.stringify({ maxSizeGb: 0.00004, lowWaterMark: 0.5, tasks }),
  });
  return dir;
}

function blobBytes(dir: string): number {
  const root = join(dir, '.taskvault', 'cache', 'blobs');
  let total = 0;
  for (const fan of readdirSync(root))
    for (const name of readdirSync(join(root, fan))) total += statSync(join(root, fan, name)).size;
  return total;
}

test('runs, gc and clean at once: every run succeeds with correct outputs, the index stays consistent', async () => {
  const dir = project();
  const rounds = ['r1', 'r2', 'r3', 'r1', 'r4'];
  for (const round of rounds) {
    const env = { ROUND: round };
    const jobs = [
      ...TASKS.map((t) => runCli(['run', t], { cwd: dir, env })),
      runCli(['gc', '--grace', '0s'], { cwd: dir }),
      runCli(['gc'], { cwd: dir }),
      runCli(['clean', '--task', 't8', '--yes'], { cwd: dir }),
    ];
    const results = await Promise.all(jobs);
    for (const r of results) assert.is(r.code, 0, `a process failed in round ${round}: ${r.err}`);
    for (const t of TASKS)
      assert.is(readFileSync(join(dir, 'out', `${t}.bin`), 'utf8'), content(t, round), `${t} in ${round}`);
  }

  // After the storm: reference counts never drifted and no entry points at a missing blob.
  const gc = await runCli(['gc', '--json', '--grace', '0s'], { cwd: dir });
  assert.is(gc.code, 0, gc.err);
  const report = JSON.parse(gc.out);
  assert.is(report.refsRepaired, 0);
  assert.is(report.missingBlobs, 0);
  assert.is(report.usage, blobBytes(dir), 'usage is exactly the unique blob bytes on disk');
  assert.ok(report.usage <= report.limit);

  // Every task of the last round restores (or reruns) to the right bytes.
  rmSync(join(dir, 'out'), { recursive: true });
  for (const t of TASKS) {
    const r = await runCli(['run', t], { cwd: dir, env: { ROUND: 'r4' } });
    assert.is(r.code, 0, r.err);
    assert.not.match(r.err, /not used/);
    assert.is(readFileSync(join(dir, 'out', `${t}.bin`), 'utf8'), content(t, 'r4'));
  }
  const evicts = readFileSync(join(dir, '.taskvault', 'cache', 'audit.log'), 'utf8')
    .split('\n')
    .filter((l) => / EVICT /.test(l));
  assert.ok(
    evicts.some((l) => /reason=lru/.test(l)),
    'the cache went over its limit and evicted',
  );
  assert.ok(evicts.some((l) => /reason=manual/.test(l)));
});

test.run();

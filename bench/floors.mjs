#!/usr/bin/env node
// Issue 23's two floors that the scale bench does not cover, in one short run:
//  - a miss's overhead over the bare command (2,000 inputs, one changed), beside `node -e 0` and
//    Node + execa alone (bench/execa-floor.mjs), with where TaskVault's own part goes
//    (TASKVAULT_TRACE phases);
//  - a cold fingerprint of a 1 GB tree (512 files of 2 MB) against b3sum, marginal throughput
//    (the same command on no data subtracted, as in bench/run.mjs).
// Usage: node bench/floors.mjs [rounds=11]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, median, writePackage } from './common.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = process.env.BENCH_CLI ?? join(REPO, 'dist', 'cli.cjs');
const ROUNDS = Number(process.argv[2]) || 11;
const MB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'tv-bench-floors-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const env = { ...process.env, TASKVAULT_QUIET: '1', TASKVAULT_DAEMON: '0' };
delete env.TASKVAULT_CACHE_DIR;
const timed = (argv, cwd, extra = {}) => {
  const t = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { cwd, env: { ...env, ...extra }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, stderr: r.stderr };
};
const fmt = (ms) => `${ms.toFixed(1)} ms`;
const which = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).stdout.trim();

// ── miss overhead ──
const pkg = join(work, 'pkg');
writePackage(pkg, 'floors', 2000);
let n = 0;
const touch = () => writeFileSync(join(pkg, 'src', 'd000', 'f00000.txt'), `changed ${n++} ${Date.now()}\n`);
timed(['node', CLI, 'run', 'build'], pkg); // the cache exists, as for any miss but the first
const miss = alternate(
  [
    { name: 'taskvault miss', prep: touch, run: () => timed(['node', CLI, 'run', 'build'], pkg).ms },
    { name: 'bare command', prep: touch, run: () => timed(['node', 'build.mjs'], pkg).ms },
    {
      name: 'execa alone',
      prep: touch,
      run: () => timed(['node', join(REPO, 'bench', 'execa-floor.mjs'), 'node', 'build.mjs'], pkg).ms,
    },
    { name: 'node -e 0', run: () => timed(['node', '-e', '0'], pkg).ms },
  ],
  ROUNDS,
);
const phases = {};
for (let i = 0; i < 7; i++) {
  touch();
  const r = timed(['node', CLI, 'run', 'build'], pkg, { TASKVAULT_TRACE: '1', TASKVAULT_QUIET: '' });
  const line = r.stderr.split('\n').find((l) => /trace: start /.test(l)) ?? '';
  for (const m of line.matchAll(/(?:trace: |· )([a-z ]+?) ([\d.]+)ms/g)) {
    phases[m[1]] ??= [];
    phases[m[1]].push(Number(m[2]));
  }
}

// ── cold fingerprint ──
const tree = join(work, 'tree');
const block = Buffer.alloc(2 * MB);
for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
for (let i = 0; i < 512; i++) {
  const d = join(tree, `d${String(Math.floor(i / 64)).padStart(2, '0')}`);
  if (i % 64 === 0) mkdirSync(d, { recursive: true });
  block.writeUInt32LE(i, 0);
  writeFileSync(join(d, `blob${String(i).padStart(4, '0')}.bin`), block);
}
const files = execFileSync('find', [tree, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n');
spawnSync('cat', files, { stdio: 'ignore' }); // both read from the page cache
const cacheDir = join(work, 'fp-cache');
const dry = (glob) => ({
  prep: () => rmSync(cacheDir, { recursive: true, force: true }),
  run: () =>
    timed(['node', CLI, 'run', '--dry-run', '--inputs', glob, '--', 'true'], tree, {
      TASKVAULT_CACHE_DIR: cacheDir,
    }).ms,
});
const B3SUM = which('b3sum');
const fpContenders = [
  { name: 'taskvault', ...dry('**') },
  { name: 'taskvault, no inputs', ...dry('no-such-dir/**') },
];
if (B3SUM)
  fpContenders.push(
    { name: 'b3sum', run: () => timed([B3SUM, ...files], tree).ms },
    { name: 'b3sum, no input', run: () => timed([B3SUM, '/dev/null'], tree).ms },
  );
const fp = alternate(fpContenders, Math.max(5, Math.ceil(ROUNDS / 2)));

// ── report ──
const overhead = miss['taskvault miss'] - miss['bare command'];
const lines = [
  `## Floors (bench/floors.mjs, medians of ${ROUNDS} alternating rounds; load average at the end ${spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.split(' ').slice(0, 3).join(' ')})`,
  '',
  '| miss, 2,000 inputs (one changed) | time | over the bare command |',
  '|---|---:|---:|',
  `| bare command (\`node build.mjs\`) | ${fmt(miss['bare command'])} | |`,
  `| \`node -e 0\` | ${fmt(miss['node -e 0'])} | |`,
  `| Node + execa alone running it | ${fmt(miss['execa alone'])} | +${fmt(miss['execa alone'] - miss['bare command'])} |`,
  `| TaskVault miss | ${fmt(miss['taskvault miss'])} | +${fmt(overhead)} (goal ≤ +60 ms) |`,
  '',
  `Phases of a miss (TASKVAULT_TRACE, medians of 7): ${Object.entries(phases)
    .map(([k, v]) => `${k} ${fmt(median(v))}`)
    .join(' · ')}`,
  '',
];
const rate = (ms, base) => 1024 / (Math.max(1, ms - base) / 1000);
const tvRate = rate(fp.taskvault, fp['taskvault, no inputs']);
lines.push(
  '| cold fingerprint, 1 GB in 512 files | time | on no data | marginal MB/s |',
  '|---|---:|---:|---:|',
  `| TaskVault (\`run --dry-run\`, fresh cache) | ${fmt(fp.taskvault)} | ${fmt(fp['taskvault, no inputs'])} | ${tvRate.toFixed(0)} |`,
);
if (B3SUM) {
  const b3Rate = rate(fp.b3sum, fp['b3sum, no input']);
  lines.push(
    `| b3sum | ${fmt(fp.b3sum)} | ${fmt(fp['b3sum, no input'])} | ${b3Rate.toFixed(0)} |`,
    '',
    `TaskVault / b3sum marginal throughput: ${(tvRate / b3Rate).toFixed(2)}× (goal ≥ 1.0×); end to end ${((fp.b3sum / fp.taskvault) * 1).toFixed(2)}×.`,
  );
} else lines.push('', 'b3sum is not installed: no ratio.');
process.stdout.write(`${lines.join('\n')}\n`);

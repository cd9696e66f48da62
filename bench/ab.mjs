#!/usr/bin/env node
// A/B of two builds of the CLI on the benchmark's 2,000-file package: a miss (one input changed)
// and a hit (outputs removed first, so it restores), alternating A, B, the bare command and
// `node -e 0` round by round, so that machine load hits all alike. For measuring one change
// (docs/performance.md says how).
//
// Usage:
//   git worktree add /tmp/base <rev> && ln -s "$PWD/node_modules" /tmp/base/node_modules
//   (cd /tmp/base && npm run build) && npm run build
//   node bench/ab.mjs /tmp/base/dist/cli.cjs dist/cli.cjs [rounds=31]
//   AB_INPUTS='["src/**/*.txt"]' node bench/ab.mjs ...   (the task's input globs; default src/**)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { alternate, writePackage } from './common.mjs';

const [a, b, roundsArg] = process.argv.slice(2);
if (!a || !b) {
  process.stderr.write('usage: node bench/ab.mjs <cli A> <cli B> [rounds]\n');
  process.exit(2);
}
const clis = { A: resolve(a), B: resolve(b) };
const ROUNDS = Number(roundsArg) || 31;

// The package of bench/run.mjs's hit benchmark: 2,000 files of 4 KB in 20 directories.
const dir = mkdtempSync(join(tmpdir(), 'tv-bench-ab-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const INPUTS = process.env.AB_INPUTS ? JSON.parse(process.env.AB_INPUTS) : ['src/**'];
writePackage(dir, 'ab', 2000, INPUTS);

const env = { ...process.env, TASKVAULT_QUIET: '1' };
delete env.TASKVAULT_CACHE_DIR;
const timed = (argv, extraEnv = {}) => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd: dir,
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
// Each build keeps its own cache, so a hit of one is never served by the other's entry.
const tv = (which) =>
  timed(['node', clis[which], 'run', 'build'], { TASKVAULT_CACHE_DIR: join(dir, `.cache-${which}`) });
let n = 0;
const change = () => writeFileSync(join(dir, 'src/d000/f00000.txt'), `changed ${n++} ${Date.now()}\n`);
const rmDist = () => rmSync(join(dir, 'dist'), { recursive: true, force: true });

// Misses: one input changed before each run. The first rounds write each build's code cache.
const missCases = [
  { name: 'miss A', prep: change, run: () => tv('A') },
  { name: 'miss B', prep: change, run: () => tv('B') },
  { name: 'bare command', prep: change, run: () => timed(['node', 'build.mjs']) },
];
alternate(missCases, 2);
const misses = alternate(missCases, ROUNDS);

// Hits: each build stores the inputs as they are now, and once they are past the 2 s racy window,
// a first hit records them as settled; what is timed then is the hit a repeat run gets.
change();
tv('A');
tv('B');
await new Promise((r) => setTimeout(r, 2500));
rmDist();
tv('A');
rmDist();
tv('B');
const hits = alternate(
  [
    { name: 'hit A', prep: rmDist, run: () => tv('A') },
    { name: 'hit B', prep: rmDist, run: () => tv('B') },
    { name: 'node -e 0', run: () => timed(['node', '-e', '0']) },
  ],
  ROUNDS,
);
const m = { ...misses, ...hits };

const row = (name, x, y) =>
  `| ${name} | ${x.toFixed(1)} ms | ${y.toFixed(1)} ms | ${(y - x).toFixed(1)} ms |`;
process.stdout.write(
  [
    `A: ${clis.A}`,
    `B: ${clis.B}`,
    `2,000 input files (inputs ${JSON.stringify(INPUTS)}), medians of ${ROUNDS} alternating rounds; bare command ${m['bare command'].toFixed(1)} ms, node -e 0 ${m['node -e 0'].toFixed(1)} ms.`,
    '',
    '| case | A | B | B − A |',
    '|---|---:|---:|---:|',
    row('miss (one input changed)', m['miss A'], m['miss B']),
    row('hit (outputs restored)', m['hit A'], m['hit B']),
    row(
      'miss overhead over the bare command',
      m['miss A'] - m['bare command'],
      m['miss B'] - m['bare command'],
    ),
    '',
  ].join('\n'),
);

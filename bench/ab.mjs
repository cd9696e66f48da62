#!/usr/bin/env node
// A/B of two builds of the CLI on the benchmark's 2,000-file package: a miss (one input changed)
// and a hit (outputs removed first, so it restores), alternating A, B, the bare command and
// `node -e 0` round by round, so that machine load hits all alike. For measuring one change: the
// README's "in alternating runs" figures come from this.
//
// Usage:
//   git worktree add /tmp/base <rev> && ln -s "$PWD/node_modules" /tmp/base/node_modules
//   (cd /tmp/base && npm run build) && npm run build
//   node bench/ab.mjs /tmp/base/dist/cli.cjs dist/cli.cjs [rounds=31]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

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
const block = Buffer.alloc(4096);
for (let i = 0; i < 2000; i++) {
  const d = join(dir, 'src', `d${String(Math.floor(i / 100)).padStart(3, '0')}`);
  if (i % 100 === 0) mkdirSync(d, { recursive: true });
  block.fill(`ab:${i}:`, 0);
  writeFileSync(join(d, `f${String(i).padStart(5, '0')}.txt`), block);
}
writeFileSync(
  join(dir, 'build.mjs'),
  `import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto'; import { join } from 'node:path';
const h = createHash('sha1'); let n = 0;
const walk = (d) => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = join(d, e.name); if (e.isDirectory()) walk(p); else { h.update(readFileSync(p)); n++; } } };
walk('src'); mkdirSync('dist', { recursive: true }); writeFileSync('dist/digest.txt', h.digest('hex') + '\\n'); console.log('built ' + n + ' files');\n`,
);
writeFileSync(
  join(dir, 'taskvault.config.ts'), // as in bench/run.mjs: a static .ts config, served from its kept value
  "export default { tasks: { build: { command: ['node', 'build.mjs'], inputs: ['src/**'], outputs: ['dist/**'] } } };\n",
);

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
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
/** `run`, timed, after `prep`, not timed. */
const after = (prep, run) => () => {
  prep();
  return run();
};

/** Runs every case once per round, rotating who goes first; medians. */
function alternate(cases, rounds) {
  const names = Object.keys(cases);
  const times = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = 0; r < rounds; r++)
    for (let i = 0; i < names.length; i++) {
      const k = names[(i + r) % names.length];
      times[k].push(cases[k]());
    }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

// Misses: one input changed before each run. The first rounds write each build's code cache.
const missCases = {
  'miss A': after(change, () => tv('A')),
  'miss B': after(change, () => tv('B')),
  'bare command': after(change, () => timed(['node', 'build.mjs'])),
};
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
  {
    'hit A': after(rmDist, () => tv('A')),
    'hit B': after(rmDist, () => tv('B')),
    'node -e 0': () => timed(['node', '-e', '0']),
  },
  ROUNDS,
);
const m = { ...misses, ...hits };

const row = (name, x, y) =>
  `| ${name} | ${x.toFixed(1)} ms | ${y.toFixed(1)} ms | ${(y - x).toFixed(1)} ms |`;
process.stdout.write(
  [
    `A: ${clis.A}`,
    `B: ${clis.B}`,
    `2,000 input files, medians of ${ROUNDS} alternating rounds; bare command ${m['bare command'].toFixed(1)} ms, node -e 0 ${m['node -e 0'].toFixed(1)} ms.`,
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

#!/usr/bin/env node
// stat() of 2,000 input files in a fresh process, the way a run does it: TaskVault's statFile
// (src/util/stat.ts: on Node 20 the numbers from the fs binding) against fs.statSync, each in its
// own `node` process, alternating, so that both pay the same cold JIT and GC as a real run.
// Usage: npm run build && node bench/stat.mjs   (BENCH_STAT_FILES=N, BENCH_STAT_ROUNDS=N)
// Prints a markdown table on stdout; run by bench/run.mjs as part of `npm run bench`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from './common.mjs';

const FILES = Number(process.env.BENCH_STAT_FILES) || 2000;
const ROUNDS = Number(process.env.BENCH_STAT_ROUNDS) || 21;
const STAT_MODULE = new URL('../dist/util/stat.js', import.meta.url).href;

const dir = mkdtempSync(join(tmpdir(), 'tv-bench-stat-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const paths = [];
for (let i = 0; i < FILES; i++) {
  const d = `d${String(Math.floor(i / 100)).padStart(3, '0')}`;
  if (i % 100 === 0) mkdirSync(join(dir, d));
  paths.push(`${d}/f${i}.txt`);
  writeFileSync(join(dir, paths[i]), `${i}`);
}
writeFileSync(join(dir, 'paths.json'), JSON.stringify(paths));

// Both load the module (its agreement check included), then time only the loop.
const child = (method) => `
const { readFileSync, statSync } = await import('node:fs');
const { statFile, statVia } = await import(${JSON.stringify(STAT_MODULE)});
const paths = JSON.parse(readFileSync('paths.json', 'utf8'));
const stat = ${method === 'statSync' ? '(p) => statSync(p, { throwIfNoEntry: false })' : 'statFile'};
let sum = 0;
const t0 = process.hrtime.bigint();
for (const p of paths) sum += stat(p).size;
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(JSON.stringify({ ms, via: statVia, sum }));`;

const times = { statFile: [], statSync: [] };
let via;
for (let r = 0; r < ROUNDS; r++) {
  for (const method of r % 2 ? ['statSync', 'statFile'] : ['statFile', 'statSync']) {
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', child(method)], {
      cwd: dir,
      encoding: 'utf8',
    });
    if (out.status !== 0) throw new Error(`${method}: ${out.stderr}`);
    const result = JSON.parse(out.stdout);
    times[method].push(result.ms);
    via = result.via;
  }
}
const [a, b] = [median(times.statFile), median(times.statSync)];
const line = (name, ms) => `| ${name} | ${ms.toFixed(2)} ms | ${((ms * 1000) / FILES).toFixed(2)} µs |`;
process.stdout.write(
  [
    `${FILES.toLocaleString('en-US')} files, each method in a fresh process, medians of ${ROUNDS} alternating rounds; statFile uses ${via === 'binding' ? 'the fs binding' : 'statSync itself'} on Node ${process.versions.node}.`,
    '',
    '| stat of every file | time | per file |',
    '|---|---:|---:|',
    line('TaskVault statFile', a),
    line('fs.statSync (baseline)', b),
    '',
    `statFile / statSync: ${(a / b).toFixed(2)}×`,
    '',
  ].join('\n'),
);

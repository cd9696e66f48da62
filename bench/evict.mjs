#!/usr/bin/env node
// Eviction benchmark: an index of 100,000 entries (each with its own output blob, all sharing one
// log blob). Measures entry lookup and evicting half of the cache, each against a bare baseline
// measured in the same run on the same machine:
//   lookup   vs a bare LMDB get loop over the same number of keys (same values, no Store wrapper)
//   evict ½  vs the minimum the job needs: a bare LMDB removal of as many keys in one transaction
//            plus unlinking as many files
// Usage: npm run build && node bench/evict.mjs   (BENCH_EVICT_ENTRIES=N to change the size)
// Prints a markdown table on stdout.
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { open } from 'lmdb';
import { hashBytes } from '../dist/fingerprint/hash.js';
import { STORE_SCHEMA } from '../dist/store/entry.js';
import { evict } from '../dist/store/evict.js';
import { Store } from '../dist/store/store.js';
import { median } from './common.mjs';

const N = Number(process.env.BENCH_EVICT_ENTRIES) || 100_000;
const LOOKUPS = 20_000;
const BATCH = 1_000;
const dir = mkdtempSync(join(tmpdir(), 'tv-bench-evict-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const fmt = (ms) =>
  ms < 1 ? `${(ms * 1000).toFixed(2)} µs` : ms < 1000 ? `${ms.toFixed(2)} ms` : `${(ms / 1000).toFixed(2)} s`;

function entryFor(i, blob, log) {
  return {
    schema: STORE_SCHEMA,
    key: `${i.toString(16).padStart(8, '0')}${'k'.repeat(56)}`,
    task: `task${i % 50}`,
    algorithm: 'blake3',
    outputs: [{ path: `dist/out-${i}.js`, type: 'file', mode: 0o644, size: blob.size, hash: blob.hash }],
    outputGlobs: ['dist/**'],
    cwd: '.',
    logs: { stdout: log, stderr: null, chunks: [[1, log.size]] },
    exitCode: 0,
    durationMs: 1234,
    createdAt: 1_700_000_000_000 + i,
    bytes: blob.size + log.size,
    ttlMs: 7 * 86400_000,
    provenance: { host: 'bench', user: 'bench', version: '0', origin: 'local' },
  };
}

/** Per-operation time: the median over batches of BATCH operations. */
function perOp(fn, keys) {
  const samples = [];
  for (let i = 0; i + BATCH <= keys.length; i += BATCH) {
    const t = performance.now();
    for (let j = i; j < i + BATCH; j++) fn(keys[j]);
    samples.push((performance.now() - t) / BATCH);
  }
  return median(samples);
}

// --- Build the cache ---------------------------------------------------------------------------
const setupStart = performance.now();
const opened = Store.open(join(dir, 'cache'));
if (!opened.ok) throw new Error(opened.error.message);
const store = opened.value;
const log = await store.blobs.putBytes('blake3', Buffer.from('build ok\n'));
for (let i = 0; i < 256; i++)
  mkdirSync(join(store.blobs.dir, i.toString(16).padStart(2, '0')), { recursive: true });
const entries = [];
for (let i = 0; i < N; i += BATCH) {
  const chunk = [];
  for (let j = i; j < Math.min(N, i + BATCH); j++) {
    // Written straight to their content address (what putBytes ends with, minus the temp-file step).
    const data = Buffer.from(`output of entry ${String(j).padStart(8, '0')}\n`.repeat(4));
    const blob = { hash: hashBytes('blake3', data), size: data.byteLength };
    writeFileSync(store.blobs.path(blob.hash), data);
    const e = entryFor(j, blob, log);
    entries.push(e);
    chunk.push(store.commit(e, { schema: 1 }, e.task));
  }
  await Promise.all(chunk);
}
const setupMs = performance.now() - setupStart;

// --- Baselines: a bare LMDB environment with the same keys and values --------------------------
const bare = open({ path: join(dir, 'bare'), compression: false });
const bareDb = bare.openDB({ name: 'entries' });
await bare.transaction(() => {
  for (const e of entries) bareDb.put(e.key, e);
});
const bareFiles = join(dir, 'bare-files');
mkdirSync(bareFiles);
for (let i = 0; i < N / 2; i++) writeFileSync(join(bareFiles, String(i)), `output of entry ${i}\n`.repeat(4));

// --- Lookup ------------------------------------------------------------------------------------
const sample = Array.from({ length: LOOKUPS }, () => entries[Math.floor(Math.random() * N)].key);
perOp((k) => store.getEntry(k), sample); // warm up both
perOp((k) => bareDb.get(k), sample);
const lookups = [];
const bareLookups = [];
for (let r = 0; r < 5; r++) {
  lookups.push(perOp((k) => store.getEntry(k), sample));
  bareLookups.push(perOp((k) => bareDb.get(k), sample));
}
const usageChecks = perOp(() => store.usage(), sample);

// --- Evict half ----------------------------------------------------------------------------------
const usage = store.usage();
const halve = {
  now: 1_700_000_000_000 + N,
  maxBytes: usage - 1,
  lowWaterBytes: Math.floor(usage / 2),
  policyFor: () => ({ ttlMs: Number.POSITIVE_INFINITY, maxEntryBytes: Number.POSITIVE_INFINITY }),
  source: 'bench',
};
// The plan alone (scan every entry for expiry, sort by last use, simulate the removals).
const p0 = performance.now();
await evict(store, { ...halve, dryRun: true });
const planMs = performance.now() - p0;
const t0 = performance.now();
const report = await evict(store, halve);
const evictMs = performance.now() - t0;

const b0 = performance.now();
const victims = entries.slice(0, report.entries).map((e) => e.key);
await bare.transaction(() => {
  for (const k of victims) bareDb.remove(k);
});
for (let i = 0; i < N / 2; i++) unlinkSync(join(bareFiles, String(i)));
const bareEvictMs = performance.now() - b0;

await store.close();
await bare.close();

const lookup = median(lookups);
const bareLookup = median(bareLookups);
const rows = [
  ['entry lookup (median per get)', fmt(lookup), fmt(bareLookup), `${(lookup / bareLookup).toFixed(2)}×`],
  [
    'usage check after a save',
    fmt(usageChecks),
    fmt(bareLookup),
    `${(usageChecks / bareLookup).toFixed(2)}×`,
  ],
  [`plan eviction of half (dry run over ${N} entries)`, fmt(planMs), '', ''],
  [
    `evict half (${report.entries} entries, ${report.byReason.lru.bytes} blob bytes)`,
    fmt(evictMs),
    fmt(bareEvictMs),
    `${(evictMs / bareEvictMs).toFixed(2)}×`,
  ],
];
console.log(`### Eviction (${N.toLocaleString('en')} entries; index built in ${fmt(setupMs)})\n`);
console.log('| measurement | TaskVault | baseline (bare LMDB + unlink) | ratio |');
console.log('|---|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log(
  `\nBaselines measured in the same run: lookup vs a bare LMDB get of the same entry; eviction vs removing as many keys in one LMDB transaction and unlinking as many files. Usage after eviction: ${report.usageAfter} of ${usage} bytes.`,
);

#!/usr/bin/env node
// Scale benchmark (issue 23): how TaskVault's commands behave as the cache and the trees grow,
// each against a baseline measured in the same run, alternating.
//   index    `stats`, `cache get`, a `run` hit and `ls | head` on a cache of 1,000 and of 100,000
//            entries (filled through the store API), as the ratio 100k / 1k; `gc` evicting half of
//            the 100,000 (seconds); the SDK's fill rate (`cacheResult` of 1 KB values, entries/s)
//   outputs  a hit restoring 20,000 small output files against `cp -r` of the same tree
//   inputs   a hit at 2,000 / 20,000 / 200,000 input files (1 KB) against `node -e 0`
//   fill     the SDK fill rate alone: sequential and concurrent, durability fast and strict
//   results  `gc` evicting half of 100,000 small SDK results (kept inside the index, no files),
//            against `rm -rf` of the blob files they would have been
// Usage: npm run build && node bench/scale.mjs [index|outputs|inputs|fill|results ...]
//        (default: index, outputs, inputs)
// BENCH_QUICK=1 shrinks every size for a smoke run. Prints a markdown section on stdout.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { alternate, median, writePackage } from './common.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = process.env.BENCH_CLI ?? join(REPO, 'dist', 'cli.cjs');
const QUICK = process.env.BENCH_QUICK === '1';
const num = (name, dflt) => Number(process.env[name]) || dflt;
const SIZES = {
  entriesSmall: 1000,
  entriesLarge: num('BENCH_SCALE_ENTRIES', QUICK ? 10_000 : 100_000),
  fill: QUICK ? 300 : 2000,
  outputs: QUICK ? 2000 : 20_000,
  inputs: QUICK ? [500, 2000, 5000] : [2000, 20_000, num('BENCH_SCALE_MAX_INPUTS', 200_000)],
  rounds: num('BENCH_SCALE_ROUNDS', QUICK ? 3 : 7),
};
const parts = new Set(process.argv.slice(2).length ? process.argv.slice(2) : ['index', 'outputs', 'inputs']);

const work = mkdtempSync(join(tmpdir(), 'tv-bench-scale-'));
process.on('exit', () => {
  if (!process.env.KEEP_TMP) rmSync(work, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const env = { ...process.env, FORCE_COLOR: '0', TASKVAULT_QUIET: '1' };
delete env.CI;
delete env.TASKVAULT_CACHE_DIR;

const log = (msg) => process.stderr.write(`bench/scale: ${msg}\n`);
const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const fmtX = (x) => `${x.toFixed(2)}×`;
const n = (x) => x.toLocaleString('en-US');

/** Runs argv in cwd; returns wall-clock ms and output. Any failure stops the bench. */
function timed(argv, cwd, extraEnv = {}, { check = true } = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd,
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (check && r.status !== 0)
    throw new Error(
      `${argv.join(' ')} (in ${cwd}) exited ${r.status}: ${r.stderr}${r.stdout}`.slice(0, 2000),
    );
  return { ms, stdout: String(r.stdout), stderr: String(r.stderr), status: r.status };
}
const tv = (...args) => [process.execPath, CLI, ...args];

// ---------------------------------------------------------------- index scale

/** An entry as a run stores it: one output blob of its own, a log blob shared by all. */
function entryFor(i, blob, logBlob, schema) {
  return {
    schema,
    key: `${i.toString(16).padStart(8, '0')}${'b'.repeat(56)}`,
    task: `task${i % 50}`,
    algorithm: 'blake3',
    outputs: [{ path: `dist/out-${i}.js`, type: 'file', mode: 0o644, size: blob.size, hash: blob.hash }],
    outputGlobs: ['dist/**'],
    cwd: '.',
    logs: { stdout: logBlob, stderr: null, chunks: [[1, logBlob.size]] },
    exitCode: 0,
    durationMs: 1234,
    createdAt: Date.now() - 86_400_000 + i,
    bytes: blob.size + logBlob.size,
    ttlMs: 30 * 86_400_000,
    provenance: { host: 'bench', user: 'bench', version: '0', origin: 'local' },
  };
}

/** Fills `cacheDir` with `count` entries through the store API (no CLI, no command runs). */
async function fillIndex(cacheDir, count) {
  const { Store } = await import('../dist/store/store.js');
  const { STORE_SCHEMA } = await import('../dist/store/entry.js');
  const { hashBytes } = await import('../dist/fingerprint/hash.js');
  const opened = Store.open(cacheDir);
  if (!opened.ok) throw new Error(opened.error.message);
  const store = opened.value;
  const logBlob = await store.blobs.putBytes('blake3', Buffer.from('build ok\n'));
  for (let i = 0; i < 256; i++)
    mkdirSync(join(store.blobs.dir, i.toString(16).padStart(2, '0')), { recursive: true });
  const BATCH = 1000;
  for (let i = 0; i < count; i += BATCH) {
    const chunk = [];
    for (let j = i; j < Math.min(count, i + BATCH); j++) {
      // Written straight to its content address (what putBytes ends with, minus the temp file).
      const data = Buffer.from(`output of entry ${String(j).padStart(8, '0')}\n`.repeat(4));
      const blob = { hash: hashBytes('blake3', data), size: data.byteLength };
      writeFileSync(store.blobs.path(blob.hash), data);
      const e = entryFor(j, blob, logBlob, STORE_SCHEMA);
      chunk.push(store.commit(e, { schema: 1 }, e.task));
    }
    for (const r of await Promise.all(chunk)) if (!r.ok) throw new Error(r.error.message);
  }
  const usage = store.usage();
  await store.close();
  return usage;
}

/** A project whose cache holds `count` filled entries plus one real run entry and one result. */
async function indexProject(count) {
  const dir = join(work, `index-${count}`);
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'src', 'a.txt'), 'input\n');
  writeFileSync(join(dir, 'input.txt'), 'the input of cache get\n');
  writeFileSync(join(dir, 'result.bin'), Buffer.alloc(1024, 7));
  const config = (extra = '') =>
    writeFileSync(
      join(dir, 'taskvault.config.ts'),
      `export default {${extra}\n  tasks: {\n    build: { command: ['node', '-e', "require('fs').mkdirSync('dist',{recursive:true});require('fs').writeFileSync('dist/out.txt','x')"], inputs: ['src/**'], outputs: ['dist/**'] },\n  },\n};\n`,
    );
  config();
  const cacheEnv = { TASKVAULT_CACHE_DIR: join(dir, 'cache') };
  const t0 = performance.now();
  const usage = await fillIndex(join(dir, 'cache'), count);
  const fillMs = performance.now() - t0;
  timed(tv('cache', 'save', 'bench', 'input.txt', 'result.bin'), dir, cacheEnv);
  timed(tv('run', 'build'), dir, cacheEnv);
  // Sanity: what is timed below must be hits.
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  const hit = timed(tv('run', 'build'), dir, { ...cacheEnv, TASKVAULT_QUIET: '' });
  if (!/\bhit\b/.test(hit.stderr)) throw new Error(`index bench: run is not a hit: ${hit.stderr}`);
  const got = timed(tv('cache', 'get', 'bench', 'input.txt', 'got.bin'), dir, cacheEnv);
  if (!/hit/i.test(got.stdout + got.stderr)) throw new Error(`index bench: cache get missed: ${got.stderr}`);
  const listed = timed(['sh', '-c', `"${process.execPath}" "${CLI}" ls | head -n 5`], dir, cacheEnv);
  if (listed.stdout.split('\n').length < 5) throw new Error(`index bench: ls printed ${listed.stdout}`);
  return { dir, cacheEnv, usage, fillMs, config, count };
}

/**
 * CPU time (user + system, children included) of each timed command, from /usr/bin/time: on a
 * loaded machine it moves far less than wall time, so the index ratios are given in both.
 */
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const cpuTimes = {};
function timedWithCpu(name, argv, cwd, extraEnv, seen = (_r) => {}) {
  if (!TIME) {
    const r = timed(argv, cwd, extraEnv);
    seen(r);
    return r.ms;
  }
  const r = timed([TIME, '-f', 'TVCPU %U %S', ...argv], cwd, extraEnv);
  seen(r);
  const m = /TVCPU ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  if (m) {
    cpuTimes[name] ??= [];
    cpuTimes[name].push((Number(m[1]) + Number(m[2])) * 1000);
  }
  return r.ms;
}

function indexContenders(p) {
  const c = (what, argv, prep) => ({
    name: `${what} @${p.count}`,
    prep,
    run: () => timedWithCpu(`${what} @${p.count}`, argv, p.dir, p.cacheEnv),
  });
  return [
    c('stats', tv('stats')),
    c('cache get', tv('cache', 'get', 'bench', 'input.txt', 'got.bin')),
    c('run hit', tv('run', 'build'), () => rmSync(join(p.dir, 'dist'), { recursive: true, force: true })),
    c('ls | head', ['sh', '-c', `"${process.execPath}" "${CLI}" ls | head -n 5`]),
  ];
}

/** `gc` with a size limit that makes it evict half of the filled entries. */
function gcHalf(p) {
  // Evicts down to lowWaterMark × the limit: half of what the filled entries use.
  const limitGb = (p.usage - 1) / 1e9;
  p.config(`\n  maxSizeGb: ${limitGb},\n  lowWaterMark: 0.5,`);
  const before = countFiles(join(p.dir, 'cache'));
  spawnSync('sync');
  let stdout = '';
  const ms = timedWithCpu('gc', tv('gc', '--json'), p.dir, p.cacheEnv, (r) => {
    stdout = r.stdout;
  });
  const report = JSON.parse(stdout);
  const removed = before - countFiles(join(p.dir, 'cache'));
  return { ms, report, removed, rm: rmBaseline(removed), cpuMs: cpuTimes.gc?.at(-1) };
}

/** Regular files under dir (blobs, hot copies, index files). */
function countFiles(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

/**
 * The floor of deleting that many files on this filesystem: `rm -rf` of as many 1 KB files in 256
 * directories (gc's blob layout), written and synced first. On a filesystem mounted with online
 * `discard` each unlink is dear, and gc cannot do fewer of them.
 */
function rmBaseline(files) {
  const root = join(work, 'rm-baseline');
  const body = Buffer.alloc(1024, 1);
  for (let i = 0; i < files; i++) {
    const dir = join(root, (i % 256).toString(16).padStart(2, '0'));
    if (i < 256) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, String(i)), body);
  }
  spawnSync('sync');
  return timed(['rm', '-rf', root], work).ms;
}

/**
 * SDK fill rate: `count` calls of cacheResult with distinct 1 KB values, one client, awaited one
 * after another (sequential) and all at once (concurrent, where saves share commits).
 */
async function fillRate(count, durability) {
  const { Client } = await import('../dist/index.js');
  const dir = join(work, `fill-${durability}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'taskvault.config.ts'), 'export default {};\n');
  const client = new Client({ cwd: dir, cacheDir: join(dir, 'cache'), env: {}, durability });
  await client.cacheResult('warm', 'warm-up', Buffer.alloc(1024)); // opens the cache: not part of the rate
  const value = (i) => {
    const v = Buffer.alloc(1024, 1);
    v.writeUInt32LE(i, 0);
    return v;
  };
  let t0 = performance.now();
  for (let i = 0; i < count; i++) await client.cacheResult('fill', `input ${i}`, value(i));
  const ms = performance.now() - t0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: count }, (_, i) => client.cacheResult('fillc', `input ${i}`, value(i))),
  );
  const concurrentMs = performance.now() - t0;
  await client.close();
  return { ms, perSecond: count / (ms / 1000), concurrentPerSecond: count / (concurrentMs / 1000) };
}

/** `node bench/scale.mjs fill`: the fill rate alone, in both durabilities. */
async function fillBench(md) {
  log(`fill: ${SIZES.fill} results, sequential then concurrent, fast then strict`);
  const fast = await fillRate(SIZES.fill, 'fast');
  const strict = await fillRate(SIZES.fill, 'strict');
  md.push(
    '',
    `### SDK fill rate (\`cacheResult\` of 1 KB values, ${n(SIZES.fill)} each way, one client)`,
    '',
    '| durability | sequential (awaited one by one) | concurrent (all at once) | target |',
    '| --- | --- | --- | --- |',
    `| fast (default for results) | ${n(Math.round(fast.perSecond))} entries/s | ${n(Math.round(fast.concurrentPerSecond))} entries/s | ≥ 2,000 entries/s |`,
    `| strict | ${n(Math.round(strict.perSecond))} entries/s | ${n(Math.round(strict.concurrentPerSecond))} entries/s | |`,
  );
  return { fast, strict };
}

async function indexBench(md) {
  const { entriesSmall: a, entriesLarge: b } = SIZES;
  log(`index: filling ${n(a)} and ${n(b)} entries`);
  const small = await indexProject(a);
  const large = await indexProject(b);
  log(`index: filled ${n(b)} in ${fmtMs(large.fillMs)}; timing (${SIZES.rounds} rounds)`);
  const t = alternate(
    [
      ...indexContenders(small),
      ...indexContenders(large),
      { name: 'node -e 0', run: () => timed([process.execPath, '-e', '0'], work).ms },
    ],
    SIZES.rounds,
  );
  log(`index: ${JSON.stringify(t)}`);
  log(`index: gc evicting half of ${n(b)}`);
  const gc = gcHalf(large);
  log(`index: SDK fill rate over ${SIZES.fill} results`);
  const fill = await fillRate(SIZES.fill, 'fast');

  md.push(
    `### Index scale (${n(a)} against ${n(b)} entries)`,
    '',
    `Caches filled through the store API (${n(b)} entries in ${fmtMs(large.fillMs)}), each entry with its own output blob; medians of ${SIZES.rounds} alternating rounds, all eight commands and \`node -e 0\` (${fmtMs(t['node -e 0'])}) in each round.`,
    '',
    `| command | ${n(a)} entries | ${n(b)} entries | ratio ${n(b)} / ${n(a)} | CPU time (user + sys) ${n(a)} → ${n(b)}, ratio | goal |`,
    '|---|---:|---:|---:|---:|---|',
  );
  const cpu = (name) => (cpuTimes[name] ? median(cpuTimes[name]) : undefined);
  for (const what of ['stats', 'cache get', 'run hit', 'ls | head']) {
    const label = what.replace('|', '\\|');
    const x = t[`${what} @${a}`];
    const y = t[`${what} @${b}`];
    const [cx, cy] = [cpu(`${what} @${a}`), cpu(`${what} @${b}`)];
    const cpuCell = cx && cy ? `${fmtMs(cx)} → ${fmtMs(cy)}, ${fmtX(cy / cx)}` : '–';
    md.push(`| \`${label}\` | ${fmtMs(x)} | ${fmtMs(y)} | ${fmtX(y / x)} | ${cpuCell} | ≤ 1.3× |`);
  }
  md.push(
    '',
    '| measurement | measured | goal |',
    '|---|---:|---|',
    `| \`gc\` evicting half of ${n(b)} entries (${n(gc.report.evicted?.entries ?? gc.report.entries ?? 0)} removed, ${n(gc.removed)} files deleted) | ${fmtMs(gc.ms)}${gc.cpuMs ? ` (CPU ${fmtMs(gc.cpuMs)})` : ''} | ≤ 5 s |`,
    `| \`rm -rf\` of ${n(gc.removed)} files of 1 KB (the floor of those deletions here) | ${fmtMs(gc.rm)}; gc = ${fmtX(gc.ms / gc.rm)} | |`,
    `| SDK fill rate, \`cacheResult\` of 1 KB values (${n(SIZES.fill)} in ${fmtMs(fill.ms)}) | ${n(Math.round(fill.perSecond))} entries/s | ≥ 2,000 entries/s |`,
    '',
  );
  return { t, gc, fill };
}

// ---------------------------------------------------------------- small results

/**
 * A cache of `count` SDK results of ~1 KB each, committed through the store API as `cacheResult`
 * commits them (small ones inside the index: store/index/small-blobs.ts).
 */
async function resultsProject(count) {
  const dir = join(work, `results-${count}`);
  mkdirSync(dir, { recursive: true });
  const { Store } = await import('../dist/store/store.js');
  const { STORE_SCHEMA } = await import('../dist/store/entry.js');
  const { hashBytes } = await import('../dist/fingerprint/hash.js');
  const opened = Store.open(join(dir, 'cache'));
  if (!opened.ok) throw new Error(opened.error.message);
  const store = opened.value;
  const BATCH = 1000;
  for (let i = 0; i < count; i += BATCH) {
    const chunk = [];
    for (let j = i; j < Math.min(count, i + BATCH); j++) {
      const data = Buffer.from(`result ${String(j).padStart(8, '0')}\n`.repeat(64));
      const hash = hashBytes('blake3', data);
      const e = {
        schema: STORE_SCHEMA,
        key: `${j.toString(16).padStart(8, '0')}${'c'.repeat(56)}`,
        task: `task${j % 50}`,
        algorithm: 'blake3',
        outputs: [{ path: 'result', type: 'file', mode: 0o644, size: data.byteLength, hash }],
        outputGlobs: [],
        cwd: '',
        logs: { stdout: null, stderr: null, chunks: [] },
        exitCode: 0,
        durationMs: 1234,
        createdAt: Date.now() - 86_400_000 + j,
        bytes: data.byteLength,
        ttlMs: 30 * 86_400_000,
        provenance: { host: 'bench', user: 'bench', version: '0', origin: 'local' },
        result: { encoding: 'raw' },
      };
      chunk.push(store.commit(e, { schema: 1 }, `result:${e.task}`, { data }));
    }
    for (const r of await Promise.all(chunk)) if (!r.ok) throw new Error(r.error.message);
  }
  const usage = store.usage();
  await store.close();
  const config = (extra = '') =>
    writeFileSync(join(dir, 'taskvault.config.ts'), `export default {${extra}\n};\n`);
  config();
  return { dir, cacheEnv: { TASKVAULT_CACHE_DIR: join(dir, 'cache') }, usage, config, count };
}

async function resultsBench(md) {
  const count = SIZES.entriesLarge;
  log(`results: filling ${n(count)} small results`);
  const t0 = performance.now();
  const p = await resultsProject(count);
  const fillMs = performance.now() - t0;
  log(`results: filled in ${fmtMs(fillMs)}; gc evicting half`);
  const gc = gcHalf(p);
  const evicted = gc.report.entries ?? 0;
  const rm = rmBaseline(evicted);
  md.push(
    `### gc of small SDK results (${n(count)} results of ~1 KB, kept inside the index)`,
    '',
    '| measurement | measured | goal |',
    '|---|---:|---|',
    `| \`gc\` evicting half of ${n(count)} results (${n(evicted)} removed; files in the cache ${gc.removed > 0 ? `${n(gc.removed)} fewer` : 'not fewer: none were blobs'}) | ${fmtMs(gc.ms)}${gc.cpuMs ? ` (CPU ${fmtMs(gc.cpuMs)})` : ''} | ≤ 5 s |`,
    `| \`rm -rf\` of ${n(evicted)} files of 1 KB (what deleting them as blob files would cost here) | ${fmtMs(rm)}; gc = ${fmtX(gc.ms / rm)} | |`,
    '',
  );
  return { gc, rm };
}

// ---------------------------------------------------------------- many small outputs

/** `files` files of 1 KB in directories of 200. */
function makeSmallTree(dir, files, bytes = 1024) {
  const block = Buffer.alloc(bytes, 'o');
  for (let i = 0; i < files; i++) {
    const d = join(dir, `d${String(Math.floor(i / 200)).padStart(3, '0')}`);
    if (i % 200 === 0) mkdirSync(d, { recursive: true });
    block.write(`${i}:`, 0);
    writeFileSync(join(d, `f${String(i).padStart(6, '0')}.js`), block);
  }
}

function outputsBench(md) {
  const count = SIZES.outputs;
  log(`outputs: generating ${n(count)} files`);
  const dir = join(work, 'outputs');
  const tree = join(dir, 'tree');
  makeSmallTree(tree, count);
  writeFileSync(join(dir, 'seed.txt'), 'outputs bench\n');
  const cacheEnv = { TASKVAULT_CACHE_DIR: join(dir, 'cache') };
  const cmd = tv('run', '--inputs', 'seed.txt', '--outputs', 'out', '--', 'cp', '-r', 'tree', 'out');
  const rmOut = (name) => () => rmSync(join(dir, name), { recursive: true, force: true });
  timed(cmd, dir, cacheEnv);
  rmOut('out')();
  const check = timed(cmd, dir, { ...cacheEnv, TASKVAULT_QUIET: '' });
  if (!/\bhit\b/.test(check.stderr)) throw new Error(`outputs bench: not a hit: ${check.stderr}`);
  const restored = spawnSync('find', ['out', '-type', 'f'], { cwd: dir, encoding: 'utf8' }).stdout.trim();
  if (restored.split('\n').length !== count) throw new Error('outputs bench: restore is incomplete');
  log(`outputs: timing (${SIZES.rounds} rounds)`);
  const t = alternate(
    [
      { name: 'taskvault hit', prep: rmOut('out'), run: () => timed(cmd, dir, cacheEnv).ms },
      { name: 'cp -r', prep: rmOut('cp-out'), run: () => timed(['cp', '-r', 'tree', 'cp-out'], dir).ms },
      { name: 'node -e 0', run: () => timed([process.execPath, '-e', '0'], dir).ms },
    ],
    SIZES.rounds,
  );
  log(`outputs: ${JSON.stringify(t)}`);
  rmSync(dir, { recursive: true, force: true });
  md.push(
    `### Hit restoring ${n(count)} small output files (1 KB each, ${count / 200} directories)`,
    '',
    `Medians of ${SIZES.rounds} alternating rounds; the output directory is removed before each run.`,
    '',
    '| contender | time | ratio to `cp -r` | goal |',
    '|---|---:|---:|---|',
    `| TaskVault hit | ${fmtMs(t['taskvault hit'])} | ${fmtX(t['taskvault hit'] / t['cp -r'])} | ≤ 1.0× |`,
    `| \`cp -r\` of the same tree (baseline) | ${fmtMs(t['cp -r'])} | 1.00× | |`,
    `| \`node -e 0\` | ${fmtMs(t['node -e 0'])} | ${fmtX(t['node -e 0'] / t['cp -r'])} | |`,
    '',
  );
  return t;
}

// ---------------------------------------------------------------- many inputs

/**
 * Each size timed twice in the same rounds: without the daemon (TASKVAULT_DAEMON=0: the stat walk)
 * and with a `taskvault daemon` of this build running for its cache (checked to vouch before the
 * timing starts). BENCH_DAEMON=0 leaves the daemon out.
 */
function inputsBench(md) {
  const withDaemon = process.env.BENCH_DAEMON !== '0';
  const projects = SIZES.inputs.map((files) => {
    log(`inputs: generating ${n(files)} files of 1 KB`);
    const dir = join(work, `inputs-${files}`);
    writePackage(dir, `inputs-${files}`, files, ['src/**'], 1024);
    const cacheEnv = { TASKVAULT_CACHE_DIR: join(dir, 'cache') };
    const walkEnv = { ...cacheEnv, TASKVAULT_DAEMON: '0' };
    timed(tv('run', 'build'), dir, walkEnv);
    rmSync(join(dir, 'dist'), { recursive: true, force: true });
    const check = timed(tv('run', 'build'), dir, { ...walkEnv, TASKVAULT_QUIET: '' });
    if (!/\bhit\b/.test(check.stderr)) throw new Error(`inputs bench: not a hit: ${check.stderr}`);
    const prep = () => rmSync(join(dir, 'dist'), { recursive: true, force: true });
    const contenders = [
      { files, name: `hit @${files}`, prep, run: () => timed(tv('run', 'build'), dir, walkEnv).ms },
    ];
    if (withDaemon) {
      startVouchingDaemon(dir, cacheEnv, files);
      contenders.push({
        files,
        name: `daemon hit @${files}`,
        prep,
        run: () => timed(tv('run', 'build'), dir, cacheEnv).ms,
      });
    }
    return { files, dir, cacheEnv, contenders };
  });
  log(`inputs: timing (${SIZES.rounds} rounds)`);
  const t = alternate(
    [
      ...projects.flatMap((p) => p.contenders),
      { name: 'node -e 0', run: () => timed([process.execPath, '-e', '0'], work).ms },
    ],
    SIZES.rounds,
  );
  log(`inputs: ${JSON.stringify(t)}`);
  const floor = t['node -e 0'];
  const goals = [1.3, 1.8, 4];
  md.push(
    '### Hit against the number of input files (1 KB each)',
    '',
    `Medians of ${SIZES.rounds} alternating rounds; \`dist/\` is removed before each hit, so each restores.` +
      (withDaemon
        ? ' "With the daemon": `taskvault daemon` running for the cache and vouching for the inputs; "walk": `TASKVAULT_DAEMON=0`.'
        : ''),
    '',
    withDaemon
      ? '| inputs | `node -e 0` | hit, walk | ratio | hit, with the daemon | ratio | goal |'
      : '| inputs | `node -e 0` | hit | ratio | goal |',
    withDaemon ? '|---:|---:|---:|---:|---:|---:|---|' : '|---:|---:|---:|---:|---|',
  );
  projects.forEach((p, i) => {
    const walk = t[`hit @${p.files}`];
    const cells = [n(p.files), fmtMs(floor), fmtMs(walk), fmtX(walk / floor)];
    if (withDaemon) {
      const d = t[`daemon hit @${p.files}`];
      cells.push(fmtMs(d), fmtX(d / floor));
    }
    md.push(`| ${cells.join(' | ')} | ≤ ${goals[i]}× |`);
  });
  const [, mid, top] = projects;
  const per10k = (name) => ((t[name(top)] - t[name(mid)]) / (top.files - mid.files)) * 10_000;
  md.push(
    '',
    `Cost per extra 10,000 inputs (between ${n(mid.files)} and ${n(top.files)}): ${fmtMs(per10k((p) => `hit @${p.files}`))} walking` +
      (withDaemon ? `, ${fmtMs(per10k((p) => `daemon hit @${p.files}`))} with the daemon.` : '.'),
    '',
  );
  if (withDaemon) md.push(...hitPhases(projects), '');
  for (const p of projects) {
    if (withDaemon) timed(tv('daemon', 'stop'), p.dir, p.cacheEnv, { check: false });
    rmSync(p.dir, { recursive: true, force: true });
  }
  return t;
}

/** Starts the daemon for a project's cache and runs hits until it vouches for the inputs. */
function startVouchingDaemon(dir, cacheEnv, files) {
  timed(tv('daemon', 'start'), dir, cacheEnv);
  for (let i = 0; i < 20; i++) {
    const r = timed(tv('run', 'build'), dir, {
      ...cacheEnv,
      TASKVAULT_TRACE: '1',
      TASKVAULT_DAEMON_TIMEOUT_MS: '5000',
    });
    const said = /· daemon: ([^·\n]*)/.exec(r.stderr)?.[1]?.trim();
    if (said === 'unchanged') return;
    log(`inputs @${files}: daemon: ${said}`);
    if (i > 2) spawnSync('sleep', ['1']);
  }
  throw new Error(`inputs bench @${files}: the daemon never vouched for the inputs`);
}

/**
 * Where a hit's time goes (TASKVAULT_TRACE phases, medians of 5 hits each, not alternated): start =
 * Node's own start-up + loading the CLI bundle + reading the config; fingerprint = the daemon's
 * answer (or the walk); hot hit = restore and replay.
 */
function hitPhases(projects) {
  const rows = [
    '| inputs | how | start (Node + bundle + config) | fingerprint | hot hit (restore) | exit | daemon vouched |',
    '|---:|---|---:|---:|---:|---:|---:|',
  ];
  for (const p of projects) {
    for (const [how, extra] of [
      ['walk', { TASKVAULT_DAEMON: '0' }],
      ['daemon', {}],
    ]) {
      const phases = { start: [], fingerprint: [], 'hot hit': [], exit: [] };
      let vouched = 0;
      for (let i = 0; i < 5; i++) {
        rmSync(join(p.dir, 'dist'), { recursive: true, force: true });
        const r = timed(tv('run', 'build'), p.dir, { ...p.cacheEnv, ...extra, TASKVAULT_TRACE: '1' });
        if (/· daemon: unchanged/.test(r.stderr)) vouched++;
        for (const k of Object.keys(phases)) {
          const m = new RegExp(`(?:trace: |· )${k} ([\\d.]+)ms`).exec(r.stderr);
          if (m) phases[k].push(Number(m[1]));
        }
      }
      const cell = (k) => (phases[k].length ? fmtMs(median(phases[k])) : '–');
      rows.push(
        `| ${n(p.files)} | ${how} | ${cell('start')} | ${cell('fingerprint')} | ${cell('hot hit')} | ${cell('exit')} | ${how === 'daemon' ? `${vouched} of 5` : ''} |`,
      );
    }
  }
  return ['Phases of a hit (`TASKVAULT_TRACE=1`, medians of 5, outside the timed rounds):', '', ...rows];
}

// ---------------------------------------------------------------- main

const md = [];
md.push(
  `## Scale (bench/scale.mjs${QUICK ? ', BENCH_QUICK=1' : ''}; load average at the start: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`,
  '',
);
try {
  if (parts.has('index')) await indexBench(md);
  if (parts.has('outputs')) outputsBench(md);
  if (parts.has('inputs')) inputsBench(md);
  if (parts.has('fill')) await fillBench(md);
  if (parts.has('results')) await resultsBench(md);
  md.push(
    `Load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}.`,
  );
  process.stdout.write(`${md.join('\n')}\n`);
} catch (e) {
  process.stdout.write(`${md.join('\n')}\n`);
  process.stderr.write(`bench/scale: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
}

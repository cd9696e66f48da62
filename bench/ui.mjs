#!/usr/bin/env node
// Dashboard and metrics benchmark: a cache of 100,000 entries with 30 days of hourly history at
// 100,000 runs a day. Each figure is printed with a baseline measured in the same run:
//   first paint   the dashboard drawn with its data (chromium, fresh page)  vs  a bare static page
//                 from a bare node:http server in the same browser; budget 1 s. Once on a server
//                 that has served pages before, once on a server just started (what --open shows)
//   30 days by day  the view's buckets read from day rollups  vs  summed from the hourly buckets
//   GET /metrics  on `taskvault ui`  vs  a bare node:http reply of the same bytes; budget 100 ms
//   taskvault metrics --stdout  vs  taskvault stats --json (two CLI processes); budget 1.5x
// Usage: npm run build && node bench/ui.mjs   (BENCH_UI_ENTRIES=N to change the size;
// BENCH_UI_FIXTURE=DIR to keep the filled cache in DIR and reuse it in the next runs)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { STORE_SCHEMA } from '../dist/store/entry.js';
import { Store } from '../dist/store/store.js';
import { HOUR_MS, sumBuckets } from '../dist/store/timeseries.js';
import { median } from './common.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPO, 'dist', 'cli.cjs');
const N = Number(process.env.BENCH_UI_ENTRIES) || 100_000;
const DAYS = 30;
const RUNS_PER_DAY = 100_000;
const TASKS = 40;
const ROUNDS = 7;
const FRESH_ROUNDS = 5;
// BENCH_UI_FIXTURE=DIR keeps the cache in DIR and reuses it in later runs (filling it takes minutes).
const fixture = process.env.BENCH_UI_FIXTURE;
const dir = fixture ?? mkdtempSync(join(tmpdir(), 'tv-bench-ui-'));
if (fixture) mkdirSync(dir, { recursive: true });
else if (!process.env.KEEP_TMP) process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
else console.error(`fixture kept in ${dir}`);
const fmt = (ms) => (ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`);

// --- The cache: N entries (sharing one output blob) and DAYS of hourly buckets -----------------
const setupStart = performance.now();
const cacheDir = join(dir, '.taskvault', 'cache');
const ready = join(dir, 'filled');
if (existsSync(ready))
  console.error(`setup: reusing the cache in ${dir} (filled ${readFileSync(ready, 'utf8')})`);
else {
  writeFileSync(
    join(dir, 'taskvault.config.json'),
    JSON.stringify({ cost: { currency: 'EUR', perHour: { default: 0.4, task1: 3.2 } } }),
  );
  const opened = Store.open(cacheDir);
  if (!opened.ok) throw new Error(opened.error.message);
  const store = opened.value;
  const blob = await store.blobs.putBytes('blake3', Buffer.from('built output\n'.repeat(100)));
  const now = Date.now();
  for (let i = 0; i < N; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) {
      const task = `task${j % TASKS}`;
      // Not hex, so no copy in hot/ is written (the dashboard never reads hot/).
      const key = `${j.toString(16).padStart(8, '0')}${'k'.repeat(56)}`;
      const entry = {
        schema: STORE_SCHEMA,
        key,
        task,
        algorithm: 'blake3',
        outputs: [{ path: `dist/out-${j}.js`, type: 'file', mode: 0o644, size: blob.size, hash: blob.hash }],
        outputGlobs: ['dist/**'],
        cwd: '.',
        logs: { stdout: null, stderr: null, chunks: [] },
        exitCode: 0,
        durationMs: 1000 + (j % 600) * 100,
        createdAt: now - DAYS * 86_400_000 + Math.floor((j / N) * DAYS * 86_400_000),
        bytes: blob.size,
        ttlMs: 90 * 86_400_000,
        provenance: { host: 'bench', user: 'bench', version: '0', origin: 'local' },
      };
      batch.push(store.commit(entry, { schema: 1, task }, task));
    }
    await Promise.all(batch);
  }
  // 30 days of history, as the store books it: hits, misses, saves, a few evictions and errors.
  const perHour = Math.round(RUNS_PER_DAY / 24);
  const firstHour = Math.floor(now / HOUR_MS) - DAYS * 24;
  // One record() call: outside a write transaction, a bucket put by one call is not yet visible to
  // the next one's read.
  const items = [];
  for (let h = firstHour; h <= firstHour + DAYS * 24; h++) {
    const at = h * HOUR_MS;
    for (let r = 0; r < perHour; r++) {
      const task = `task${r % TASKS}`;
      if (r % 5 === 0) {
        items.push({ at, happening: { kind: 'miss', task } });
        items.push({
          at,
          happening: { kind: 'save', task, durationMs: 1000 + (r % 97) * 500, usage: N * 1300 },
        });
      } else
        items.push({
          at,
          happening: { kind: 'hit', task, savedMs: 1000 + (r % 89) * 300, remote: r % 7 === 0 },
        });
    }
    items.push({
      at,
      happening: { kind: 'evict', reason: 'lru', entries: 20, bytes: 26_000, usage: N * 1300 },
    });
    items.push({ at, happening: { kind: 'error', errorKind: 'run' } });
  }
  await Promise.all(store.series.record(items));
  await store.flush();
  await store.close();
  writeFileSync(ready, new Date().toISOString());
  console.error(
    `setup: ${N} entries, ${DAYS} days x ${perHour} runs/hour, ${fmt(performance.now() - setupStart)}`,
  );
}

// --- The 30-day view's buckets, in process: day rollups against summing the hours ---------------
const reader = Store.open(cacheDir);
if (!reader.ok) throw new Error(reader.error.message);
const series = reader.value.series;
const nowHour = Math.floor(Date.now() / HOUR_MS);
const spanFrom = Math.floor((nowHour - DAYS * 24 + 1) / 24) * 24;
const rollupTimes = { days: [], hours: [] };
const viaDays = () => series.steps(spanFrom, nowHour + 1, 'day');
const viaHours = () => {
  const byDay = new Map();
  for (const { hour, bucket } of series.range(spanFrom, nowHour + 1)) {
    const day = Math.floor(hour / 24);
    byDay.set(day, [...(byDay.get(day) ?? []), bucket]);
  }
  return [...byDay.values()].map((b) => sumBuckets(b));
};
if (viaDays().length !== viaHours().length) throw new Error('day rollups and hours disagree');
for (let r = 0; r < 21; r++)
  for (const [name, f] of r % 2
    ? [
        ['days', viaDays],
        ['hours', viaHours],
      ]
    : [
        ['hours', viaHours],
        ['days', viaDays],
      ]) {
    const t = performance.now();
    f();
    rollupTimes[name].push(performance.now() - t);
  }
await reader.value.close();

// --- Servers: taskvault ui, and the bare baselines ----------------------------------------------
function freePort() {
  return new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const env = { ...process.env, NO_COLOR: '1' };
for (const k of Object.keys(env)) if (k.startsWith('TASKVAULT_')) delete env[k];
/** `taskvault ui` on a free port, once it says it listens. */
async function startUi() {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'ui', '--port', String(port)], {
    cwd: dir,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  process.on('exit', () => child.kill());
  await new Promise((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      if (/dashboard on/.test(err)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`taskvault ui exited ${code}: ${err}`)));
  });
  const stop = () => {
    child.removeAllListeners('exit');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill();
    return exited;
  };
  return { url: `http://127.0.0.1:${port}`, stop };
}
const ui = await startUi();
const uiUrl = ui.url;
const metricsBody = await (await fetch(`${uiUrl}/metrics`)).text();

const BARE_PAGE =
  '<!doctype html><html><head><title>baseline</title></head><body><h1>baseline</h1><script>document.body.dataset.ready = "1"; window.tvFirstRender = performance.now();</script></body></html>';
const bare = http.createServer((req, res) => {
  if (req.url === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    return res.end(metricsBody);
  }
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(BARE_PAGE);
});
await new Promise((resolve) => bare.listen(0, '127.0.0.1', resolve));
const bareUrl = `http://127.0.0.1:${bare.address().port}`;

// --- First paint ---------------------------------------------------------------------------------
const profile = mkdtempSync(join(tmpdir(), 'tv-bench-ui-profile-'));
process.on('exit', () => rmSync(profile, { recursive: true, force: true }));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1400, height: 1000 },
});

/** Milliseconds from navigation start to the page drawn with its data (window.tvFirstRender). */
async function paint(url) {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
  const ms = await page.evaluate(() => window.tvFirstRender);
  await page.close();
  return ms;
}
await paint(`${uiUrl}/`); // warm-up: the server's first listing of the entries, the browser's caches
// Alternating, so drifting machine load hits all three alike.
const views = { '30 days': `${uiUrl}/?range=30d`, '7 days': `${uiUrl}/`, bare: bareUrl };
const paints = Object.fromEntries(Object.keys(views).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) {
  const names = Object.keys(views);
  for (let i = 0; i < names.length; i++) {
    const name = names[(i + r) % names.length];
    paints[name].push(await paint(views[name]));
  }
}
// What `taskvault ui --open` shows first: a server that has read nothing yet (no warm-up).
const fresh = [];
for (let r = 0; r < FRESH_ROUNDS; r++) {
  const cold = await startUi();
  fresh.push(await paint(`${cold.url}/?range=30d`));
  await cold.stop();
}
await browser.close();

// --- GET /metrics ---------------------------------------------------------------------------------
async function timed(url) {
  const t = performance.now();
  const res = await fetch(url);
  await res.text();
  return performance.now() - t;
}
await timed(`${uiUrl}/metrics`);
const metricsTimes = { ui: [], bare: [] };
for (let r = 0; r < 21; r++) {
  metricsTimes.ui.push(await timed(`${uiUrl}/metrics`));
  metricsTimes.bare.push(await timed(`${bareUrl}/metrics`));
}
await ui.stop();
bare.close();

// --- taskvault metrics vs taskvault stats ---------------------------------------------------------
function cli(args) {
  const t = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: dir,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (r.status !== 0) throw new Error(`taskvault ${args.join(' ')}: ${r.stderr}`);
  return performance.now() - t;
}
const cliTimes = { metrics: [], stats: [] };
cli(['stats', '--json']);
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 ? ['stats', 'metrics'] : ['metrics', 'stats'];
  for (const name of order)
    cliTimes[name].push(cli(name === 'stats' ? ['stats', '--json'] : ['metrics', '--stdout']));
}

// --- Report ----------------------------------------------------------------------------------------
const m = (xs) => median(xs);
const rows = [
  [
    'dashboard first paint, 30-day view',
    m(paints['30 days']),
    'bare static page',
    m(paints.bare),
    1000,
    'ms',
  ],
  ['dashboard first paint, 7-day view', m(paints['7 days']), 'bare static page', m(paints.bare), 1000, 'ms'],
  ['first paint, 30-day view, fresh server', m(fresh), 'bare static page', m(paints.bare), 1000, 'ms'],
  [
    '30 days by day, read (day rollups + today by hour)',
    m(rollupTimes.days),
    'the same summed from ~720 hourly buckets',
    m(rollupTimes.hours),
    null,
    'less',
  ],
  ['GET /metrics', m(metricsTimes.ui), 'bare node:http, same bytes', m(metricsTimes.bare), 100, 'ms'],
  [
    'taskvault metrics --stdout',
    m(cliTimes.metrics),
    'taskvault stats --json',
    m(cliTimes.stats),
    null,
    'x1.5',
  ],
];
console.log(
  `\n${N.toLocaleString('en')} entries, ${DAYS} days of history at ${RUNS_PER_DAY.toLocaleString('en')} runs/day (medians of ${ROUNDS}, fresh servers of ${FRESH_ROUNDS}, /metrics of 21; load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')})\n`,
);
console.log('| measure | median | baseline | baseline median | ratio | budget | within |');
console.log('|---|---|---|---|---|---|---|');
let ok = true;
for (const [name, v, base, b, budget, unit] of rows) {
  const ratio = v / b;
  const within = unit === 'x1.5' ? ratio <= 1.5 : unit === 'less' ? ratio < 1 : v <= budget;
  ok &&= within;
  console.log(
    `| ${name} | ${fmt(v)} | ${base} | ${fmt(b)} | ${ratio.toFixed(2)}x | ${unit === 'x1.5' ? '<= 1.5x stats' : unit === 'less' ? '< 1x' : `<= ${budget} ms`} | ${within ? 'yes' : 'NO'} |`,
  );
}
process.exitCode = ok ? 0 : 1;

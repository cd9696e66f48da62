/**
 * Prometheus metrics: GET /metrics and `taskvault metrics` (the node_exporter textfile) pass
 * `promtool check metrics` (Debian's prometheus package) and add up to `taskvault stats --json`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir } from '../support/helpers.js';
import { project, runGen } from '../support/remote-project.js';
import { nginxFor } from '../support/servers.js';
import { startUi } from '../support/ui-server.js';

const test = suite('prometheus metrics');
const ng = nginxFor(test);
let dir = '';

function promtool(text: string): { code: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error)
    throw new Error(
      `promtool: ${r.error.message} (Debian package prometheus: bash .ci/install-system-packages)`,
    );
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Sample values by series name: the sum over all label sets, and each labelled line. */
function parse(text: string): { sum: (name: string, match?: string) => number; lines: string[] } {
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  return {
    lines,
    sum: (name, match = '') =>
      lines
        .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(match))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0),
  };
}

async function stats() {
  return JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out) as {
    entries: number;
    totalBytes: number;
    limitBytes: number;
    hits: number;
    remoteHits: number;
    misses: number;
    savedMs: number;
  };
}

function matchesStats(text: string, s: Awaited<ReturnType<typeof stats>>): void {
  const m = parse(text);
  assert.is(m.sum('taskvault_hits_total'), s.hits);
  assert.is(m.sum('taskvault_hits_total', 'source="remote"'), s.remoteHits);
  assert.is(m.sum('taskvault_misses_total'), s.misses);
  assert.ok(Math.abs(m.sum('taskvault_time_saved_seconds_total') * 1000 - s.savedMs) < 1);
  assert.is(m.sum('taskvault_cache_size_bytes'), s.totalBytes);
  assert.is(m.sum('taskvault_cache_limit_bytes'), s.limitBytes);
  assert.is(m.sum('taskvault_entries'), s.entries);
  assert.ok(m.sum('taskvault_evictions_total', 'reason="lru"') >= 1, 'the eviction is counted');
  assert.is(
    m.sum('taskvault_run_duration_seconds_count'),
    m.sum('taskvault_run_duration_seconds_bucket', 'le="+Inf"'),
  );
  assert.ok(m.sum('taskvault_remote_bytes_total', 'direction="down"') > 0, 'the pulled entry is counted');
  assert.ok(m.sum('taskvault_remote_bytes_total', 'direction="up"') > 0, 'the pushed blobs are counted');
  for (const name of ['taskvault_errors_total', 'taskvault_hits_total{task="gen",source="local"}'])
    assert.ok(
      m.lines.some((l) => l.startsWith(name)),
      name,
    );
}

test.before(async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/metrics` };
  assert.is((await runGen(project(), env)).code, 0);
  // Two gen entries (~0.8 MB each) do not fit 1.2 MB: the second save evicts the first.
  dir = project({ maxSizeGb: 0.0012, metrics: { textfile: true } });
  assert.match((await runGen(dir, env)).err, /hit \(remote\)/);
  assert.match((await runGen(dir, env)).err, /taskvault: hit /);
  writeFileSync(join(dir, 'src/input.txt'), 'changed\n');
  assert.match((await runGen(dir, env)).err, /evicted 1 entry/);
});

test('taskvault metrics writes a textfile that promtool accepts and that matches stats', async () => {
  const r = await runCli(['metrics'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  const file = join(dir, '.taskvault', 'metrics', 'prometheus.txt');
  const text = readFileSync(file, 'utf8');
  const checked = promtool(text);
  assert.is(checked.code, 0, checked.out);
  assert.is(checked.out.trim(), '', checked.out);
  matchesStats(text, await stats());
  // Written beside its name and renamed: no temp file is left behind.
  assert.equal(readdirSync(join(dir, '.taskvault', 'metrics')), ['prometheus.txt']);
});

test('metrics.textfile in the config refreshes the file after each run', async () => {
  const file = join(dir, '.taskvault', 'metrics', 'prometheus.txt');
  const before = parse(readFileSync(file, 'utf8')).sum('taskvault_hits_total');
  assert.match((await runGen(dir, {})).err, /taskvault: hit /);
  const after = readFileSync(file, 'utf8');
  assert.is(parse(after).sum('taskvault_hits_total'), before + 1);
  matchesStats(after, await stats());
});

test('--textfile writes where it is told, creating the directory', async () => {
  const out = join(tempDir('tv-textfile-'), 'collector', 'taskvault.prom');
  const r = await runCli(['metrics', '--textfile', out], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(promtool(readFileSync(out, 'utf8')).code, 0);
});

test('--textfile into a directory that cannot be written: one line, non-zero exit', async () => {
  const blocked = join(tempDir('tv-textfile-'), 'file');
  writeFileSync(blocked, 'not a directory');
  const r = await runCli(['metrics', '--textfile', join(blocked, 'x.prom')], { cwd: dir });
  assert.is.not(r.code, 0);
  assert.is(r.err.trim().split('\n').length <= 2, true, r.err);
  assert.match(r.err, /cannot write the metrics file/);
  assert.not.match(r.err, /\n\s+at /);
});

test('GET /metrics on the ui server passes promtool and matches stats', async () => {
  const ui = await startUi(dir);
  try {
    const res = await fetch(`${ui.url}/metrics`);
    assert.is(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const checked = promtool(text);
    assert.is(checked.code, 0, checked.out);
    matchesStats(text, await stats());
  } finally {
    await ui.stop();
  }
  assert.ok(existsSync(join(dir, '.taskvault', 'metrics', 'prometheus.txt')));
});

test.run();

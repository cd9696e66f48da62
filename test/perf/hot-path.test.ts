/**
 * Hits served from hot/ (src/store/hot.ts) without the LMDB index: lmdb is not even loaded, yet
 * every hit is counted, removal and expiry still apply, a damaged copy or blob degrades to the
 * full path, and concurrent folds of the hits journal count each hit once.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Store } from '../../src/store/store.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

const CMD = [
  'run',
  '--inputs',
  'src/**',
  '--outputs',
  'out/**',
  '--',
  'node',
  '-e',
  "const fs=require('fs');fs.appendFileSync('runs.log','x');fs.mkdirSync('out',{recursive:true});fs.writeFileSync('out/o.txt',fs.readFileSync('src/a.txt','utf8')+'!');console.log('made')",
];

function project(): string {
  return writeTree(tempDir(), { 'src/a.txt': 'a', 'src/lib/b.txt': 'b' });
}
const cache = (dir: string) => join(dir, '.taskvault', 'cache');
const runs = (dir: string) =>
  existsSync(join(dir, 'runs.log')) ? readFileSync(join(dir, 'runs.log'), 'utf8').length : 0;
const hotFiles = (dir: string) =>
  existsSync(join(cache(dir), 'hot')) ? readdirSync(join(cache(dir), 'hot')) : [];

/** A CommonJS preload that logs every require()d module id: lmdb is loaded through require. */
function requireTracer(dir: string): { env: Record<string, string>; loaded: () => string } {
  const log = join(dir, 'require.log');
  const hook = join(dir, 'trace-require.cjs');
  writeFileSync(
    hook,
    `const M = require('module'); const fs = require('fs'); const load = M._load;
M._load = function (id, ...rest) { fs.appendFileSync(${JSON.stringify(log)}, id + '\\n'); return load.call(this, id, ...rest); };\n`,
  );
  return {
    env: { NODE_OPTIONS: `--require ${hook}` },
    loaded: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
  };
}

test('a repeat hit is served from hot/ without loading lmdb, and outputs and logs are exact', async () => {
  const dir = project();
  const miss = await runCli(CMD, { cwd: dir });
  assert.is(miss.code, 0, miss.err);
  assert.is(hotFiles(dir).length, 1, 'the commit wrote no hot copy');

  const tracer = requireTracer(tempDir());
  rmSync(join(dir, 'out'), { recursive: true });
  const hit = await runCli(CMD, { cwd: dir, env: tracer.env });
  assert.is(hit.code, 0, hit.err);
  assert.match(hit.err, /hit [0-9a-f]{10}/);
  assert.is(hit.out, 'made\n');
  assert.is(readFileSync(join(dir, 'out/o.txt'), 'utf8'), 'a!');
  assert.is(runs(dir), 1);
  assert.not.match(tracer.loaded(), /lmdb/, 'lmdb loaded on a hot hit');

  // A miss does need the index.
  writeFileSync(join(dir, 'src/a.txt'), 'changed');
  const tracer2 = requireTracer(tempDir());
  const miss2 = await runCli(CMD, { cwd: dir, env: tracer2.env });
  assert.match(miss2.err, /miss/);
  assert.match(tracer2.loaded(), /lmdb/);
});

test('TASKVAULT_TRACE=1 names each phase a run went through, hit and miss', async () => {
  const dir = project();
  const miss = await runCli(CMD, { cwd: dir, env: { TASKVAULT_TRACE: '1' } });
  assert.match(
    miss.err,
    /taskvault: trace: start [\d.]+ms · fingerprint [\d.]+ms · hot lookup .*· command [\d.]+ms .*· commit [\d.]+ms/,
  );
  const hit = await runCli(CMD, { cwd: dir, env: { TASKVAULT_TRACE: '1' } });
  assert.match(hit.err, /taskvault: trace: start [\d.]+ms · fingerprint [\d.]+ms · hot hit [\d.]+ms · exit/);
  assert.not.match((await runCli(CMD, { cwd: dir })).err, /trace:/, 'off by default');
});

test('hot hits are counted: stats, ls and the audit log see every one', async () => {
  const dir = project();
  await runCli(CMD, { cwd: dir });
  for (let i = 0; i < 5; i++) {
    const hit = await runCli(CMD, { cwd: dir });
    assert.match(hit.err, /hit/);
  }
  assert.ok(existsSync(join(cache(dir), 'hits.journal')));
  const stats = await runCli(['stats', '--json'], { cwd: dir });
  assert.is(stats.code, 0, stats.err);
  const s = JSON.parse(stats.out) as { hits: number; misses: number };
  assert.is(s.hits, 5);
  assert.is(s.misses, 1);
  // Folded once: opening the store again does not count them twice.
  const again = JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out) as { hits: number };
  assert.is(again.hits, 5);
  const ls = await runCli(['ls', '--json'], { cwd: dir });
  const entries = JSON.parse(ls.out) as Array<{ hits: number }>;
  assert.is(entries[0]?.hits, 5);
  const audit = readFileSync(join(cache(dir), 'audit.log'), 'utf8');
  assert.is(audit.match(/ HIT /g)?.length, 5);
});

test('clean and TTL expiry still apply to hot copies: the next run misses', async () => {
  const dir = project();
  await runCli(CMD, { cwd: dir });
  const cleaned = await runCli(['clean', '--yes'], { cwd: dir });
  assert.is(cleaned.code, 0, cleaned.err);
  assert.equal(hotFiles(dir), [], 'clean left a hot copy');
  const afterClean = await runCli(CMD, { cwd: dir });
  assert.match(afterClean.err, /miss/);
  assert.is(runs(dir), 2);

  const later = String(Date.now() + 8 * 24 * 60 * 60_000); // past the 7-day default TTL
  const expired = await runCli(CMD, { cwd: dir, env: { TASKVAULT_NOW_MS: later } });
  assert.match(expired.err, /miss/);
  assert.is(runs(dir), 3);
});

test('a damaged hot copy or blob falls back to the full path, which handles it as before', async () => {
  const dir = project();
  await runCli(CMD, { cwd: dir });
  const [key] = hotFiles(dir);
  writeFileSync(join(cache(dir), 'hot', key!), '{ not json');
  const fromIndex = await runCli(CMD, { cwd: dir });
  assert.match(fromIndex.err, /hit/, 'an unreadable hot copy must not cost the hit');
  assert.ok(JSON.parse(readFileSync(join(cache(dir), 'hot', key!), 'utf8')), 'the copy was not rewritten');

  // Corrupt the output blob: the hot path declines, the full path detects, removes and re-runs.
  const entry = JSON.parse(readFileSync(join(cache(dir), 'hot', key!), 'utf8')) as {
    outputs: Array<{ hash?: string }>;
  };
  const hash = entry.outputs.find((o) => o.hash)!.hash!;
  writeFileSync(join(cache(dir), 'blobs', hash.slice(0, 2), hash.slice(2)), 'tampered');
  rmSync(join(dir, 'out'), { recursive: true });
  const rerun = await runCli(CMD, { cwd: dir });
  assert.is(rerun.code, 0, rerun.err);
  assert.match(rerun.err, /not used: output blob corrupt/);
  assert.is(readFileSync(join(dir, 'out/o.txt'), 'utf8'), 'a!');
  assert.is(runs(dir), 2);
});

test('gc deletes a hot copy whose entry the index no longer has', async () => {
  const dir = project();
  await runCli(CMD, { cwd: dir });
  const [key] = hotFiles(dir);
  const copy = readFileSync(join(cache(dir), 'hot', key!));
  const opened = Store.open(cache(dir));
  assert.ok(opened.ok);
  await opened.value.remove(key!);
  await opened.value.close();
  assert.equal(hotFiles(dir), [], 'removal left the hot copy');
  // As if the process had died between removing the entry and its copy.
  writeFileSync(join(cache(dir), 'hot', key!), copy);
  const gc = await runCli(['gc', '--json'], { cwd: dir });
  assert.is(gc.code, 0, gc.err);
  assert.is((JSON.parse(gc.out) as { staleHot: { files: number } }).staleHot.files, 1);
  assert.equal(hotFiles(dir), []);
});

test('the hits journal: torn lines are skipped, concurrent folds count each hit once, it starts over past 1 MiB', async () => {
  const dir = project();
  await runCli(CMD, { cwd: dir });
  const [key] = hotFiles(dir);
  const journal = join(cache(dir), 'hits.journal');
  const line = `${key} ${Date.now()} 10\n`;
  const lines = Math.ceil((1024 * 1024) / line.length) + 100; // past the rotation size
  writeFileSync(journal, `${line.repeat(lines)}garbage line\n${key} 123`); // the last line is torn
  const folds = await Promise.all(Array.from({ length: 4 }, () => runCli(['stats', '--json'], { cwd: dir })));
  for (const f of folds) assert.is(f.code, 0, f.err);
  const s = JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out) as {
    hits: number;
    savedMs: number;
  };
  assert.is(s.hits, lines);
  assert.is(s.savedMs, lines * 10);
  assert.ok(!existsSync(journal) || readFileSync(journal).length < 100, 'the journal did not start over');
});

test('a cache that only ever hits still folds its journal: a hit past 4 MiB of it opens the index once', async () => {
  const dir = project();
  await runCli(CMD, { cwd: dir });
  const [key] = hotFiles(dir);
  const journal = join(cache(dir), 'hits.journal');
  const line = `${key} ${Date.now()} 1\n`;
  const lines = Math.ceil((4 * 1024 * 1024) / line.length);
  writeFileSync(journal, line.repeat(lines));
  const hit = await runCli(CMD, { cwd: dir });
  assert.match(hit.err, /\bhit\b/);
  assert.ok(!existsSync(journal) || readFileSync(journal).length < 1024, 'the journal was not folded');
  // Folded by the hit itself: the index already counts every line, the hit's own included.
  const opened = Store.open(cache(dir));
  assert.ok(opened.ok);
  const counters = opened.value.getCounters();
  await opened.value.close();
  assert.is(counters.hits, lines + 1);
});

test.run();

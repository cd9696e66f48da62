/**
 * Hit counts are exact (issue 22, item 5): hits served from hot/ go to hits.journal, and folding
 * it into the index counts every line once, whatever the interleaving of hits, folds and the
 * journal's rotation, and whatever fold died half way. Real CLI processes on a real cache.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

const CMD = [
  'run',
  '--stdin=ignore',
  '--inputs',
  'src/**',
  '--outputs',
  'out/**',
  '--',
  'node',
  '-e',
  "require('fs').mkdirSync('out',{recursive:true});require('fs').writeFileSync('out/o.txt','o')",
];

const cache = (dir: string) => join(dir, '.taskvault', 'cache');
const segments = (dir: string) => readdirSync(cache(dir)).filter((n) => n.endsWith('.rotated'));

async function stats(dir: string): Promise<{ hits: number; savedMs: number }> {
  const r = await runCli(['stats', '--json'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  return JSON.parse(r.out) as { hits: number; savedMs: number };
}

/** A project with one committed entry; its key. */
async function committed(): Promise<{ dir: string; key: string }> {
  const dir = writeTree(tempDir(), { 'src/a.txt': 'a' });
  const miss = await runCli(CMD, { cwd: dir });
  assert.is(miss.code, 0, miss.err);
  const [key] = readdirSync(join(cache(dir), 'hot'));
  assert.ok(key);
  return { dir, key };
}

test('concurrent hits and folds across the journal rotation: every hit counted once', async () => {
  const { dir, key } = await committed();
  const line = `${key} ${Date.now()} 10\n`;
  // Just below the rotation size: the first fold during the hits below rotates the journal.
  const prefilled = Math.floor((1024 * 1024) / line.length) - 5;
  writeFileSync(join(cache(dir), 'hits.journal'), line.repeat(prefilled));
  let hits = 0;
  for (let wave = 0; wave < 3; wave++) {
    const runs = await Promise.all([
      ...Array.from({ length: 8 }, () => runCli(CMD, { cwd: dir })),
      ...Array.from({ length: 3 }, () => runCli(['stats', '--json'], { cwd: dir })),
    ]);
    for (const r of runs.slice(0, 8)) {
      assert.is(r.code, 0, r.err);
      assert.match(r.err, /\bhit\b/, r.err);
    }
    hits += 8;
  }
  assert.is((await stats(dir)).hits, prefilled + hits);
  assert.is((await stats(dir)).hits, prefilled + hits, 'a second fold counted again');
  assert.ok(segments(dir).length <= 1, 'the journal was rotated more than once');
});

test('a line written into the journal just after it was rotated is still counted', async () => {
  const { dir, key } = await committed();
  const line = `${key} ${Date.now()} 7\n`;
  const lines = Math.ceil((1024 * 1024) / line.length) + 10; // past the rotation size
  writeFileSync(join(cache(dir), 'hits.journal'), line.repeat(lines));
  assert.is((await stats(dir)).hits, lines);
  const [segment] = segments(dir);
  assert.ok(segment, 'the journal was not rotated');
  assert.ok(!existsSync(join(cache(dir), 'hits.journal')));
  // A hit whose process opened the journal just before the rename writes into the segment.
  writeFileSync(join(cache(dir), segment), line, { flag: 'a' });
  const after = await stats(dir);
  assert.is(after.hits, lines + 1);
  assert.is(after.savedMs, (lines + 1) * 7);
});

test('a segment left by a fold that never committed is read from the offset in its name, once', async () => {
  const { dir, key } = await committed();
  const line = `${key} ${Date.now()} 1\n`;
  // Rotated 10 minutes ago by pid 999999, which had folded the first 30 lines before it died.
  const name = `hits.journal.${Date.now() - 600_000}-999999-abcd1234-${30 * line.length}.rotated`;
  writeFileSync(join(cache(dir), name), `${line.repeat(50)}${key} 12`); // and a torn tail
  assert.is((await stats(dir)).hits, 20);
  assert.equal(segments(dir), [], 'a counted segment past its grace period was kept');
  assert.is((await stats(dir)).hits, 20);
  assert.ok(!readFileSync(join(cache(dir), 'audit.log'), 'utf8').includes('ERROR'));
});

test.run();

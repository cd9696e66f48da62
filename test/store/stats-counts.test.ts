/**
 * `stats` reads the index's kept counts (its record count and the usage total) instead of every
 * entry: checked against the entries and blobs actually in the cache (files, and small results in
 * the index) after saves, a blob shared by two entries, a run with a log, removals and gc.
 */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from '../support/helpers.js';
import { storedBlobBytes } from '../support/small-results.js';

test('stats counts entries and distinct blob bytes as the cache changes', async () => {
  const dir = tempDir('tv-stats-counts-');
  writeTree(dir, {
    '.git/HEAD': 'ref: refs/heads/main\n',
    'in1.txt': 'first input\n',
    'in2.txt': 'second input\n',
    'shared.bin': 'x'.repeat(3000),
    'own.bin': 'y'.repeat(700),
    'seed.txt': 'seed\n',
  });
  const cache = join(dir, '.taskvault/cache');
  const cli = async (args: string[]) => {
    const r = await runCli(args, { cwd: dir });
    assert.is(r.code, 0, `${args.join(' ')}: ${r.err}`);
    return r;
  };
  const stats = async () => JSON.parse((await cli(['stats', '--json'])).out);
  const entries = async () => JSON.parse((await cli(['ls', '--json'])).out).length;
  const check = async (expected: number, why: string) => {
    const s = await stats();
    assert.is(s.entries, expected, `${why}: entries`);
    assert.is(s.entries, await entries(), `${why}: as many as ls lists`);
    assert.is(s.totalBytes, await storedBlobBytes(cache), `${why}: the bytes of the blobs in the cache`);
    return s;
  };

  await cli(['cache', 'save', 'a', 'in1.txt', 'shared.bin']);
  await cli(['cache', 'save', 'b', 'in2.txt', 'shared.bin']);
  await cli(['cache', 'save', 'c', 'in1.txt', 'own.bin']);
  await cli([
    'run',
    '--inputs',
    'seed.txt',
    '--outputs',
    'out/**',
    '--',
    'sh',
    '-c',
    'echo built; mkdir -p out; printf 12345 > out/f',
  ]);
  const full = await check(4, 'after three saves and a run');
  assert.is(full.totalBytes, 3000 + 700 + 5 + 'built\n'.length, 'the shared blob counts once');

  await cli(['clean', '--task', 'a', '--yes']);
  const afterA = await check(3, 'after removing one of two entries sharing a blob');
  assert.is(afterA.totalBytes, full.totalBytes, 'the shared blob is still referenced');

  await cli(['clean', '--task', 'b', '--yes']);
  const afterB = await check(2, 'after removing the other');
  assert.is(afterB.totalBytes, full.totalBytes - 3000);

  await cli(['gc']);
  await check(2, 'after gc');
  await cli(['clean', '--yes']);
  const empty = await check(0, 'after clean');
  assert.is(empty.totalBytes, 0);
});

test.run();

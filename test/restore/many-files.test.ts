/**
 * A hit restoring many files that share directories: each directory is checked or made once per
 * restore (not once per file), and that must still replace a stale file where a directory goes
 * and restore every file byte for byte.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

function tree(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < 300; i++) {
    const sub = ['a/b', 'a/c', 'd'][i % 3];
    files[`${sub}/f${i}.txt`] = `file ${i}\n`.repeat(1 + (i % 7));
  }
  writeTree(join(dir, 'tree'), files);
  return files;
}

test('a hit restores 300 files in shared directories, over a stale file and an empty dir', async () => {
  const dir = tempDir('tv-restore-many-');
  writeTree(dir, { '.git/HEAD': 'ref: refs/heads/main\n', 'seed.txt': 'seed\n' });
  const files = tree(dir);
  const args = ['run', '--inputs', 'seed.txt', '--outputs', 'out', '--', 'cp', '-r', 'tree', 'out'];
  const first = await runCli(args, { cwd: dir });
  assert.is(first.code, 0, first.err);

  rmSync(join(dir, 'out'), { recursive: true, force: true });
  // Where the entry has directories: a stale file (out/a) and an empty directory (out/d).
  mkdirSync(join(dir, 'out', 'd'), { recursive: true });
  writeFileSync(join(dir, 'out', 'a'), 'stale file where a directory goes\n');
  const hit = await runCli(args, { cwd: dir, env: { TASKVAULT_QUIET: '' } });
  assert.is(hit.code, 0, hit.err);
  assert.match(hit.err, /\bhit\b/);
  assert.match(hit.err, /restored 300 files/);
  assert.ok(statSync(join(dir, 'out', 'a')).isDirectory(), 'the stale file was replaced');
  for (const [path, text] of Object.entries(files))
    assert.is(readFileSync(join(dir, 'out', path), 'utf8'), text, path);
});

test.run();

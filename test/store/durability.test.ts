/**
 * Durability of a commit (issue 22, item 4): every blob an entry names, and the directories that
 * hold their names, are fsynced before the entry is committed, so that after a power loss no
 * entry points at an empty or missing blob. Observed on the built CLI with strace(1): the fsyncs
 * come before the entry's hot/ copy is renamed into place, which happens only after the commit.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Entry } from '../../src/store/entry.js';
import { entryBlobs } from '../../src/store/entry.js';
import { blobPath } from '../../src/store/layout.js';
import { CLI, listSorted, runTraced, tempDir, writeTree } from '../support/helpers.js';

const CMD = [
  'run',
  '--inputs',
  'src/**',
  '--outputs',
  'out/**',
  '--',
  'node',
  '-e',
  "const fs=require('fs');fs.mkdirSync('out/deep',{recursive:true});fs.writeFileSync('out/a.txt','a'.repeat(5000));fs.writeFileSync('out/deep/b.txt','b');console.log('made');console.error('warned')",
];

test('a miss fsyncs each blob and its directory before it commits the entry', async () => {
  const dir = writeTree(tempDir(), { 'src/a.txt': 'a' });
  const r = await runTraced('fsync,fdatasync,rename,renameat,renameat2', [process.execPath, CLI, ...CMD], {
    cwd: dir,
  });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /\bmiss\b/);

  const cache = join(dir, '.taskvault', 'cache');
  const [key] = listSorted(join(cache, 'hot'));
  assert.ok(key, 'no entry was committed');
  const entry = JSON.parse(readFileSync(join(cache, 'hot', key), 'utf8')) as Entry;
  const blobs = entryBlobs(entry);
  assert.is(blobs.length, 4, 'two outputs, stdout and stderr');

  const { lines } = r;
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const committed = at(new RegExp(`rename.*"${esc(join(cache, 'hot', key))}"`));
  assert.ok(committed > 0, 'the hot copy was not renamed into place');
  for (const ref of blobs) {
    const path = blobPath(join(cache, 'blobs'), ref.hash);
    const synced = at(new RegExp(`f(data)?sync\\(\\d+<${esc(path)}>`));
    assert.ok(synced >= 0, `blob ${ref.hash.slice(0, 12)} was never fsynced`);
    assert.ok(synced < committed, `blob ${ref.hash.slice(0, 12)} was fsynced after the commit`);
    const dirSynced = at(new RegExp(`fsync\\(\\d+<${esc(join(cache, 'blobs', ref.hash.slice(0, 2)))}>`));
    assert.ok(
      dirSynced >= 0 && dirSynced < committed,
      `the directory of ${ref.hash.slice(0, 12)} was not fsynced first`,
    );
  }
});

test.run();

/** Restore's path checks: nothing an entry says can write outside the project root. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkEntryPaths } from '../../src/store/entry-paths.js';
import { safeJoin } from '../../src/util/paths.js';

test('safeJoin refuses absolute paths, .., empty segments and backslashes', () => {
  const root = '/project';
  assert.ok(safeJoin(root, 'dist/a.js').ok);
  for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a//b', './a', 'a\\..\\b', '', 'a/\0b', '..']) {
    assert.not.ok(safeJoin(root, bad).ok, bad);
  }
});

test('checkEntryPaths refuses symlinks out of the root and files written through an entry symlink', () => {
  const root = '/project';
  assert.ok(checkEntryPaths(root, [{ path: 'out/l', type: 'symlink', target: 'a.txt' }]).ok);
  assert.not.ok(checkEntryPaths(root, [{ path: 'out/l', type: 'symlink', target: '../../etc' }]).ok);
  assert.not.ok(checkEntryPaths(root, [{ path: 'out/l', type: 'symlink', target: '/etc' }]).ok);
  assert.not.ok(
    checkEntryPaths(root, [
      { path: 'out/l', type: 'symlink', target: 'sub' },
      { path: 'out/l/x', type: 'file', mode: 0o644, size: 1, hash: 'ab' },
    ]).ok,
  );
});

test.run();

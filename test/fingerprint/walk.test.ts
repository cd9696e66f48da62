/**
 * The plain directory walks that replace fast-glob for simple input and output globs must give
 * exactly fast-glob's answer (or decline): compared here on one tree with the awkward cases —
 * dotfiles, ignored names as files and directories, symbolic links to files, to directories and to
 * nothing, restore temp files, a base that is a file or a link.
 */
import { mkdirSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import fg from 'fast-glob';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { INPUT_GLOB_OPTIONS, inputGlobs } from '../../src/fingerprint/inputs.js';
import { walkSimpleGlobs } from '../../src/fingerprint/walk.js';
import { matchOutputs, outputGlobOptions } from '../../src/runner/outputs.js';
import { walkSimpleOutputs } from '../../src/runner/outputs-walk.js';
import { tempDir, writeTree } from '../support/helpers.js';

function tree(withDirLink: boolean): { root: string; cwd: string } {
  const root = tempDir('tv-walk-');
  const cwd = join(root, 'pkg');
  writeTree(cwd, {
    'src/a/b/c.ts': '1',
    'src/.dot': '2',
    'src/.hidden/h': '3',
    'src/node_modules/x/i.js': '4',
    'src/a/node_modules': 'a file named like an ignored dir',
    'src/dist/k': '5',
    'sub/node_modules/y': '6',
    'sub/z': '7',
    'dist/x/o': '8',
    'dist/p': '9',
    'dist/a/.p.tv-99999999-ab12.tmp': 'restore temp of a dead process',
    '.taskvault/cache/q': '10',
    'other/r': '11',
    'top.txt': '12',
    'src/.ts': 'a dotfile that is all suffix',
    'src/dir.ts/inner.ts': 'a directory named like a match',
    'src/a/Y.TS': 'another case',
    'src/a/b/d.d.ts': '13',
  });
  mkdirSync(join(cwd, 'dist/empty'));
  symlinkSync('../top.txt', join(cwd, 'src/linkfile'));
  symlinkSync('nowhere', join(cwd, 'src/dangling'));
  symlinkSync('../p', join(cwd, 'dist/x/lp'));
  symlinkSync('other', join(cwd, 'lnkbase'));
  symlinkSync('loop', join(cwd, 'loop'));
  if (withDirLink) symlinkSync('../other', join(cwd, 'src/linkdir'));
  return { root, cwd };
}

const INPUT_CASES: Array<[string[] | undefined, string[]]> = [
  [['src/**'], ['dist/**', '.taskvault/cache/**']],
  [undefined, ['dist/**', '.taskvault/cache/**']],
  [['**'], ['dist/**']],
  [['src/**/*', 'sub/**'], []],
  [['src/a/**'], []],
  [['nope/**'], []],
  [['top.txt/**'], []],
  [['lnkbase/**'], []],
  [['src/node_modules/**'], []],
  [['**/*'], ['src/dist/**']],
  [['src/**'], ['src/a/**']],
  [['src/*.ts'], []],
  [['src/**'], ['../pkg/src/a/**', '../**/node_modules/**']], // can match nothing found below cwd
  // Literal paths: a file, a dotfile, a link to a file, a dangling link, a directory, nothing, a
  // file under an ignored directory, one also under a walked base.
  [['src/**', 'top.txt'], ['dist/**']],
  [['top.txt', 'src/.dot', 'src/linkfile', 'src/a/b/c.ts'], []],
  [['src/dangling', 'src/a', 'missing.txt', 'top.txt'], []],
  [['sub/node_modules/y'], []],
  [['dist/p', 'top.txt'], ['dist/**']],
  [['src/a/node_modules'], []],
  // Suffixes under `**`: dot names, a directory named like a match, case, links, ignores.
  [['src/**/*.ts'], []],
  [['**/*.ts'], ['dist/**']],
  [['src/**/*.d.ts', 'src/**/*.ts', 'top.txt'], []],
  [['**/*.txt'], ['src/a/**']],
  [['**/*.js'], []],
  [['src/**/*file'], []],
  [['src/**/*.nothing'], []],
  // A file as a parent (ENOTDIR on Node 20) and a link that loops (ELOOP): fast-glob finds nothing.
  [['top.txt/x', 'loop', 'top.txt'], []],
  [['src/**', 'loop/x'], []],
];

test('input walk: same files as fast-glob for every glob it takes, declines the rest', async () => {
  let walked = 0;
  for (const withDirLink of [false, true]) {
    const { cwd } = tree(withDirLink);
    for (const [globs, exclude] of INPUT_CASES) {
      const { positive, ignore } = inputGlobs(globs, exclude, cwd);
      const expected = await fg(positive, { ...INPUT_GLOB_OPTIONS, cwd, ignore });
      const got = walkSimpleGlobs(cwd, positive, ignore);
      if (got === undefined) continue;
      walked++;
      assert.equal([...got.files].sort(), [...expected].sort(), `${JSON.stringify(globs)} minus ${ignore}`);
      // The globs it says gave no file are the ones fast-glob finds nothing for.
      const empty: number[] = [];
      for (const [i, g] of positive.entries())
        if ((await fg(g, { ...INPUT_GLOB_OPTIONS, cwd, ignore })).length === 0) empty.push(i);
      assert.equal(got.unmatched, empty, `unmatched of ${JSON.stringify(globs)} minus ${ignore}`);
    }
    // A link to a directory is fast-glob's to follow.
    if (withDirLink) assert.is(walkSimpleGlobs(cwd, ['src/**'], []), undefined);
  }
  assert.ok(walked >= 20, `the walk took only ${walked} cases`);
  assert.is(walkSimpleGlobs('/', ['src/*.ts'], []), undefined);
  assert.is(walkSimpleGlobs('/', ['src/**'], ['**/*.map']), undefined);
});

test('output walk: same matches as fast-glob (through matchOutputs), with and without restore temps', async () => {
  const { root, cwd } = tree(true);
  let walked = 0;
  for (const globs of [
    ['dist/**'],
    ['dist/**/*'],
    ['dist/**', 'sub/**'],
    ['dist/x/**'],
    ['none/**'],
    ['lnkbase/**'],
    ['top.txt/**'],
  ]) {
    for (const withTemps of [false, true]) {
      const entries = await fg(globs, outputGlobOptions(cwd, withTemps));
      const expected = entries
        .map((e) => ({
          path: relative(root, e.path),
          type: e.dirent.isSymbolicLink() ? 'symlink' : e.dirent.isDirectory() ? 'dir' : 'file',
        }))
        .sort((a, b) => (a.path < b.path ? -1 : 1));
      const walkedNow = walkSimpleOutputs(
        root,
        cwd,
        globs,
        new Set(['node_modules', '.git', '.taskvault']),
        !withTemps,
      );
      if (walkedNow) walked++;
      const got = (await matchOutputs(root, cwd, globs, withTemps)).map((m) => ({
        path: m.path,
        type: m.type,
      }));
      assert.equal(got, expected, `${globs} (temps: ${withTemps})`);
    }
  }
  assert.ok(walked >= 10, `the walk took only ${walked} cases`);
});

test.run();

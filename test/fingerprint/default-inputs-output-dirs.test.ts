/**
 * Default inputs in a git repository leave out whole output directories: an output glob that names
 * a directory (`--outputs out`) takes everything below it (matchOutputs), so nothing below it may
 * count as an input, or every run would see its own outputs change its inputs and store nothing.
 * The built CLI, real git repositories in temp dirs.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { git, runCli, tempDir, writeTree } from '../support/helpers.js';

/** A repository with a tracked file and untracked files in and beside would-be output dirs. */
function repo(): string {
  const dir = writeTree(tempDir(), {
    '.gitignore': '.taskvault/\n',
    'src/a.ts': 'a',
    'out/old.txt': 'left by an earlier build',
    'out.txt': 'beside out/, not in it',
    'pkg/gen/g.js': 'generated',
    'pkg/gen.txt': 'beside gen/',
    'dist1/d.js': 'd',
  });
  git(dir, 'init', '-q');
  git(dir, 'add', 'src');
  git(dir, 'commit', '-qm', 'init');
  return dir;
}

/** The input paths of a run from `dir` with these output globs and no --inputs. */
async function inputsOf(dir: string, outputs: string[]): Promise<string[]> {
  const flags = outputs.flatMap((o) => ['--outputs', o]);
  const r = await runCli(['run', '--dry-run', '--json', ...flags, '--', 'true'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  return (JSON.parse(r.out) as { fingerprint: { inputs: Array<[string]> } }).fingerprint.inputs.map(
    (i) => i[0],
  );
}

test('a bare directory output is cached: the files the command writes in it are no inputs', async () => {
  const dir = writeTree(tempDir(), { 'a.txt': 'a' });
  git(dir, 'init', '-q');
  const cmd = ['run', '--outputs', 'out', '--', 'sh', '-c', 'mkdir -p out; date +%s%N > out/stamp'];
  const first = await runCli(cmd, { cwd: dir });
  assert.match(first.err, /miss .* cached 1 file/, first.err);
  const stamp = readFileSync(join(dir, 'out', 'stamp'), 'utf8');
  for (let i = 0; i < 2; i++) {
    const again = await runCli(cmd, { cwd: dir });
    assert.match(again.err, /hit .* restored 1 file/, again.err);
    assert.is(readFileSync(join(dir, 'out', 'stamp'), 'utf8'), stamp, 'restored, not run again');
  }
});

test('directory globs of every form leave out what is below the directories they match', async () => {
  const dir = repo();
  const everything = [
    '.gitignore',
    'dist1/d.js',
    'out.txt',
    'out/old.txt',
    'pkg/gen.txt',
    'pkg/gen/g.js',
    'src/a.ts',
  ];
  assert.equal(await inputsOf(dir, []), everything);
  const without = (...gone: string[]) => everything.filter((p) => !gone.includes(p));
  assert.equal(await inputsOf(dir, ['out']), without('out/old.txt'), 'a literal directory');
  assert.equal(await inputsOf(dir, ['out/']), without('out/old.txt'), 'with a trailing slash');
  assert.equal(await inputsOf(dir, ['**/gen']), without('pkg/gen/g.js'), 'a name anywhere');
  assert.equal(await inputsOf(dir, ['dist*']), without('dist1/d.js'), 'a pattern');
  assert.equal(await inputsOf(dir, ['out/**']), without('out/old.txt'), 'the explicit form, as before');
  assert.equal(await inputsOf(dir, ['out.txt']), without('out.txt'), 'a file output is still left out');
});

test.run();

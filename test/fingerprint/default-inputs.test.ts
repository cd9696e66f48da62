/**
 * The inputs of a run that declares none: git's list inside a repository (tracked + untracked, not
 * ignored), every file under cwd elsewhere, and a bound on both. The built CLI, real git
 * repositories in temp dirs.
 */

import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_DEFAULT_INPUT_FILES } from '../../src/fingerprint/default-inputs.js';
import { git, runCli, tempDir, writeTree } from '../support/helpers.js';

/** The input paths a run from `cwd` (with no --inputs) would key on. */
async function inputsOf(cwd: string, env: Record<string, string> = {}): Promise<string[]> {
  const r = await runCli(['run', '--dry-run', '--json', '--', 'echo', 'x'], { cwd, env });
  assert.is(r.code, 0, r.err);
  return (JSON.parse(r.out) as { fingerprint: { inputs: Array<[string]> } }).fingerprint.inputs.map(
    (i) => i[0],
  );
}

function repo(): string {
  const dir = writeTree(tempDir(), {
    '.gitignore': 'build/\n*.log\nnode_modules/\n.taskvault/\n',
    'src/a.ts': 'a',
    'src/b.ts': 'b',
    'build/out.js': 'built',
    'debug.log': 'noise',
    'forced.log': 'tracked although ignored',
    'notes.txt': 'untracked, not ignored',
  });
  git(dir, 'init', '-q');
  git(dir, 'add', '.gitignore', 'src');
  git(dir, 'add', '-f', 'forced.log');
  git(dir, 'commit', '-qm', 'init');
  return dir;
}

test('in a git repository: tracked and untracked files, not the ignored ones', async () => {
  const dir = repo();
  assert.equal(await inputsOf(dir), ['.gitignore', 'forced.log', 'notes.txt', 'src/a.ts', 'src/b.ts']);
});

test('an ignored file changing is a hit; a tracked or an untracked one is a miss', async () => {
  const dir = repo();
  const run = () => runCli(['run', '--', 'echo', 'x'], { cwd: dir });
  assert.match((await run()).err, /miss/);
  writeFileSync(join(dir, 'debug.log'), 'more noise');
  writeFileSync(join(dir, 'build', 'out.js'), 'rebuilt');
  assert.match((await run()).err, /hit/, 'ignored files are not inputs');
  writeFileSync(join(dir, 'src', 'a.ts'), 'changed');
  assert.match((await run()).err, /miss/);
  assert.match((await run()).err, /hit/);
  writeFileSync(join(dir, 'new.txt'), 'new untracked file');
  assert.match((await run()).err, /miss/, 'a new untracked file is an input');
  git(dir, 'rm', '-q', '--cached', 'forced.log');
  assert.match((await run()).err, /miss/, 'untracking an ignored file drops it');
});

test('in a subdirectory of a repository: only the files under it', async () => {
  const dir = repo();
  assert.equal(await inputsOf(join(dir, 'src')), ['src/a.ts', 'src/b.ts']);
});

test('node_modules, .git and the cache stay out even when git does not ignore them', async () => {
  const dir = writeTree(tempDir(), {
    'a.txt': 'a',
    'node_modules/m/index.js': 'm',
    'pkg/node_modules/x.js': 'x',
  });
  git(dir, 'init', '-q');
  git(dir, 'add', '-f', '.');
  await runCli(['run', '--', 'echo', 'x'], { cwd: dir }); // makes .taskvault/cache, not ignored here
  assert.equal(await inputsOf(dir), ['a.txt']);
});

test('outside a repository: every file under the working directory, .gitignore or not', async () => {
  const dir = writeTree(tempDir(), {
    '.gitignore': '*.log\n',
    'a.log': 'x',
    'src/b.ts': 'b',
    'node_modules/m.js': 'm',
  });
  assert.equal(await inputsOf(dir), ['.gitignore', 'a.log', 'src/b.ts']);
});

test('past the file bound: the command runs uncached with one line, its exit code passes through', async () => {
  for (const inGit of [false, true]) {
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`f${i}.txt`] = String(i);
    const dir = writeTree(tempDir(), files);
    if (inGit) git(dir, 'init', '-q');
    const env = { TASKVAULT_MAX_DEFAULT_INPUTS: '20' };
    const r = await runCli(['run', '--', 'sh', '-c', 'echo ran; exit 7'], { cwd: dir, env });
    assert.is(r.out, 'ran\n');
    assert.is(r.code, 7);
    const what = inGit ? '20 files git tracks or does not ignore' : '20 files';
    assert.match(
      r.err,
      `cache skipped: no --inputs given and ${dir} holds more than ${what}; declare --inputs (see docs)`,
    );
    assert.not.match(r.err, /\n\s+at |FATAL|heap/);
    // explain cannot say anything useful: one line, non-zero.
    const e = await runCli(['explain', '--', 'echo', 'x'], { cwd: dir, env });
    assert.is(e.code, 66);
    assert.is(e.err.trim().split('\n').length, 1, e.err);
    assert.match(e.err, /no --inputs given/);
    // Declared inputs are not bounded by it.
    assert.match(
      (await runCli(['run', '--inputs', '*.txt', '--', 'echo', 'x'], { cwd: dir, env })).err,
      /miss/,
    );
    // Under the bound it caches.
    assert.match(
      (
        await runCli(['run', '--', 'echo', 'under'], {
          cwd: dir,
          env: { TASKVAULT_MAX_DEFAULT_INPUTS: '40' },
        })
      ).err,
      /miss/,
    );
  }
});

test(`the real bound: ${MAX_DEFAULT_INPUT_FILES.toLocaleString('en-US')} files, found without listing the tree`, async () => {
  const dir = tempDir();
  for (let d = 0; d <= MAX_DEFAULT_INPUT_FILES / 1000; d++) {
    mkdirSync(join(dir, `d${d}`));
    for (let i = 0; i < 1000; i++) writeFileSync(join(dir, `d${d}`, String(i)), '');
  }
  const r = await runCli(['run', '--', 'echo', 'x'], { cwd: dir, timeoutMs: 60_000 });
  assert.is(r.out, 'x\n');
  assert.is(r.code, 0);
  assert.match(r.err, /no --inputs given and .* holds more than 100,000 files/);
});

test('a link back up the tree (a loop) or to a huge directory is counted once, within the bound', async () => {
  const dir = writeTree(tempDir(), { 'a.txt': 'a' });
  symlinkSync(dir, join(dir, 'loop'));
  symlinkSync('/usr', join(dir, 'usr'));
  const r = await runCli(['run', '--', 'echo', 'x'], {
    cwd: dir,
    env: { TASKVAULT_MAX_DEFAULT_INPUTS: '2000' },
  });
  assert.is(r.out, 'x\n');
  assert.match(r.err, /holds more than 2,000 (files|directories)/);
  assert.not.match(r.err, /\n\s+at /);
});

test('past 10 GB of default inputs: uncached with one line (a sparse file, nothing read)', async () => {
  const dir = writeTree(tempDir(), { 'big.img': '' });
  truncateSync(join(dir, 'big.img'), 11e9);
  const started = Date.now();
  const r = await runCli(['run', '--', 'echo', 'x'], { cwd: dir });
  assert.is(r.out, 'x\n');
  assert.match(r.err, /no --inputs given and .* holds more than 10 GB of files; declare --inputs/);
  assert.ok(Date.now() - started < 20_000, 'the file was not hashed');
});

test.run();

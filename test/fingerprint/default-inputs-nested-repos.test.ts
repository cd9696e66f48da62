/**
 * Default inputs in a git repository include the files of its submodules (and of theirs) and of
 * nested repositories it does not track: git lists each of those from outside as one path (a
 * gitlink `sub`, an untracked `nested/`), so without listing inside them a change there was a hit
 * that replayed the old result. The built CLI, real git repositories with real submodules.
 */

import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { daemonSaid, foregroundDaemon, killed, settle } from '../support/daemon.js';
import { git, runCli, tempDir, writeTree } from '../support/helpers.js';

/** Submodules from a local path need this on git >= 2.38.1. */
const submodule = (dir: string, ...args: string[]) =>
  git(dir, '-c', 'protocol.file.allow=always', 'submodule', '-q', ...args);

/** A committed repository of `files` at `dir`. */
function committed(dir: string, files: Record<string, string>): string {
  writeTree(dir, files);
  git(dir, 'init', '-q');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'init');
  return dir;
}

/**
 * main/ with a submodule sub/ (which has a submodule deep/ of its own) and an untracked nested
 * repository nested/, each with a file its own .gitignore leaves out (and sub/forced.log, tracked
 * by sub although its .gitignore matches it).
 */
function project(): string {
  const base = tempDir();
  committed(join(base, 'deep-src'), { 'd.txt': 'd1' });
  const subSrc = committed(join(base, 'sub-src'), { 'lib.txt': 'v1', '.gitignore': '*.log\n' });
  writeTree(subSrc, { 'forced.log': 'tracked although ignored' });
  git(subSrc, 'add', '-f', 'forced.log');
  submodule(subSrc, 'add', '../deep-src', 'deep');
  git(subSrc, 'commit', '-qm', 'deep');
  const main = committed(join(base, 'main'), { 'main.txt': 'm', '.gitignore': '.taskvault/\n' });
  submodule(main, 'add', '../sub-src', 'sub');
  submodule(main, 'update', '--init', '--recursive');
  git(main, 'commit', '-qm', 'sub');
  writeTree(main, {
    'sub/debug.log': 'ignored by sub',
    'nested/n.txt': 'n1',
    'nested/.gitignore': 'tmp/\n',
    'nested/tmp/t.txt': 'ignored by nested',
    'nested/node_modules/m.js': 'never an input',
  });
  git(join(main, 'nested'), 'init', '-q');
  return main;
}

const ALL = [
  '.gitignore',
  '.gitmodules',
  'main.txt',
  'nested/.gitignore',
  'nested/n.txt',
  'sub/.gitignore',
  'sub/.gitmodules',
  'sub/deep/d.txt',
  'sub/forced.log',
  'sub/lib.txt',
];

/** The input paths of a run from `dir` with no --inputs. */
async function inputsOf(dir: string, flags: string[] = [], env: Record<string, string> = {}) {
  const r = await runCli(['run', '--dry-run', '--json', ...flags, '--', 'true'], { cwd: dir, env });
  assert.is(r.code, 0, r.err);
  return (JSON.parse(r.out) as { fingerprint: { inputs: Array<[string]> } }).fingerprint.inputs.map(
    (i) => i[0],
  );
}

const CAT = ['run', '--', 'cat', 'sub/lib.txt', 'sub/deep/d.txt', 'nested/n.txt'];

test('files of submodules, their submodules and nested repositories are inputs, with their ignores', async () => {
  assert.equal(await inputsOf(project()), ALL);
});

test('a change inside a submodule, a nested submodule or a nested repository is a miss', async () => {
  const dir = project();
  const run = async (expect: 'hit' | 'miss', out: string, why: string) => {
    const r = await runCli(CAT, { cwd: dir });
    assert.is(r.code, 0, r.err);
    assert.match(r.err, new RegExp(`taskvault: ${expect} `), `${why}: ${r.err}`);
    assert.is(r.out, out, why);
  };
  await run('miss', 'v1d1n1', 'first run');
  await run('hit', 'v1d1n1', 'nothing changed');
  writeFileSync(join(dir, 'sub', 'lib.txt'), 'v2');
  await run('miss', 'v2d1n1', 'a submodule file changed');
  await run('hit', 'v2d1n1', 'nothing changed since');
  writeFileSync(join(dir, 'sub', 'deep', 'd.txt'), 'd2');
  await run('miss', 'v2d2n1', "a file of the submodule's submodule changed");
  writeFileSync(join(dir, 'nested', 'n.txt'), 'n2');
  await run('miss', 'v2d2n2', 'a file of the nested repository changed');
  writeFileSync(join(dir, 'sub', 'new.txt'), 'untracked in sub');
  await run('miss', 'v2d2n2', 'a new untracked file in the submodule');
  writeFileSync(join(dir, 'sub', 'debug.log'), 'more noise');
  writeFileSync(join(dir, 'nested', 'tmp', 't.txt'), 'more noise');
  await run('hit', 'v2d2n2', 'what their own .gitignore leaves out');
});

test('outputs inside a submodule are no inputs, and the result is cached', async () => {
  const dir = project();
  assert.equal(await inputsOf(dir, ['--outputs', 'sub/out']), ALL);
  const cmd = ['run', '--outputs', 'sub/out', '--', 'sh', '-c', 'mkdir -p sub/out; date +%s%N > sub/out/s'];
  assert.match((await runCli(cmd, { cwd: dir })).err, /miss .* cached 1 file/);
  assert.match((await runCli(cmd, { cwd: dir })).err, /hit /);
  const without = ALL.filter((p) => !p.startsWith('sub/'));
  assert.equal(await inputsOf(dir, ['--outputs', 'sub']), without, 'a whole submodule as an output');
});

test('an uninitialized submodule adds no input and breaks nothing', async () => {
  const dir = project();
  submodule(dir, 'deinit', '-f', 'sub');
  assert.equal(
    await inputsOf(dir),
    ALL.filter((p) => !p.startsWith('sub/')),
  );
});

test('a submodule git cannot list (its git directory gone) is walked like a directory outside git', async () => {
  const dir = project();
  renameSync(join(dir, '.git', 'modules', 'sub'), join(dir, '..', 'sub-gitdir'));
  const walked = [...ALL, 'sub/debug.log'].sort();
  assert.equal(await inputsOf(dir), walked, 'every file, as a walk finds them');
  assert.match((await runCli(CAT, { cwd: dir })).err, /miss /);
  writeFileSync(join(dir, 'sub', 'lib.txt'), 'v2');
  const r = await runCli(CAT, { cwd: dir });
  assert.match(r.err, /miss /);
  assert.is(r.out, 'v2d1n1');
});

test('run from a git hook (GIT_DIR, GIT_INDEX_FILE set): nested repositories are listed from their own', async () => {
  const dir = project();
  const index = { GIT_INDEX_FILE: join(dir, '.git', 'index') }; // as pre-commit hooks have it
  assert.equal(await inputsOf(dir, [], index), ALL);
  assert.equal(await inputsOf(dir, [], { ...index, GIT_DIR: join(dir, '.git') }), ALL);
});

test('with the daemon running, a change inside a submodule is still a miss', async () => {
  const dir = project();
  await settle(); // old enough that the daemon could vouch for these files
  const daemon = await foregroundDaemon(dir);
  try {
    const run = () =>
      runCli(CAT, { cwd: dir, env: { TASKVAULT_TRACE: '1', TASKVAULT_DAEMON_TIMEOUT_MS: '5000' } });
    assert.match((await run()).err, /miss /);
    const hit = await run();
    assert.match(hit.err, /hit /);
    assert.is.not(daemonSaid(hit), 'unchanged', 'git lists these inputs, no walk the daemon watches');
    writeFileSync(join(dir, 'sub', 'lib.txt'), 'v2');
    const r = await run();
    assert.match(r.err, /miss /);
    assert.is(r.out, 'v2d1n1');
  } finally {
    await killed(daemon);
  }
});

test.run();

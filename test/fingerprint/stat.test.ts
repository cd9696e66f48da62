/**
 * statFile (src/util/stat.ts) reads Node 20's fs binding instead of building an fs.Stats: it must
 * give exactly what statSync gives (manifests recorded by either are compared with the other), fail
 * as statSync fails, and never print Node's deprecation warning for process.binding().
 */
import { chmodSync, mkdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type FileStat, isDirStat, isFileStat, statFile, statVia } from '../../src/util/stat.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

const fromStatSync = (path: string): FileStat | undefined => {
  const s = statSync(path, { throwIfNoEntry: false });
  return s && { dev: s.dev, ino: s.ino, size: s.size, mode: s.mode, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs };
};

test('on Node 20 the binding is used; elsewhere statSync', () => {
  assert.is(statVia, process.versions.node.startsWith('20.') ? 'binding' : 'statSync');
});

test('files, directories, links and sub-millisecond times match statSync exactly', () => {
  const dir = tempDir();
  const paths: string[] = [dir];
  for (let i = 0; i < 40; i++) {
    const p = join(dir, `f${i}`);
    writeFileSync(p, 'x'.repeat(i * 997));
    // Times with a fractional millisecond part: mtimeMs must be computed as fs.Stats computes it.
    utimesSync(p, 1_700_000_000.123456 + i, 1_600_000_000.987654 + i / 7);
    if (i % 3 === 0) chmodSync(p, 0o755);
    paths.push(p);
  }
  mkdirSync(join(dir, 'sub'));
  symlinkSync(join(dir, 'f1'), join(dir, 'link'));
  symlinkSync(join(dir, 'sub'), join(dir, 'dirlink'));
  paths.push(join(dir, 'sub'), join(dir, 'link'), join(dir, 'dirlink'));
  for (const p of paths) assert.equal(statFile(p), fromStatSync(p), p);
  assert.ok(isFileStat(statFile(join(dir, 'link'))!), 'a link is followed');
  assert.ok(isDirStat(statFile(join(dir, 'dirlink'))!));
  assert.not.ok(isFileStat(statFile(dir)!));
});

test('nothing there is undefined; a file as a parent is what statSync makes of it (ENOTDIR on Node 20)', () => {
  const dir = writeTree(tempDir(), { file: 'x' });
  symlinkSync(join(dir, 'gone'), join(dir, 'dangling'));
  assert.is(statFile(join(dir, 'missing')), undefined);
  assert.is(statFile(join(dir, 'dangling')), undefined);
  const outcome = (f: () => unknown): string => {
    try {
      return f() === undefined ? 'undefined' : 'a stat';
    } catch (e) {
      return (e as NodeJS.ErrnoException).code ?? String(e);
    }
  };
  const below = join(dir, 'file', 'below');
  const expected = outcome(() => statSync(below, { throwIfNoEntry: false }));
  // Node 20's statSync throws it; Node 22 and later count it as nothing there.
  if (process.versions.node.startsWith('20.')) assert.is(expected, 'ENOTDIR');
  assert.is(
    outcome(() => statFile(below)),
    expected,
  );
});

test('a path with a NUL byte is refused as statSync refuses it, not cut short', () => {
  const dir = writeTree(tempDir(), { file: 'x' });
  assert.throws(() => statFile(`${join(dir, 'file')}\0tail`), /null bytes|ERR_INVALID_ARG/);
});

test('pending deprecation, however set: no process.binding() warning, and runs are still cached', async () => {
  const settings: Array<Record<string, string>> = [
    { NODE_OPTIONS: '--pending-deprecation' },
    { NODE_OPTIONS: '--pending_deprecation' },
    { NODE_PENDING_DEPRECATION: '1' },
  ];
  for (const setting of settings) {
    const dir = writeTree(tempDir(), { 'in.txt': 'a' });
    const env = { ...setting, TASKVAULT_CACHE_DIR: join(dir, '.cache') };
    const args = ['run', '--inputs', 'in.txt', '--', 'node', '-e', 'console.log(1)'];
    const first = await runCli(args, { cwd: dir, env });
    const second = await runCli(args, { cwd: dir, env });
    const what = JSON.stringify(setting);
    assert.is(first.code, 0, first.err);
    assert.not.match(first.err + second.err, /DEP0111|process\.binding/, what);
    assert.match(second.err, /hit/, what);
  }
});

test('TASKVAULT_TRACE says which stat a run used', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'a' });
  const r = await runCli(['run', '--inputs', 'in.txt', '--', 'node', '-e', '0'], {
    cwd: dir,
    env: { TASKVAULT_TRACE: '1' },
  });
  assert.match(r.err, new RegExp(`trace: .*stat via ${statVia}`));
  const pending = await runCli(['run', '--inputs', 'in.txt', '--', 'node', '-e', '0'], {
    cwd: dir,
    env: { TASKVAULT_TRACE: '1', NODE_PENDING_DEPRECATION: '1' },
  });
  assert.match(pending.err, /trace: .*stat via statSync/);
});

test.run();

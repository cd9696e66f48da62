/**
 * Invariant 3: when the cache is unusable (not writable, disk full, LMDB commit failing, newer
 * schema, deleted mid-run) the command still runs, its exit code passes through, exactly one
 * warning names the cause, and nothing cached before is lost.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { executions, warnings } from '../support/fault-helpers.js';
import { CLI, REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

/**
 * Writes out/<name>.txt (SIZE bytes), prints a line, exits with EXIT; optionally fills the disk or
 * removes a directory first. The removal retries as `rm -rf` has to when something is writing in the
 * directory meanwhile: TaskVault opens its index there while the command runs.
 */
const CMD = `
const fs = require('fs');
fs.appendFileSync(process.env.COUNTER, 'x\\n');
if (process.env.FILL) { try { const fd = fs.openSync(process.env.FILL, 'w'); const b = Buffer.alloc(1 << 20); for (;;) fs.writeSync(fd, b); } catch {} }
if (process.env.REMOVE) fs.rmSync(process.env.REMOVE, { recursive: true, force: true, maxRetries: 20, retryDelay: 5 });
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/' + process.env.NAME + '.txt', Buffer.alloc(Number(process.env.SIZE || 10), 97));
console.log('ran ' + process.env.NAME);
process.exitCode = Number(process.env.EXIT || 0);
`;

function project() {
  const dir = tempDir('tv-failopen-');
  writeTree(dir, { 'cmd.js': CMD, 'src/in.txt': 'x' });
  return { dir, counter: join(tempDir('tv-failopen-side-'), 'counter') };
}

const args = (cacheDir: string) => [
  'run',
  '--cache-dir',
  cacheDir,
  '--inputs',
  'src/**',
  '--env',
  'NAME',
  '--outputs',
  'out/**',
  '--',
  'node',
  'cmd.js',
];

async function run(dir: string, cacheDir: string, env: Record<string, string>) {
  return runCli(args(cacheDir), { cwd: dir, env });
}

/** The command ran, its exit code came back, and exactly one warning matching `cause` was printed. */
function assertFailOpen(r: { code: number | null; out: string; err: string }, exit: number, cause: RegExp) {
  assert.is(r.code, exit, r.err);
  assert.match(r.out, /\bran\b/);
  const w = warnings(r.err);
  assert.is(w.length, 1, `one warning, got:\n${r.err}`);
  assert.match(w[0]!, cause);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace');
}

test('cache dir not writable (its parent is a regular file, which fails even for root)', async () => {
  const { dir, counter } = project();
  writeFileSync(join(dir, 'blocker'), '');
  const r = await run(dir, join(dir, 'blocker', 'cache'), { COUNTER: counter, NAME: 'a', EXIT: '7' });
  assertFailOpen(r, 7, /cache skipped: cannot open the cache at .*blocker\/cache: ENOTDIR/);
  assert.is(executions(counter), 1);
});

test('cache dir is a regular file, not a directory', async () => {
  const { dir, counter } = project();
  const cacheDir = join(dir, 'cache-file');
  writeFileSync(cacheDir, 'not a directory\n');
  const r = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a', EXIT: '6' });
  assertFailOpen(r, 6, /cache skipped: cannot open the cache at .*cache-file: (ENOTDIR|EEXIST)/);
  assert.is(executions(counter), 1);
  assert.is(readFileSync(cacheDir, 'utf8'), 'not a directory\n', 'the file is left alone');
});

/** Runs the CLI as `nobody` (setpriv), or undefined where that is not possible (not root). */
async function runAsNobody(dir: string, cacheDir: string, exit: number) {
  if (process.getuid?.() !== 0) return undefined;
  const args = [
    'run',
    '--cache-dir',
    cacheDir,
    '--inputs',
    'src/**',
    '--',
    'sh',
    '-c',
    `echo ran; exit ${exit}`,
  ];
  const r = await runProcess(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, ...args],
    { cwd: dir },
  ).catch(() => undefined);
  return r?.code === 127 ? undefined : r;
}

/** A project readable by anyone, for the runs as nobody. */
function openProject(): string {
  const dir = tempDir('tv-failopen-user-');
  writeTree(dir, { 'src/in.txt': 'x' });
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'src'), 0o755);
  return dir;
}

test('cache dir owned by another user, and a read-only cache dir: the command runs, one warning', async () => {
  // Owned by root (this test), mode 0755: nobody cannot write in it.
  const dir = openProject();
  const cacheDir = join(dir, 'roots-cache');
  mkdirSync(cacheDir, { mode: 0o755 });
  const r = await runAsNobody(dir, cacheDir, 5);
  if (!r) {
    assert.not.ok(process.env.CI, 'CI must be able to run a command as nobody (it runs as root)');
    console.log('another user / read-only dir: SKIPPED (cannot switch to nobody here)');
    return;
  }
  assertFailOpen(r, 5, /cache skipped: cannot open the cache at .*roots-cache: EACCES/);
  // Owned by nobody but read-only (0555): the same for its owner.
  const ro = join(dir, 'ro-cache');
  mkdirSync(ro, { mode: 0o555 });
  chmodSync(ro, 0o555);
  chownSync(ro, 65534, 65534);
  const r2 = await runAsNobody(dir, ro, 4);
  assertFailOpen(r2!, 4, /cache skipped: cannot open the cache at .*ro-cache: EACCES/);
  assert.equal(readdirSync(ro), [], 'nothing was written into it');
});

function tryMount(args: string[]): boolean {
  try {
    execFileSync('mount', args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const umount = (dir: string) => execFileSync('umount', [dir], { stdio: 'ignore' });

test('cache dir on a read-only mount (EROFS): runs uncached, the entries on it survive', async () => {
  const { dir, counter } = project();
  const cacheDir = join(dir, 'ro-cache');
  const first = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a' });
  assert.is(first.code, 0, first.err);
  if (!tryMount(['--bind', cacheDir, cacheDir])) {
    // A skip must never hide a broken feature in CI, where the suite runs as root and can mount.
    assert.not.ok(process.env.CI, 'CI must be able to mount (it runs as root)');
    console.log('read-only mount: SKIPPED (no permission to mount here)');
    return;
  }
  try {
    assert.ok(tryMount(['-o', 'remount,ro,bind', cacheDir]), 'remount read-only');
    const r = await run(dir, cacheDir, { COUNTER: counter, NAME: 'b', EXIT: '4' });
    assertFailOpen(r, 4, /cache skipped: cannot open the cache at .*Read-only file system/);
    // What docs/guarantees.md promises: a hit needs no writes, so the read-only cache still serves it.
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    const ran = executions(counter);
    const hit = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a' });
    assert.is(hit.code, 0, hit.err);
    assert.match(hit.err, /\bhit\b/);
    assert.is(warnings(hit.err).length, 0, hit.err);
    assert.is(executions(counter), ran, 'the command ran on a read-only hit');
    assert.ok(existsSync(join(dir, 'out', 'a.txt')), 'outputs restored from the read-only cache');
  } finally {
    umount(cacheDir);
  }
  rmSync(join(dir, 'out'), { recursive: true, force: true });
  const again = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a' });
  assert.match(again.err, /\bhit\b/, 'the entry made before is still served');
});

/** A small tmpfs as the cache: a real filesystem that really runs out of space. */
function withTmpfs(sizeMb: number): string | undefined {
  const mnt = tempDir('tv-tmpfs-');
  return tryMount(['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', mnt]) ? mnt : undefined;
}

test('disk full (ENOSPC on a 24 MB tmpfs): outputs, LMDB commit, and an already full disk', async () => {
  const mnt = withTmpfs(24);
  if (!mnt) {
    assert.not.ok(process.env.CI, 'CI must be able to mount a tmpfs (it runs as root)');
    console.log('ENOSPC: SKIPPED (no permission to mount a tmpfs here)');
    return;
  }
  try {
    const { dir, counter } = project();
    const cacheDir = join(mnt, 'cache');
    const base = await run(dir, cacheDir, { COUNTER: counter, NAME: 'base' });
    assert.match(base.err, /cached \d+ files?/);

    // 1. An output bigger than the free space: blob write fails, temp removed.
    const big = await run(dir, cacheDir, {
      COUNTER: counter,
      NAME: 'big',
      SIZE: String(30 << 20),
      EXIT: '0',
    });
    assertFailOpen(big, 0, /not cached: ENOSPC/);
    assert.equal(readdirSync(join(cacheDir, 'tmp')), [], 'no half-written temp files left to fill the disk');

    // 2. The command itself fills the disk: blobs fit nowhere and the LMDB commit fails.
    const fill = join(mnt, 'filler');
    const full = await run(dir, cacheDir, {
      COUNTER: counter,
      NAME: 'fill',
      SIZE: '0',
      FILL: fill,
      EXIT: '0',
    });
    assertFailOpen(full, 0, /not cached: .*(No space left on device|ENOSPC)/);

    // 3. Starting on a full disk: nothing is written, hits are still served.
    const later = await run(dir, cacheDir, { COUNTER: counter, NAME: 'later', EXIT: '3' });
    assertFailOpen(later, 3, /not cached: the cache disk is full/);
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    const hit = await run(dir, cacheDir, { COUNTER: counter, NAME: 'base' });
    assert.is(hit.code, 0);
    assert.match(hit.err, /\bhit\b/, 'the entry cached before the disk filled is still served');
    assert.equal(warnings(hit.err), []);

    // 4. Space again: everything works and the index is sound.
    rmSync(fill);
    const after = await run(dir, cacheDir, { COUNTER: counter, NAME: 'after' });
    assert.match(after.err, /cached \d+ files?/);
    const v = await runCli(['verify', '--cache-dir', cacheDir], { cwd: dir });
    assert.is(v.code, 0, v.out);
  } finally {
    umount(mnt);
  }
});

test('index written by a newer TaskVault: a miss runs anyway and leaves the index untouched', async () => {
  const { dir, counter } = project();
  const cacheDir = join(dir, 'c');
  const first = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a' });
  assert.is(first.code, 0);
  const db = open({ path: join(cacheDir, 'index'), maxDbs: 16, compression: false });
  await db.openDB<number, string>({ name: 'meta' }).put('schema', 99);
  await db.close();
  // A copy in hot/ that this version wrote is still served (its blobs verified); it never touches
  // the index. Anything that needs the index does not use it.
  const hot = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a' });
  assert.match(hot.err, /\bhit\b/);
  assert.is(warnings(hot.err).length, 0, hot.err);
  const r = await run(dir, cacheDir, { COUNTER: counter, NAME: 'b', EXIT: '9' });
  assertFailOpen(r, 9, /cache skipped: the cache at .* was written by a newer TaskVault \(index schema 99/);
  const check = open({ path: join(cacheDir, 'index'), maxDbs: 16, compression: false });
  assert.is(check.openDB({ name: 'entries' }).getKeysCount(), 1, 'its entries are kept');
  assert.is(check.openDB<number, string>({ name: 'meta' }).get('schema'), 99);
  await check.close();
});

test('cache dir deleted while the command runs', async () => {
  const { dir, counter } = project();
  const cacheDir = join(dir, 'gone');
  mkdirSync(cacheDir);
  const r = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a', REMOVE: cacheDir, EXIT: '0' });
  assertFailOpen(r, 0, /not cached: .*ENOENT/);
  const r5 = await run(dir, cacheDir, { COUNTER: counter, NAME: 'b', REMOVE: cacheDir, EXIT: '5' });
  assert.is(r5.code, 5);
  // The next run recreates the cache and stores as usual.
  const again = await run(dir, cacheDir, { COUNTER: counter, NAME: 'c' });
  assert.match(again.err, /cached \d+ files?/);
  assert.ok(existsSync(join(cacheDir, 'index')));
});

test('a hit that cannot restore (read-only output dir, EROFS): the command runs instead, its code passes', async () => {
  const { dir, counter } = project();
  const cacheDir = join(dir, 'c');
  const first = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a' });
  assert.is(first.code, 0, first.err);
  rmSync(join(dir, 'out'), { recursive: true });
  mkdirSync(join(dir, 'out'));
  if (!tryMount(['--bind', join(dir, 'out'), join(dir, 'out')])) {
    assert.not.ok(process.env.CI, 'CI must be able to mount (it runs as root)');
    console.log('read-only output dir: SKIPPED (no permission to mount here)');
    return;
  }
  try {
    assert.ok(tryMount(['-o', 'remount,ro,bind', join(dir, 'out')]), 'remount read-only');
    // The command itself fails to write out/ (its own error), and that exit code is what comes back.
    const r = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a' });
    assert.is(executions(counter), 2, 'the command did not run');
    assert.is.not(r.code, 70, `an internal error instead of the command's exit code:\n${r.err}`);
    assert.is(r.code, 1, r.err);
    assert.is(warnings(r.err).length, 1, r.err);
    assert.match(warnings(r.err)[0]!, /cache skipped: .*(EROFS|read-only)/i);
    assert.not.match(r.err, /internal error/);
  } finally {
    umount(join(dir, 'out'));
  }
  const again = await run(dir, cacheDir, { COUNTER: counter, NAME: 'a' });
  assert.match(again.err, /\bhit\b/, 'the entry is still served once the directory is writable');
});

test('a glob base whose parent becomes a file during the run: exit code passes, and caching recovers', async () => {
  const dir = tempDir('tv-failopen-');
  writeTree(dir, { 'a/b/f.txt': 'x' });
  const args = (script: string) => ['run', '--inputs', 'a/b/**', '--', 'sh', '-c', script];
  const replaced = await runCli(args('rm -rf a; echo r > a; echo ran; exit 3'), { cwd: dir });
  assert.is(replaced.code, 3, replaced.err);
  assert.not.match(replaced.err, /internal error/);
  // The next runs see the new tree (no inputs under a/b) and cache normally, not "cache skipped".
  const next = await runCli(args('echo next'), { cwd: dir });
  assert.is(next.code, 0, next.err);
  // No "cache skipped": only the note that the glob now matches nothing.
  assert.equal(warnings(next.err), ["taskvault: warning: input glob 'a/b/**' matched no files"], next.err);
  assert.match(next.err, /\bmiss\b.*cached/);
  const hit = await runCli(args('echo next'), { cwd: dir });
  assert.match(hit.err, /\bhit\b/, hit.err);
  // And back: a directory again, with an input under it.
  rmSync(join(dir, 'a'));
  writeTree(dir, { 'a/b/f.txt': 'y' });
  const back = await runCli(args('echo next'), { cwd: dir });
  assert.match(back.err, /\bmiss\b/, back.err);
});

test('an unexpected failure while expanding input globs costs the caching, never the run', async () => {
  // A copy of the built CLI whose fast-glob part is broken: the glob call throws a TypeError.
  const pkg = tempDir('tv-brokenglob-');
  cpSync(join(REPO, 'dist'), join(pkg, 'dist'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(join(REPO, 'node_modules'), join(pkg, 'node_modules'));
  writeFileSync(
    join(pkg, 'dist', 'vendor', 'fast-glob.cjs'),
    'exports.default = 42;\nexports.picomatch = 42;\n',
  );
  const dir = writeTree(tempDir(), { 'src/a.txt': 'a' });
  // A brace glob is beyond the plain walk, so fast-glob is called.
  const r = await runProcess(
    process.execPath,
    [join(pkg, 'dist', 'cli.cjs'), 'run', '--inputs', 'src/{a,b}.txt', '--', 'sh', '-c', 'echo ran; exit 3'],
    { cwd: dir },
  );
  assert.is(r.code, 3, r.err);
  assert.is(r.out, 'ran\n');
  assert.match(r.err, /warning: cache skipped: .*not a function/);
  assert.not.match(r.err, /invalid input glob/);
  // A bad pattern is still the user's to fix.
  const bad = await runCli(['run', '--inputs', '!', '--', 'true'], { cwd: dir });
  assert.is(bad.code, 66, bad.err);
});

test.run();

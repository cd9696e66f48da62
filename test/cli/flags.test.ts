/** Defects a user review found in the CLI's edges: each test failed before its fix. */
import { chmodSync, cpSync, existsSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

const oneLine = (s: string) => s.trim().split('\n').length === 1;

test('--dry-run never runs the command, even when the cache is disabled or cannot be opened', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'x', 'not-a-dir': '' });
  const side = join(dir, 'side.txt');
  const cmd = ['--', 'sh', '-c', `echo ran > ${side}`];
  const cases: Array<{ args: string[]; env?: Record<string, string> }> = [
    { args: ['run', '--dry-run', ...cmd], env: { TASKVAULT_DISABLE: '1' } },
    { args: ['run', '--no-cache', '--dry-run', ...cmd] },
    { args: ['run', '--dry-run', '--cache-dir', join(dir, 'not-a-dir'), ...cmd] },
  ];
  for (const c of cases) {
    const r = await runCli(c.args, { cwd: dir, env: c.env ?? {} });
    assert.is(r.code, 74, `${c.args.join(' ')}: ${r.err}`);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /cannot look the key up: .*nothing was run/);
    assert.not.ok(existsSync(side), `${c.args.join(' ')} ran the command`);
  }
  // With a usable cache it still answers as before, and without one it creates none.
  const ok = await runCli(['run', '--dry-run', ...cmd], { cwd: dir });
  assert.is(ok.code, 0, ok.err);
  assert.match(ok.out, /^[0-9a-f]{64} miss\n$/);
  assert.not.ok(existsSync(side));
  assert.not.ok(existsSync(join(dir, '.taskvault')), 'a dry run created the cache');
});

test('boolean flags with a dash do not swallow the task name after them', async () => {
  const dir = writeTree(tempDir(), {
    'taskvault.config.mjs':
      "export default { tasks: { fail: { command: ['sh', '-c', 'echo out; exit 3'], inputs: ['in.txt'] } } };\n",
    'in.txt': 'x',
  });
  const dry = await runCli(['run', '--dry-run', 'fail'], { cwd: dir });
  assert.is(dry.code, 0, dry.err);
  assert.match(dry.out, /^[0-9a-f]{64} miss\n$/);
  const first = await runCli(['run', '--cache-failures', 'fail'], { cwd: dir });
  assert.is(first.code, 3, first.err);
  assert.match(first.err, /miss .* fail/);
  const again = await runCli(['run', '--cache-failures', 'fail'], { cwd: dir });
  assert.is(again.code, 3, again.err);
  assert.match(again.err, /hit .* fail/);
  assert.is(again.out, 'out\n');
  // What follows `--` is the user's command and is passed on exactly as typed.
  const echo = await runCli(['run', '--', 'echo', '--dry-run', '--cache-failures'], { cwd: dir });
  assert.is(echo.out, '--dry-run --cache-failures\n', echo.err);
});

test('an unknown option without a command is a usage error, not help with exit 0', async () => {
  const dir = tempDir();
  for (const [flag, shown] of [
    ['--bogus', '--bogus'],
    ['--bogus-thing', '--bogus-thing'],
    ['-x', '-x'],
  ] as const) {
    const r = await runCli([flag], { cwd: dir });
    assert.is(r.code, 2, `${flag}: ${r.err}`);
    assert.ok(oneLine(r.err), r.err);
    assert.ok(r.err.includes(`unknown option '${shown}'`), r.err);
    assert.is(r.out, '');
  }
  const help = await runCli([], { cwd: dir });
  assert.is(help.code, 0);
  assert.match(help.out, /Usage:/);
});

test('a blank command word is a usage error, not a failed spawn or a cached blank command', async () => {
  const dir = tempDir();
  for (const word of ['', '   ']) {
    const r = await runCli(['run', '--', word], { cwd: dir });
    assert.is(r.code, 2, r.err);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /the command after -- is empty/);
  }
  assert.not.ok(
    existsSync(join(dir, '.taskvault', 'cache', 'hot')) &&
      readdirSync(join(dir, '.taskvault', 'cache', 'hot')).length > 0,
  );
  // An empty argument after the program is an argument like any other.
  const r = await runCli(['run', '--', 'echo', '', 'x'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, ' x\n');
});

test('verify names a blob of the wrong size by its size, not by a mangled hash', async () => {
  const dir = tempDir();
  const r = await runCli(
    ['run', '--outputs', 'out/**', '--', 'sh', '-c', 'mkdir -p out && echo hello > out/a.txt'],
    {
      cwd: dir,
    },
  );
  assert.is(r.code, 0, r.err);
  const blobs = join(dir, '.taskvault', 'cache', 'blobs');
  const blob = readdirSync(blobs, { recursive: true, withFileTypes: true }).find((e) => e.isFile())!;
  writeFileSync(join(blob.parentPath, blob.name), 'garbage!');
  for (const args of [['verify'], ['verify', '--json']]) {
    const v = await runCli(args, { cwd: dir });
    assert.is(v.code, 1, `${args.join(' ')}: ${v.out}${v.err}`);
    assert.match(v.out, /8 bytes does not match its name [0-9a-f]{12} \(6 bytes\)/);
    assert.not.match(v.out, /\(size differ/);
  }
});

test('a cause a warning gave is not repeated by the summary line; a cause without a warning is', async () => {
  const dir = writeTree(tempDir(), { 'not-a-dir': '' });
  const big = await runCli(['run', '--max-entry-size', '1', '--', 'echo', 'hello'], { cwd: dir });
  assert.is(big.code, 0, big.err);
  assert.is(big.err.match(/over the 1 B per-entry limit/g)?.length, 1, big.err);
  assert.match(big.err, /miss .* · not cached\n/);
  const broken = await runCli(['run', '--cache-dir', 'not-a-dir', '--', 'echo', 'x'], { cwd: dir });
  assert.is(broken.code, 0, broken.err);
  assert.is(broken.err.match(/ENOTDIR/g)?.length, 1, broken.err);
  assert.match(broken.err, /ran uncached echo x in \S+\n$/);
  const failed = await runCli(['run', '--', 'sh', '-c', 'exit 4'], { cwd: dir });
  assert.is(failed.code, 4);
  assert.match(failed.err, /not cached: exit code 4 \(use --cache-failures/);
});

test("usage hints name the command that was typed; '--' is suggested only to run", async () => {
  const dir = tempDir();
  const ls = await runCli(['ls', 'extra'], { cwd: dir });
  assert.is(ls.code, 2);
  assert.match(ls.err, /unused args: 'extra' \(see 'taskvault ls --help'\)/);
  const empty = await runCli(['run', '--inputs', '', '--', 'echo'], { cwd: dir });
  assert.is(empty.code, 2);
  assert.match(empty.err, /--inputs needs a non-empty value \(see 'taskvault run --help'\)/);
  const extra = await runCli(['run', 'a', 'b'], { cwd: dir });
  assert.match(extra.err, /put the command after '--'/);
});

test('--env with a space or = in the name is a usage error, not a silently odd key', async () => {
  const dir = tempDir();
  for (const name of ['A B', 'A=1']) {
    const r = await runCli(['run', '--env', name, '--', 'echo', 'x'], { cwd: dir });
    assert.is(r.code, 2, r.err);
    assert.ok(oneLine(r.err), r.err);
    assert.ok(r.err.includes(`--env ${JSON.stringify(name)} is not an environment variable name`), r.err);
    assert.is(r.out, '');
  }
});

test('stats and ls on a cache that cannot be opened fail with one line, never an empty-looking cache', async () => {
  const dir = writeTree(tempDir(), { 'a-file': '' });
  for (const args of [['stats'], ['stats', '--json'], ['ls'], ['cache', 'stats']]) {
    const r = await runCli([...args, '--cache-dir', 'a-file'], { cwd: dir });
    assert.is(r.code, 74, `${args.join(' ')}: ${r.out}${r.err}`);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /cannot open the cache at .*a-file: ENOTDIR/);
    assert.is(r.out, '');
  }
  // No cache yet is still simply empty.
  const none = await runCli(['stats', '--cache-dir', 'not-yet'], { cwd: dir });
  assert.is(none.code, 0, none.err);
  assert.match(none.out, /Entries\s+0/);
});

test('gc --dry-run says the usage it shows is what would be left', async () => {
  const dir = tempDir();
  await runCli(['run', '--', 'echo', 'a'], { cwd: dir });
  const later = String(Date.now() + 40 * 86_400_000); // past the default 30-day TTL
  const dry = await runCli(['gc', '--dry-run'], { cwd: dir, env: { TASKVAULT_NOW_MS: later } });
  assert.is(dry.code, 0, dry.err);
  assert.match(dry.out, /would remove 1 entry \(ttl 1\).*\ncache afterwards: 0 B of /);
  const real = await runCli(['gc'], { cwd: dir, env: { TASKVAULT_NOW_MS: later } });
  assert.match(real.out, /removed 1 entry \(ttl 1\).*\ncache: 0 B of /);
});

test('one argument naming an existing file with a space runs that file, not shell words', async () => {
  const dir = writeTree(tempDir(), { 'my script.sh': '#!/bin/sh\necho from-script\n' });
  chmodSync(join(dir, 'my script.sh'), 0o755);
  const r = await runCli(['run', '--', './my script.sh'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'from-script\n');
  // Shell code still runs through the shell.
  const sh = await runCli(['run', '--', 'echo a && echo b'], { cwd: dir });
  assert.is(sh.out, 'a\nb\n', sh.err);
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

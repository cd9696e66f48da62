/**
 * The bin runs the CLI bundle from V8's code cache (src/cli.cts). It must only ever save time: the
 * output is the same with and without it, a damaged or foreign cache is never used, a bundle that
 * changed never runs another bundle's code, and import() (configs, packages loaded on demand) works
 * from cached code.
 */
import {
  chmodSync,
  chownSync,
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

/** A project whose config is an .mjs file, which the CLI loads with import(). */
function project(): string {
  return writeTree(tempDir(), {
    'in.txt': 'x',
    'taskvault.config.mjs':
      "export default { tasks: { say: { command: ['node', '-e', \"process.stdout.write('said ' + require('fs').readFileSync('in.txt'))\"], inputs: ['in.txt'] } } };\n",
  });
}

const cacheFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.bin'));
/** Which part and command a cache file is for: `run` (the bundle's), `lmdb-run`, `fast-glob-other`, ... */
const partOf = (file: string) => file.replace(/^cli-[0-9a-f]{64}-/, '').replace(/-v8-.*/, '');
/** The bundle's files, without those of the vendor parts (dist/vendor/*.cjs). */
const bundleFiles = (dir: string) =>
  cacheFiles(dir).filter((f) => ['run', 'watch', 'other'].includes(partOf(f)));

test('the first run writes the cache (0600 in a 0700 directory), the next uses it with the same result', async () => {
  const dir = project();
  const cc = join(tempDir('tv-cc-'), 'cc');
  const env = { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' };
  const first = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(first.code, 0, first.err);
  assert.is(first.out, 'said x');
  assert.match(first.err, /code cache: wrote /);
  // A miss: the bundle, and the parts for execa and lmdb, each in a file of its own.
  const files = cacheFiles(cc);
  assert.equal(files.map(partOf).sort(), ['execa-run', 'lmdb-run', 'run'], files.join(' '));
  assert.is(statSync(cc).mode & 0o777, 0o700);
  for (const f of files) assert.is(statSync(join(cc, f)).mode & 0o777, 0o600);

  const second = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(second.code, 0, second.err);
  assert.is(second.out, 'said x');
  assert.match(second.err, /code cache: used /);
  assert.match(second.err, /taskvault: hit /);
  // A hit needs neither execa nor lmdb: their compiled code is not even read.
  assert.not.match(second.err, /-(execa|lmdb|fast-glob)-run/);
  assert.not.match(second.err, /wrote/);
  writeFileSync(join(dir, 'in.txt'), 'y');
  const miss = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(miss.out, 'said y');
  assert.is(miss.err.match(/code cache: used /g)?.length, 3, miss.err);
  assert.not.match(miss.err, /wrote/);
  // import() from cached code: the .mjs config loaded, and no experimental-feature warning.
  assert.not.match(second.err, /ExperimentalWarning|ERR_VM/);
  assert.not.match(first.err, /ExperimentalWarning|ERR_VM/);
});

test('hashing threads start from cached code too (inputs over 64 MB)', async () => {
  // Two sparse 40 MB files: quick to make and to hash, and over the size that starts the threads
  // (on one core there are none, and this checks the plain path).
  const dir = writeTree(tempDir(), {
    'taskvault.config.mjs':
      "export default { tasks: { big: { command: ['node', '-e', 'process.stdout.write(\"ok\")'], inputs: ['data/*'] } } };\n",
  });
  const cc = join(tempDir('tv-cc-'), 'cc');
  const env = { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' };
  for (const [round, expect] of [
    [1, /code cache: wrote /],
    [2, /code cache: used /],
  ] as const) {
    writeTree(dir, { 'data/a': '', 'data/b': `round ${round}` });
    truncateSync(join(dir, 'data/a'), 40 * 1024 * 1024);
    truncateSync(join(dir, 'data/b'), 40 * 1024 * 1024);
    const r = await runCli(['run', 'big'], { cwd: dir, env });
    assert.is(r.code, 0, r.err);
    assert.is(r.out, 'ok');
    assert.match(r.err, expect);
    assert.match(r.err, /taskvault: miss .* cached/, r.err);
    assert.not.match(r.err, /warning|ERR_VM/, r.err);
    if (availableParallelism() > 1) assert.match(r.err, /hashing threads: [2-9]/, r.err);
  }
});

test('a blake-hash that cannot be loaded costs the cache, then gives one line and exit 70, no stack', async () => {
  const dir = project();
  const preload = join(dir, 'block.cjs');
  writeFileSync(
    preload,
    "const M = require('module'); const load = M._load;\n" +
      "M._load = function (req, ...rest) { if (req.includes('blake-hash')) throw new Error('no blake-hash here'); return load.call(this, req, ...rest); };\n",
  );
  const r = await runProcess(process.execPath, ['-r', preload, CLI, 'run', 'say'], {
    cwd: dir,
    env: { TASKVAULT_TRACE: '1' },
  });
  assert.is(r.code, 70, r.err);
  assert.match(r.err, /code cache: off \(cannot load @napi-rs\/blake-hash\)/);
  assert.match(r.err, /taskvault: error: no blake-hash here\n/);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace');
});

test('a file written by a hit is written again by the first miss that uses it, then left alone', async () => {
  const dir = project();
  const cc = tempDir('tv-cc-');
  // The entry exists before the cache does, so the first run to write the cache is a hit.
  assert.is((await runCli(['run', 'say'], { cwd: dir, env: { NODE_DISABLE_COMPILE_CACHE: '1' } })).code, 0);
  const env = { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' };
  const hit = await runCli(['run', 'say'], { cwd: dir, env });
  assert.match(hit.err, /taskvault: hit [\s\S]*code cache: wrote /);
  writeFileSync(join(dir, 'in.txt'), 'y');
  const miss = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(miss.out, 'said y');
  assert.match(miss.err, /code cache: used [\s\S]*code cache: wrote /);
  writeFileSync(join(dir, 'in.txt'), 'z');
  const again = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(again.out, 'said z');
  assert.match(again.err, /code cache: used /);
  assert.not.match(again.err, /code cache: wrote /);
  const hitAgain = await runCli(['run', 'say'], { cwd: dir, env });
  assert.not.match(hitAgain.err, /code cache: wrote /);
});

test('Node flags that differ between runs get a file each, instead of rewriting one every run', async () => {
  const dir = project();
  const cc = tempDir('tv-cc-');
  const plain = { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' };
  const big = { ...plain, NODE_OPTIONS: '--max-old-space-size=4096' };
  for (const env of [plain, big])
    assert.match((await runCli(['run', 'say'], { cwd: dir, env })).err, /wrote/);
  for (const env of [plain, big, plain]) {
    const r = await runCli(['run', 'say'], { cwd: dir, env });
    assert.match(r.err, /code cache: used /);
    assert.not.match(r.err, /rejected|wrote/);
  }
  assert.is(bundleFiles(cc).length, 2);
});

test('a damaged cache file is detected, not run, and written again', async () => {
  const dir = project();
  const cc = tempDir('tv-cc-');
  const env = { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' };
  assert.is((await runCli(['run', 'say'], { cwd: dir, env })).code, 0);
  const file = join(cc, bundleFiles(cc)[0]!);
  const bytes = readFileSync(file);
  // One bit in the middle of V8's payload: V8 itself would accept it.
  bytes[Math.floor(bytes.length / 2)]! ^= 0x10;
  writeFileSync(file, bytes);
  const r = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'said x');
  assert.match(r.err, /code cache: .* is damaged; compiling/, r.err);
  assert.match(r.err, /code cache: wrote /, r.err);
  const again = await runCli(['run', 'say'], { cwd: dir, env });
  assert.match(again.err, /code cache: used /, again.err);

  // Truncated to less than its header.
  writeFileSync(file, bytes.subarray(0, 10));
  const cut = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(cut.code, 0, cut.err);
  assert.is(cut.out, 'said x');
  assert.match(cut.err, /is damaged; compiling/, `${cut.err} (files: ${readdirSync(cc).join(' ')})`);

  // A vendor part's file, which only a miss reads.
  const part = join(cc, cacheFiles(cc).find((f) => f.includes('-lmdb-run-'))!);
  const partBytes = readFileSync(part);
  partBytes[Math.floor(partBytes.length / 2)]! ^= 0x10;
  writeFileSync(part, partBytes);
  writeFileSync(join(dir, 'in.txt'), 'y');
  const miss = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(miss.out, 'said y');
  assert.match(miss.err, /taskvault: miss .* cached/, miss.err);
  assert.match(miss.err, /code cache: .*-lmdb-run-.* is damaged; compiling/, miss.err);
  assert.match(miss.err, /code cache: wrote .*-lmdb-run-/, miss.err);
});

test('a cache directory that other users can write to is not used', async () => {
  const dir = project();
  const cc = tempDir('tv-cc-');
  chmodSync(cc, 0o777);
  const r = await runCli(['run', 'say'], {
    cwd: dir,
    env: { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' },
  });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'said x');
  assert.match(r.err, /code cache: off \(.* is writable by other users\)/);
  assert.equal(cacheFiles(cc), []);
});

test("a cache directory another user owns is not used (that user's code would run as this one)", async () => {
  if (process.getuid?.() !== 0) {
    assert.ok(!process.env.CI, 'CI runs the tests as root, to chown the directory');
    return;
  }
  const dir = project();
  const cc = tempDir('tv-cc-');
  chmodSync(cc, 0o700);
  chownSync(cc, 65534, 65534);
  const r = await runCli(['run', 'say'], {
    cwd: dir,
    env: { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' },
  });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'said x');
  assert.match(r.err, /code cache: off \(.* belongs to another user\)/);
  assert.equal(cacheFiles(cc), []);
});

test("writing a cache file removes other builds' files a day old, and temp files of writers gone an hour", async () => {
  const dir = project();
  const cc = tempDir('tv-cc-');
  chmodSync(cc, 0o700);
  const other = 'a'.repeat(64);
  const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000);
  const files: Array<[string, number, boolean]> = [
    // name, age in hours, kept
    [`cli-${other}-run-v8-1.bin`, 25, false],
    [`cli-${other}-other-v8-1.bin`, 23, true],
    [`cli-${other}-run-v8-1.bin.123.tmp`, 2, false],
    [`cli-${other}-run-v8-1.bin.456.tmp`, 0.5, true], // a writer that may still be going
    ['unrelated.txt', 48, true],
  ];
  for (const [name, age] of files) {
    writeFileSync(join(cc, name), name);
    utimesSync(join(cc, name), hoursAgo(age), hoursAgo(age));
  }
  const r = await runCli(['run', 'say'], {
    cwd: dir,
    env: { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' },
  });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /code cache: wrote /);
  const left = readdirSync(cc);
  for (const [name, age, kept] of files) assert.is(left.includes(name), kept, `${name}, ${age} h old`);
  // The miss wrote the bundle's file and those of the parts it loaded (execa, lmdb); on Node >= 22.1
  // Node's own compile cache is the directory node/ beside them.
  const ours = left.filter((f) => f !== 'node' && !files.some(([name]) => name === f));
  assert.is(ours.length, 3, `ours: ${left.join(' ')}`);
});

test("a part this run did not load is still this build's: writing a cache file keeps it", async () => {
  const dir = project();
  const cc = tempDir('tv-cc-');
  const env = { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' };
  assert.is((await runCli(['run', 'say'], { cwd: dir, env })).code, 0); // a miss: all three written
  const day = new Date(Date.now() - 25 * 3600_000);
  for (const f of cacheFiles(cc)) utimesSync(join(cc, f), day, day);
  // A hit with no bundle file writes one, and prunes; it loads neither execa nor lmdb.
  for (const f of bundleFiles(cc)) rmSync(join(cc, f));
  const hit = await runCli(['run', 'say'], { cwd: dir, env });
  assert.match(hit.err, /taskvault: hit [\s\S]*code cache: wrote /);
  assert.equal(cacheFiles(cc).map(partOf).sort(), ['execa-run', 'lmdb-run', 'run']);
});

test('NODE_DISABLE_COMPILE_CACHE turns it off', async () => {
  const dir = project();
  const cc = tempDir('tv-cc-');
  const env = { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1', NODE_DISABLE_COMPILE_CACHE: '1' };
  const r = await runCli(['run', 'say'], { cwd: dir, env });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /code cache: off \(NODE_DISABLE_COMPILE_CACHE is set\)/);
  assert.equal(cacheFiles(cc), []);
});

/** A copy of the built package (dist/ and package.json), with node_modules linked. */
function copyOfPackage(): string {
  const pkg = tempDir('tv-pkg-');
  cpSync(join(REPO, 'dist'), join(pkg, 'dist'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(join(REPO, 'node_modules'), join(pkg, 'node_modules'));
  return pkg;
}

test('a bundle changed in place, even to the same length, never runs the old code from the cache', async () => {
  const cc = tempDir('tv-cc-');
  const env = { TASKVAULT_COMPILE_CACHE: cc, TASKVAULT_TRACE: '1' };
  const pkg = copyOfPackage();
  const bin = join(pkg, 'dist', 'cli.cjs');
  const before = await runProcess(process.execPath, [bin, '--version'], { cwd: pkg, env });
  assert.ok(before.out.includes(VERSION), before.err);
  assert.match(before.err, /code cache: wrote /);

  // The version is read from package.json; the bundle's own text is what V8's cache is keyed on
  // (by length only). Change one character of the usage text, keeping the length.
  const bundle = join(pkg, 'dist', 'cli-bundle.cjs');
  const text = readFileSync(bundle, 'utf8');
  assert.ok(text.includes('cac("taskvault")'));
  writeFileSync(bundle, text.replace('cac("taskvault")', 'cac("taskvaulT")'));
  const after = await runProcess(process.execPath, [bin, '--version'], { cwd: pkg, env });
  assert.is(after.code, 0, after.err);
  assert.match(after.out, /^taskvaulT\//, 'the changed code ran');
  assert.match(after.err, /code cache: wrote /, 'compiled afresh, under its own name');
  assert.is(cacheFiles(cc).length, 2);
});

test('without the vendor parts the CLI loads execa, lmdb and fast-glob from their packages', async () => {
  const pkg = copyOfPackage();
  for (const part of ['execa', 'lmdb', 'fast-glob']) rmSync(join(pkg, 'dist', 'vendor', `${part}.cjs`));
  // '*.txt' is a glob for fast-glob (the plain walks take directories and literal paths).
  const dir = writeTree(tempDir(), {
    'in.txt': 'x',
    'taskvault.config.mjs':
      "export default { tasks: { say: { command: ['node', '-e', \"process.stdout.write('said ' + require('fs').readFileSync('in.txt'))\"], inputs: ['*.txt'] } } };\n",
  });
  const env = { TASKVAULT_COMPILE_CACHE: tempDir('tv-cc-'), TASKVAULT_TRACE: '1' };
  const bin = join(pkg, 'dist', 'cli.cjs');
  const miss = await runProcess(process.execPath, [bin, 'run', 'say'], { cwd: dir, env });
  assert.is(miss.code, 0, miss.err);
  assert.is(miss.out, 'said x');
  assert.match(miss.err, /taskvault: miss .* cached/);
  assert.not.match(miss.err, /-(execa|lmdb|fast-glob)-run/, 'no part was loaded');
  const hit = await runProcess(process.execPath, [bin, 'run', 'say'], { cwd: dir, env });
  assert.match(hit.err, /taskvault: hit /);
  const stats = await runProcess(process.execPath, [bin, 'cache', 'stats', '--json'], { cwd: dir, env });
  assert.is(stats.code, 0, stats.err);
  assert.match(stats.out, /"entries":\s*1/);
});

test('an lmdb installed since the build (another version) is loaded itself, not under the part', async () => {
  const pkg = tempDir('tv-pkg-');
  cpSync(join(REPO, 'dist'), join(pkg, 'dist'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(pkg, 'package.json'));
  // node_modules as the repository's, but lmdb a copy that says it is another version.
  const modules = join(pkg, 'node_modules');
  mkdirSync(modules);
  for (const name of readdirSync(join(REPO, 'node_modules')))
    if (name !== 'lmdb') symlinkSync(join(REPO, 'node_modules', name), join(modules, name));
  cpSync(join(REPO, 'node_modules', 'lmdb'), join(modules, 'lmdb'), { recursive: true });
  const manifest = join(modules, 'lmdb', 'package.json');
  writeFileSync(
    manifest,
    readFileSync(manifest, 'utf8').replace(/"version": "[^"]+"/, '"version": "0.0.1-other"'),
  );
  const dir = project();
  const env = { TASKVAULT_COMPILE_CACHE: tempDir('tv-cc-'), TASKVAULT_TRACE: '1' };
  const bin = join(pkg, 'dist', 'cli.cjs');
  const miss = await runProcess(process.execPath, [bin, 'run', 'say'], { cwd: dir, env });
  assert.is(miss.code, 0, miss.err);
  assert.match(miss.err, /taskvault: miss .* cached/, miss.err);
  assert.not.match(miss.err, /-lmdb-run-/, 'the part was not used');
  assert.not.match(miss.err, /warning|error/i, miss.err);
  const stats = await runProcess(process.execPath, [bin, 'cache', 'stats', '--json'], { cwd: dir, env });
  assert.is(stats.code, 0, stats.err);
  assert.match(stats.out, /"entries":\s*1/);
});

test('a glob the plain walks do not take loads fast-glob as a part, with its own cache file', async () => {
  const dir = writeTree(tempDir(), {
    'in.txt': 'x',
    'taskvault.config.mjs':
      "export default { tasks: { say: { command: ['node', '-e', \"process.stdout.write('said ' + require('fs').readFileSync('in.txt'))\"], inputs: ['*.txt'] } } };\n",
  });
  const env = { TASKVAULT_COMPILE_CACHE: tempDir('tv-cc-'), TASKVAULT_TRACE: '1' };
  const miss = await runCli(['run', 'say'], { cwd: dir, env });
  assert.match(miss.err, /code cache: wrote .*-fast-glob-run-/, miss.err);
  const hit = await runCli(['run', 'say'], { cwd: dir, env });
  assert.match(hit.err, /taskvault: hit /);
  assert.match(hit.err, /code cache: used .*-fast-glob-run-/, hit.err);
  writeFileSync(join(dir, 'more.txt'), 'y');
  const again = await runCli(['run', 'say'], { cwd: dir, env });
  assert.match(again.err, /taskvault: miss /, 'a new file the glob matches is an input');
});

test('without the bundle (a plain tsc build) the bin runs the unbundled CLI', async () => {
  const pkg = copyOfPackage();
  rmSync(join(pkg, 'dist', 'cli-bundle.cjs'));
  const dir = project();
  const r = await runProcess(process.execPath, [join(pkg, 'dist', 'cli.cjs'), 'run', 'say'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'said x');
});

test.run();

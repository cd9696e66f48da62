/**
 * Invariant 4: whatever an entry says (a poisoned remote cache, a hand-edited index), a restore
 * never writes or deletes outside the project root. Entries are crafted directly in the LMDB index.
 */
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Entry, OutputRecord } from '../../src/store/entry.js';
import { Store } from '../../src/store/store.js';
import { executions, sleep, spawnCli, warnings } from '../support/fault-helpers.js';
import { readTreeSnapshot, runCli, tempDir, writeTree } from '../support/helpers.js';

const ARGS = ['run', '--inputs', 'src/**', '--outputs', 'out/**', '--', 'node', 'make.js'];
const MAKE = `
const fs = require('fs');
fs.appendFileSync(process.env.COUNTER, 'x\\n');
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/real.txt', 'real');
console.log('real run');
`;

interface Ctx {
  dir: string;
  outside: string;
  /** The outside dir as seen from the project root: ../<name> */
  up: string;
  counter: string;
  cacheDir: string;
  key: string;
}

async function setup(): Promise<Ctx> {
  const dir = tempDir('tv-hostile-');
  writeTree(dir, { 'make.js': MAKE, 'src/in.txt': 'x' });
  const outside = tempDir('tv-outside-');
  writeTree(outside, { 'victim.txt': 'precious', 'sub/keep.txt': 'keep' });
  const dry = await runCli([...ARGS.slice(0, -3), '--dry-run', '--', 'node', 'make.js'], { cwd: dir });
  assert.is(dry.code, 0, dry.err);
  return {
    dir,
    outside,
    up: `../${basename(outside)}`,
    counter: join(tempDir('tv-hostile-side-'), 'counter'),
    cacheDir: join(dir, '.taskvault', 'cache'),
    key: dry.out.split(' ')[0]!,
  };
}

/**
 * Writes an entry straight into the index and hot/ (where a hit reads it first), blobs included,
 * bypassing every check of commit.
 */
async function plant(c: Ctx, outputs: OutputRecord[], extra: Partial<Entry> = {}, blobs: string[] = []) {
  const opened = Store.open(c.cacheDir);
  if (!opened.ok) throw new Error(opened.error.message);
  const s = opened.value;
  for (const b of blobs) await s.blobs.putBytes('blake3', Buffer.from(b));
  const entry: Entry = {
    schema: 1,
    key: c.key,
    task: '',
    algorithm: 'blake3',
    outputs,
    outputGlobs: ['out/**'],
    cwd: '',
    logs: { stdout: null, stderr: null, chunks: [] },
    exitCode: 0,
    durationMs: 1,
    createdAt: Date.now(),
    bytes: 1,
    ttlMs: 86400_000,
    provenance: { host: 'evil', user: 'evil', version: '0', origin: 'remote' },
    ...extra,
  };
  await (
    s as unknown as { dbs: { entries: { put(k: string, v: Entry): Promise<unknown> } } }
  ).dbs.entries.put(c.key, entry);
  s.hot.putEntry(entry);
  await s.close();
}

async function blobHash(c: Ctx, content: string): Promise<string> {
  const opened = Store.open(c.cacheDir);
  if (!opened.ok) throw new Error(opened.error.message);
  const ref = await opened.value.blobs.putBytes('blake3', Buffer.from(content));
  await opened.value.close();
  return ref.hash;
}

let refused = 0;
let attempted = 0;

/** Runs the task over the planted entry: it must be refused, the command must run, outside untouched. */
async function expectRefused(c: Ctx, what: string, pattern = /refused/) {
  attempted++;
  const outsideBefore = readTreeSnapshot(c.outside);
  const r = await runCli(ARGS, { cwd: c.dir, env: { COUNTER: c.counter } });
  assert.is(r.code, 0, r.err);
  assert.equal(readTreeSnapshot(c.outside), outsideBefore, `${what}: nothing outside the project changed`);
  assert.is(executions(c.counter), 1, `${what}: the command ran instead`);
  const w = warnings(r.err);
  assert.is(w.length, 1, r.err);
  assert.match(w[0]!, pattern);
  assert.is(readFileSync(join(c.dir, 'out', 'real.txt'), 'utf8'), 'real');
  refused++;
}

const file = (path: string, hash: string, size = 4): OutputRecord => ({
  path,
  type: 'file',
  mode: 0o644,
  size,
  hash,
});

test('absolute path', async () => {
  const c = await setup();
  await plant(c, [file(join(c.outside, 'evil.txt'), await blobHash(c, 'evil'))]);
  await expectRefused(c, 'absolute');
  assert.not.ok(existsSync(join(c.outside, 'evil.txt')));
});

test('.. segments, plain and hidden in the middle', async () => {
  for (const p of ['UP/evil.txt', 'out/../../UP/evil.txt', 'out/./../../UP/evil.txt']) {
    const c = await setup();
    await plant(c, [file(p.replace('UP', c.up), await blobHash(c, 'evil'))]);
    await expectRefused(c, p);
    assert.not.ok(existsSync(join(c.outside, 'evil.txt')));
  }
});

test('symlink pointing out of the project (relative and absolute targets)', async () => {
  for (const target of ['UP', '../../UP/victim.txt', '/etc']) {
    const c = await setup();
    await plant(c, [{ path: 'out/link', type: 'symlink', target: target.replace('UP', `../${c.up}`) }]);
    await expectRefused(c, `symlink to ${target}`);
    assert.not.ok(existsSync(join(c.dir, 'out', 'link')));
  }
});

test('symlink chain that only escapes when resolved like the kernel does (c -> . then a -> c/../..)', async () => {
  const c = await setup();
  await plant(c, [
    { path: 'out/c', type: 'symlink', target: '.' },
    { path: 'out/a', type: 'symlink', target: 'c/../..' },
  ]);
  await expectRefused(c, 'chain');
});

test('a file written through a symlink the same entry creates', async () => {
  const c = await setup();
  await plant(c, [
    { path: 'out/d', type: 'symlink', target: `../${c.up}` },
    file('out/d/evil.txt', await blobHash(c, 'evil')),
  ]);
  await expectRefused(c, 'through own symlink');
  // Even an inside target: the file would land somewhere the entry did not name.
  const c2 = await setup();
  await plant(c2, [
    { path: 'out/d', type: 'symlink', target: 'sub' },
    file('out/d/x.txt', await blobHash(c2, 'evil')),
  ]);
  await expectRefused(c2, 'through own inside symlink');
});

test('a symlink already on disk in a parent directory', async () => {
  const c = await setup();
  // The project's out/ is (already) a symlink to the outside directory.
  symlinkSync(c.outside, join(c.dir, 'out'));
  await plant(c, [file('out/evil.txt', await blobHash(c, 'evil'))]);
  attempted++;
  const before = readTreeSnapshot(c.outside);
  const r = await runCli(ARGS, { cwd: c.dir, env: { COUNTER: c.counter } });
  assert.is(r.code, 0, r.err);
  assert.match(warnings(r.err)[0] ?? '', /refused to write through the symlink out/);
  // The command itself then wrote through its own symlink: that is the user's doing, not the cache's.
  assert.not.ok(existsSync(join(c.outside, 'evil.txt')), 'the cache wrote nothing there');
  assert.is(
    readFileSync(join(c.outside, 'victim.txt'), 'utf8'),
    before['victim.txt']!.type === 'file' ? 'precious' : '',
  );
  refused++;
});

test('a symlink on disk at the destination itself is replaced, not written through', async () => {
  const c = await setup();
  mkdirSync(join(c.dir, 'out'));
  symlinkSync(join(c.outside, 'victim.txt'), join(c.dir, 'out', 'real.txt'));
  await plant(c, [file('out/real.txt', await blobHash(c, 'real'))], {}, ['real']);
  const r = await runCli(ARGS, { cwd: c.dir, env: { COUNTER: c.counter } });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /\bhit\b/);
  assert.is(readFileSync(join(c.outside, 'victim.txt'), 'utf8'), 'precious');
  assert.ok(lstatSync(join(c.dir, 'out', 'real.txt')).isFile());
});

test('a blob hash that is a path (../../..) is refused and nothing is read or deleted by it', async () => {
  const c = await setup();
  const victim = join(c.outside, 'victim.txt');
  await plant(c, [file('out/real.txt', `../../../../../../../../..${victim}`, 8)]);
  await expectRefused(c, 'hash traversal');
  assert.ok(existsSync(victim), 'the file named by the "hash" still exists');
});

test('paths into .git, .taskvault and node_modules are refused', async () => {
  for (const p of ['.git/hooks/pre-commit', '.taskvault/cache/index/data.mdb', 'node_modules/x/index.js']) {
    const c = await setup();
    await plant(c, [file(p, await blobHash(c, 'evil'))]);
    await expectRefused(c, p);
    assert.not.ok(existsSync(join(c.dir, p)) && readFileSync(join(c.dir, p), 'utf8') === 'evil');
  }
});

test('hostile cwd / output globs cannot make the stale-output sweep delete outside the root', async () => {
  const c = await setup();
  const real = await blobHash(c, 'real');
  await plant(c, [file('out/real.txt', real)], { outputGlobs: [`${c.up}/**`, '/tmp/**'] });
  attempted++;
  const r = await runCli(ARGS, { cwd: c.dir, env: { COUNTER: c.counter } });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /\bhit\b/, `the entry was restored, so its globs were swept: ${r.err}`);
  assert.ok(existsSync(join(c.outside, 'victim.txt')), 'outside files survive the sweep');
  assert.ok(existsSync(join(c.outside, 'sub', 'keep.txt')));
  refused++;
  const c2 = await setup();
  await plant(c2, [file('out/real.txt', await blobHash(c2, 'real'))], {
    cwd: `${c2.up}`,
    outputGlobs: ['**'],
  });
  await expectRefused(c2, 'hostile cwd', /unsafe cwd/);
  assert.ok(existsSync(join(c2.outside, 'victim.txt')));
});

test('the stale-output sweep never deletes through a directory symlink on disk', async () => {
  const c = await setup();
  // out/ is a symlink to the outside dir; an entry with no outputs makes a restore sweep out/**.
  symlinkSync(c.outside, join(c.dir, 'out'));
  await plant(c, []);
  attempted++;
  const before = readTreeSnapshot(c.outside);
  const r = await runCli(ARGS, { cwd: c.dir, env: { COUNTER: c.counter } });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /\bhit\b/, r.err);
  assert.equal(readTreeSnapshot(c.outside), before, 'nothing outside was deleted');
  refused++;
});

test('a directory swapped for a symlink while a restore is writing: the rename is refused', async () => {
  const dir = tempDir('tv-swap-');
  const outside = tempDir('tv-outside-');
  // A directory where the swapped path would put the file: replacing it would delete what is inside.
  writeTree(outside, { 'big.bin/precious.txt': 'precious' });
  const outsideBefore = readTreeSnapshot(outside);
  // The command never writes through a symlink itself, so anything outside would be the cache's doing.
  writeTree(dir, {
    'src/in.txt': 'x',
    'big.js': `
const fs = require('fs');
fs.mkdirSync('out/sub', { recursive: true });
if (!fs.lstatSync('out/sub').isSymbolicLink()) fs.writeFileSync('out/sub/big.bin', Buffer.alloc(64 << 20, 7));
`,
  });
  // Only the file is an output (no directory records), so nothing but the pre-rename check stands guard.
  const args = ['run', '--inputs', 'src/**', '--outputs', 'out/sub/*.bin', '--', 'node', 'big.js'];
  const first = await runCli(args, { cwd: dir });
  assert.is(first.code, 0, first.err);
  let swapped = 0;
  for (let attempt = 0; attempt < 6 && swapped === 0; attempt++) {
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    rmSync(join(dir, 'out.real'), { recursive: true, force: true });
    const hit = spawnCli(args, dir);
    // As soon as the restore's temp file appears in out/sub, swap out/sub for a symlink to outside.
    const until = Date.now() + 20_000;
    while (Date.now() < until && hit.child.exitCode === null) {
      const sub = join(dir, 'out', 'sub');
      if (existsSync(sub) && readdirSync(sub).some((n) => n.includes('.tv-'))) {
        renameSync(join(dir, 'out'), join(dir, 'out.real'));
        mkdirSync(join(dir, 'out'));
        symlinkSync(outside, sub);
        swapped++;
        break;
      }
      await sleep(1);
    }
    const ended = await hit.done;
    assert.is(ended.code, 0, hit.err());
    if (swapped) assert.match(hit.err(), /refused .*symlink/);
  }
  console.log(
    `dir swapped for a symlink mid-restore: ${swapped ? 'caught' : 'restore always finished first'}`,
  );
  assert.ok(swapped > 0, 'the swap landed while the restore was writing');
  assert.equal(readTreeSnapshot(outside), outsideBefore, 'nothing outside was replaced or deleted');
});

test('setuid/setgid bits in an entry are not restored', async () => {
  const c = await setup();
  const h = await blobHash(c, 'real');
  await plant(c, [{ path: 'out/real.txt', type: 'file', mode: 0o6755, size: 4, hash: h }]);
  const r = await runCli(ARGS, { cwd: c.dir, env: { COUNTER: c.counter } });
  assert.match(r.err, /\bhit\b/);
  assert.is(statSync(join(c.dir, 'out', 'real.txt')).mode & 0o7777, 0o755);
  chmodSync(join(c.dir, 'out', 'real.txt'), 0o644);
});

test('taskvault verify flags hostile entries too', async () => {
  const c = await setup();
  await plant(c, [file('../escape.txt', await blobHash(c, 'evil'))]);
  const v = await runCli(['verify'], { cwd: c.dir });
  assert.is(v.code, 1);
  assert.match(v.out, /broken .*refused entry path/);
});

test('report', () => {
  console.log(`hostile entries: ${refused} refused out of ${attempted} planted`);
  assert.is(refused, attempted);
});

test.run();

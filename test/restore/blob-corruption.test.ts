/**
 * Invariant 1: a blob that no longer matches its name (truncated, bit-flipped, deleted) or an entry
 * naming a missing blob is detected on restore, counted as a miss, removed, logged as ERROR, and
 * the command runs. `taskvault verify [--repair]` finds the same problems across the whole store.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hashBytes } from '../../src/fingerprint/hash.js';
import type { Entry } from '../../src/store/entry.js';
import { Store } from '../../src/store/store.js';
import { auditLines, executions, warnings } from '../support/fault-helpers.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

const SMALL = 'small output\n'.repeat(100);
/** Over the 8 MiB streaming threshold, so the streamed verification path is exercised too. */
const BIG_BYTES = 9 * 1024 * 1024;

const MAKE = `
const fs = require('fs');
fs.appendFileSync(process.env.COUNTER, 'x\\n');
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/small.txt', ${JSON.stringify(SMALL)});
const big = Buffer.alloc(${BIG_BYTES});
for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 12)) & 0xff;
fs.writeFileSync('out/big.bin', big);
console.log('made outputs for ' + fs.readFileSync('src/in.txt', 'utf8'));
`;

const ARGS = [
  'run',
  '--inputs',
  'src/**',
  '--inputs',
  'make.js',
  '--outputs',
  'out/**',
  '--',
  'node',
  'make.js',
];

async function project(seed = 'one') {
  const dir = tempDir('tv-corrupt-');
  writeTree(dir, { 'make.js': MAKE, 'src/in.txt': seed });
  const counter = join(tempDir('tv-corrupt-side-'), 'counter');
  const first = await runCli(ARGS, { cwd: dir, env: { COUNTER: counter } });
  assert.is(first.code, 0, first.err);
  const dry = await runCli([...ARGS.slice(0, -3), '--dry-run', '--', 'node', 'make.js'], { cwd: dir });
  const key = dry.out.split(' ')[0]!;
  assert.match(dry.out, / hit\n$/);
  return { dir, counter, key, cacheDir: join(dir, '.taskvault', 'cache') };
}

async function withStore<T>(cacheDir: string, fn: (s: Store) => T | Promise<T>): Promise<T> {
  const opened = Store.open(cacheDir);
  if (!opened.ok) throw new Error(opened.error.message);
  try {
    return await fn(opened.value);
  } finally {
    await opened.value.close();
  }
}

type Target = 'small' | 'big' | 'stdout';
function blobOf(cacheDir: string, key: string, target: Target): Promise<{ path: string; hash: string }> {
  return withStore(cacheDir, (s) => {
    const e = s.getEntry(key);
    if (!e) throw new Error(`no entry ${key}`);
    const hash =
      target === 'stdout'
        ? e.logs.stdout!.hash
        : (
            e.outputs.find((o) => o.path === `out/${target === 'small' ? 'small.txt' : 'big.bin'}`) as {
              hash: string;
            }
          ).hash;
    return { path: s.blobs.path(hash), hash };
  });
}

const flip = (p: string) => {
  const b = readFileSync(p);
  b[Math.floor(b.length / 2)]! ^= 0x10;
  writeFileSync(p, b);
};

const injections: Array<[string, Target, (p: string) => void]> = [
  ['truncated output blob', 'small', (p) => truncateSync(p, 10)],
  ['bit-flipped output blob', 'small', flip],
  ['deleted output blob', 'small', (p) => rmSync(p)],
  ['truncated large (streamed) output blob', 'big', (p) => truncateSync(p, 1024 * 1024)],
  ['bit-flipped large (streamed) output blob', 'big', flip],
  ['truncated stdout blob', 'stdout', (p) => truncateSync(p, 3)],
  ['bit-flipped stdout blob', 'stdout', flip],
  ['deleted stdout blob', 'stdout', (p) => rmSync(p)],
];

let injected = 0;
let detected = 0;

async function expectDetected(dir: string, counter: string, cacheDir: string, what: string) {
  rmSync(join(dir, 'out'), { recursive: true, force: true });
  const before = executions(counter);
  const r = await runCli(ARGS, { cwd: dir, env: { COUNTER: counter } });
  assert.is(r.code, 0, r.err);
  assert.is(executions(counter), before + 1, `${what}: the command ran`);
  const w = warnings(r.err);
  assert.is(w.length, 1, r.err);
  assert.match(w[0]!, /cached result for [0-9a-f]{12} not used: .*blob (missing|corrupt)/);
  assert.match(r.err, /\bmiss\b.*cached/, 'counted as a miss, and the fresh result stored');
  assert.ok(
    auditLines(cacheDir).some((l) => / ERROR run .*blob/.test(l)),
    `${what}: ERROR in the audit log`,
  );
  assert.is(readFileSync(join(dir, 'out', 'small.txt'), 'utf8'), SMALL);
  assert.is(readFileSync(join(dir, 'out', 'big.bin')).byteLength, BIG_BYTES);
  detected++;
}

for (const [what, target, inject] of injections) {
  test(`${what}: detected on restore, a miss, removed, logged, the command runs`, async () => {
    const { dir, counter, key, cacheDir } = await project();
    const blob = await blobOf(cacheDir, key, target);
    inject(blob.path);
    injected++;
    await expectDetected(dir, counter, cacheDir, what);
    // The bad copy is gone: the blob under that name now matches it again (re-stored by the run).
    const now = readFileSync(blob.path);
    assert.is(hashBytes('blake3', now), blob.hash, 'blob under its name is intact again');
    // And the next run is a clean hit.
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    const hit = await runCli(ARGS, { cwd: dir, env: { COUNTER: counter } });
    assert.match(hit.err, /\bhit\b/, hit.err);
    assert.is(readFileSync(join(dir, 'out', 'small.txt'), 'utf8'), SMALL);
  });
}

test('an index entry pointing at a blob that does not exist: detected, a miss, the command runs', async () => {
  const { dir, counter, key, cacheDir } = await project();
  const ghost = createHash('sha256').update('never stored').digest('hex');
  await withStore(cacheDir, async (s) => {
    const e = s.getEntry(key)!;
    const outputs = e.outputs.map((o) =>
      o.type === 'file' && o.path === 'out/small.txt' ? { ...o, hash: ghost } : o,
    );
    // Bypass commit's own check (it refuses entries with missing blobs), as a hand edit would, in
    // both places an entry is read from: the index and its copy in hot/ (store/hot.ts).
    const hacked: Entry = { ...e, outputs };
    await (
      s as unknown as { dbs: { entries: { put(k: string, v: Entry): Promise<unknown> } } }
    ).dbs.entries.put(key, hacked);
    writeFileSync(join(cacheDir, 'hot', key), JSON.stringify(hacked));
  });
  injected++;
  await expectDetected(dir, counter, cacheDir, 'entry with a missing blob');
});

test('taskvault verify reports every broken entry; --repair removes them and leftovers of killed runs', async () => {
  const { dir, counter, cacheDir } = await project('a');
  const keys: string[] = [];
  for (const seed of ['a', 'b', 'c']) {
    writeFileSync(join(dir, 'src', 'in.txt'), seed);
    const r = await runCli(ARGS, { cwd: dir, env: { COUNTER: counter } });
    assert.is(r.code, 0);
    const dry = await runCli([...ARGS.slice(0, -3), '--dry-run', '--', 'node', 'make.js'], { cwd: dir });
    keys.push(dry.out.split(' ')[0]!);
  }
  // Seeds give different small outputs only via stdout; corrupt each entry's stdout blob differently.
  flip((await blobOf(cacheDir, keys[0]!, 'stdout')).path);
  rmSync((await blobOf(cacheDir, keys[1]!, 'stdout')).path);
  injected += 2;
  // A temp file of a process that no longer exists (a kill -9 mid-snapshot leaves these).
  writeFileSync(join(cacheDir, 'tmp', '999999-1-deadbeef.blob'), 'half');

  const check = await runCli(['verify'], { cwd: dir });
  assert.is(check.code, 1, 'broken entries found: exit 1');
  assert.is(check.out.split('\n').filter((l) => l.startsWith('broken ')).length, 2, check.out);
  assert.match(check.out, new RegExp(`broken ${keys[0]!.slice(0, 12)} .*corrupt`));
  assert.match(check.out, new RegExp(`broken ${keys[1]!.slice(0, 12)} .*missing`));
  assert.match(check.out, /checked 3 entries.*: 2 broken/);
  detected += 2;

  const repair = await runCli(['verify', '--repair'], { cwd: dir });
  assert.is(repair.code, 0, repair.out);
  assert.match(repair.out, /2 broken, 2 removed, 1 leftover file removed/);
  assert.not.ok(existsSync(join(cacheDir, 'tmp', '999999-1-deadbeef.blob')));

  const after = await runCli(['verify'], { cwd: dir });
  assert.is(after.code, 0);
  assert.match(after.out, /checked 1 entry, .*: 0 broken/);
  // The intact entry still hits.
  rmSync(join(dir, 'out'), { recursive: true, force: true });
  const hit = await runCli(ARGS, { cwd: dir, env: { COUNTER: counter } });
  assert.match(hit.err, /\bhit\b/);
});

test('report', () => {
  console.log(`corruption: ${detected} detected out of ${injected} injected`);
  assert.is(detected, injected);
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

test.run();

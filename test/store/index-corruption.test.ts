/**
 * A corrupt LMDB index (garbage over data.mdb, a damaged page) must not crash TaskVault or cost the
 * command its exit code: the index is moved aside to index.corrupt-*, rebuilt from hot/, and one
 * warning says so. Plain `verify` reports it (non-zero); `verify --repair` rebuilds it.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { executions, warnings } from '../support/fault-helpers.js';
import { type CliResult, runCli, tempDir, writeTree } from '../support/helpers.js';

const CMD = `
const fs = require('fs');
fs.appendFileSync(process.env.COUNTER, 'x\\n');
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/' + process.env.NAME + '.txt', 'output of ' + process.env.NAME);
console.log('ran ' + process.env.NAME);
process.exitCode = Number(process.env.EXIT || 0);
`;

const runArgs = (name: string) => [
  'run',
  '--inputs',
  `src/${name}.txt`,
  '--outputs',
  `out/${name}.txt`,
  '--',
  'node',
  'cmd.js',
];

/** A project with two cached entries (a and b). */
async function project() {
  const dir = tempDir('tv-index-');
  writeTree(dir, { 'cmd.js': CMD, 'src/a.txt': 'a', 'src/b.txt': 'b', 'src/c.txt': 'c' });
  const counter = join(tempDir('tv-index-side-'), 'counter');
  const cacheDir = join(dir, '.taskvault', 'cache');
  const run = (name: string, env: Record<string, string> = {}) =>
    runCli(runArgs(name), { cwd: dir, env: { COUNTER: counter, NAME: name, ...env } });
  for (const name of ['a', 'b']) assert.is((await run(name)).code, 0);
  return { dir, counter, cacheDir, run, data: join(cacheDir, 'index', 'data.mdb') };
}

/** The same pseudo-random bytes on every run, so that the tests are stable. */
function garbage(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

function overwrite(path: string, at: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, at);
}

/** Page size and the main database's root page, from the newest meta page. */
function mainRoot(data: string): number {
  const b = readFileSync(data);
  const pageSize = b.readUInt32LE(48);
  const meta = b.readBigUInt64LE(152) > b.readBigUInt64LE(pageSize + 152) ? 0 : pageSize;
  return Number(b.readBigUInt64LE(meta + 136)) * pageSize;
}

const asides = (cacheDir: string) => readdirSync(cacheDir).filter((n) => n.startsWith('index.corrupt-'));

/** No crash (signal), no JS stack trace, no internal error. */
function clean(r: CliResult, what: string): void {
  assert.is(r.signal, null, `${what}: killed by ${r.signal}`);
  assert.not.match(r.err, /\n\s+at .+:\d+:\d+|internal error:|Uncaught|MDB_BAD_TXN/, `${what}: ${r.err}`);
}

test('garbage over the whole index: the exit code passes through, one warning, entries rebuilt', async () => {
  const p = await project();
  writeFileSync(p.data, garbage(98304, 1));
  // One entry loses its hot/ copy too: only the other can be rebuilt.
  rmSync(join(p.cacheDir, 'hot', readdirSync(join(p.cacheDir, 'hot'))[0]!));
  const r = await p.run('c', { EXIT: '3' });
  clean(r, 'run');
  assert.is(r.code, 3);
  assert.match(r.out, /ran c/);
  const w = warnings(r.err);
  assert.is(w.length, 1, r.err);
  assert.match(
    w[0]!,
    /the cache index was corrupt .*moved to .*index\.corrupt-.*; rebuilt 1 entry from hot\//,
  );
  assert.is(asides(p.cacheDir).length, 1, 'the corrupt index is kept, not deleted');
  // The rebuilt index is sound: verify passes, gc keeps the entry's blobs, and it is still a hit.
  const v = await runCli(['verify'], { cwd: p.dir });
  assert.is(v.code, 0, v.out + v.err);
  assert.match(v.out, /checked 1 entry/);
  assert.is((await runCli(['gc'], { cwd: p.dir })).code, 0);
  const before = executions(p.counter);
  rmSync(join(p.dir, 'out'), { recursive: true });
  const hits = await Promise.all(['a', 'b'].map((n) => p.run(n)));
  assert.is(hits.filter((h) => /hit/.test(h.err)).length, 1, hits.map((h) => h.err).join(''));
  assert.is(executions(p.counter), before + 1, 'the entry whose hot copy was gone ran again');
  assert.is(
    readFileSync(join(p.dir, 'out/a.txt'), 'utf8') + readFileSync(join(p.dir, 'out/b.txt'), 'utf8'),
    'output of aoutput of b',
  );
});

test('garbage over the index: every command copes (dry-run, ls, stats, gc, verify)', async () => {
  const p = await project();
  const cases: Array<[string[], number]> = [
    [[...runArgs('a').slice(0, -3), '--dry-run', '--', 'node', 'cmd.js'], 0],
    [['ls'], 0],
    [['stats'], 0],
    [['explain', '--inputs', 'src/a.txt', '--', 'node', 'cmd.js'], 0],
    [['gc'], 0],
    [['verify', '--repair'], 0],
    [['verify'], 74],
  ];
  for (const [args, code] of cases) {
    writeFileSync(p.data, garbage(98304, args.length));
    const r = await runCli(args, { cwd: p.dir });
    clean(r, args.join(' '));
    assert.is(r.code, code, `${args.join(' ')}: ${r.out}${r.err}`);
    assert.match(r.err, /corrupt/, args.join(' '));
  }
  // Each repair kept the entries (from hot/): a and b are still hits, without running.
  const before = executions(p.counter);
  for (const n of ['a', 'b']) assert.match((await p.run(n)).err, /hit/);
  assert.is(executions(p.counter), before);
});

test('a damaged page header: verify reports it, verify --repair rebuilds the index', async () => {
  const p = await project();
  overwrite(p.data, mainRoot(p.data), garbage(64, 7));
  const bytes = readFileSync(p.data);
  const v = await runCli(['verify'], { cwd: p.dir });
  clean(v, 'verify');
  assert.is(v.code, 74, v.out + v.err);
  assert.match(v.err, /cache index .* is corrupt: root page \d+ has a damaged header .*verify --repair/);
  assert.ok(readFileSync(p.data).equals(bytes), 'plain verify changes nothing');
  assert.is(asides(p.cacheDir).length, 0);

  const repair = await runCli(['verify', '--repair'], { cwd: p.dir });
  clean(repair, 'verify --repair');
  assert.is(repair.code, 0, repair.out + repair.err);
  assert.match(repair.err, /rebuilt 2 entries from hot\//);
  assert.match(repair.out, /checked 2 entries/);
  assert.is(asides(p.cacheDir).length, 1);
  assert.is((await runCli(['verify'], { cwd: p.dir })).code, 0);
});

test('damage that only lmdb notices (a page of the wrong type) is rebuilt too, exit code kept', async () => {
  const p = await project();
  // The main root turned from a leaf into an overflow page: the header check passes, lmdb fails.
  const flags = Buffer.alloc(2);
  flags.writeUInt16LE(0x04);
  overwrite(p.data, mainRoot(p.data) + 18, flags);
  rmSync(join(p.cacheDir, 'hot'), { recursive: true });
  // Without hot/ the run opens the index while its command runs (and there is nothing to rebuild).
  const r = await p.run('a', { EXIT: '5' });
  clean(r, 'run');
  assert.is(r.code, 5);
  assert.match(r.out, /ran a/);
  const w = warnings(r.err);
  assert.is(w.length, 1, r.err);
  assert.match(w[0]!, /the cache index was corrupt \(.*MDB_CORRUPTED.*\): moved to .*; rebuilt 0 entries/);
  assert.is((await runCli(['verify'], { cwd: p.dir })).code, 0);
});

/** The root page of one of the store's databases, read from the main database's record of it. */
function dbRoot(data: string, name: string): number {
  const b = readFileSync(data);
  const pageSize = b.readUInt32LE(48);
  const root = mainRoot(data);
  const page = b.subarray(root, root + pageSize);
  const at = page.indexOf(Buffer.from(`${name}\0`));
  assert.ok(at > 0, `no record of ${name} in the main root page`);
  return Number(page.readBigUInt64LE(at + name.length + 1 + 40)) * pageSize;
}

test('damage inside a database that opening does not read: commands say so; verify --repair rebuilds', async () => {
  const p = await project();
  const flags = Buffer.alloc(2);
  flags.writeUInt16LE(0x04);
  overwrite(p.data, dbRoot(p.data, 'entries') + 18, flags);
  for (const args of [['ls'], ['verify']]) {
    const r = await runCli(args, { cwd: p.dir });
    clean(r, args.join(' '));
    assert.is(r.code, 74, r.out + r.err);
    assert.match(r.err, /the cache index.* is corrupt: .*MDB_CORRUPTED.*verify --repair/);
  }
  const repair = await runCli(['verify', '--repair'], { cwd: p.dir });
  clean(repair, 'verify --repair');
  assert.is(repair.code, 0, repair.out + repair.err);
  assert.match(repair.err, /rebuilt 2 entries from hot\//);
  assert.match(repair.out, /checked 2 entries/);
  const ls = await runCli(['ls'], { cwd: p.dir });
  assert.is(ls.code, 0, ls.err);
  assert.is(ls.out.trim().split('\n').length, 3, ls.out); // header + 2 entries
});

test('a damaged record (a value that no longer decodes): one line each, the run keeps its exit code', async () => {
  const p = await project();
  // 16 bytes of 0xC1 (a byte MessagePack never uses) into the records of the entries database.
  const entries = dbRoot(p.data, 'entries');
  overwrite(p.data, entries + readFileSync(p.data).readUInt32LE(48) - 40, Buffer.alloc(16, 0xc1));
  for (const args of [['ls'], ['gc'], ['verify']]) {
    const r = await runCli(args, { cwd: p.dir });
    clean(r, args.join(' '));
    assert.is(r.code, 74, r.out + r.err);
    assert.is(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err, /the cache index.* is corrupt: .*verify --repair/);
    assert.not.match(r.err, /\{/, 'the half-decoded record is not dumped');
  }
  // A dry run reads the key's entry from the index (a and b share the damaged page): it says so,
  // and runs nothing.
  const ran = executions(p.counter);
  const dry = await runCli([...runArgs('a').slice(0, -3), '--dry-run', '--', 'node', 'cmd.js'], {
    cwd: p.dir,
    env: { COUNTER: p.counter },
  });
  clean(dry, 'dry-run');
  assert.is(dry.code, 74, dry.out + dry.err);
  assert.is(dry.err.trim().split('\n').length, 1, dry.err);
  assert.match(dry.err, /corrupt: .*verify --repair/);
  assert.is(executions(p.counter), ran, 'a dry run never runs the command');
  rmSync(join(p.dir, 'out'), { recursive: true });
  const repair = await runCli(['verify', '--repair'], { cwd: p.dir });
  clean(repair, 'verify --repair');
  assert.is(repair.code, 0, repair.out + repair.err);
  assert.match(repair.err, /rebuilt 2 entries from hot\//);
  const before = executions(p.counter);
  for (const n of ['a', 'b']) assert.match((await p.run(n)).err, /hit/);
  assert.is(executions(p.counter), before);
});

test('several processes find the index corrupt at once: one moves it aside, all keep their exit codes', async () => {
  const p = await project();
  writeFileSync(p.data, garbage(98304, 3));
  // Four different keys, so that no per-key lock serialises them.
  for (const i of [1, 2, 3, 4]) writeFileSync(join(p.dir, `src/x${i}.txt`), String(i));
  const rs = await Promise.all([1, 2, 3, 4].map((i) => p.run(`x${i}`, { EXIT: String(10 + i) })));
  rs.forEach((r, i) => {
    clean(r, `run ${i}`);
    assert.is(r.code, 11 + i, r.err);
    assert.ok(warnings(r.err).length <= 1, r.err);
  });
  assert.is(asides(p.cacheDir).length, 1, asides(p.cacheDir).join(' '));
  assert.ok(existsSync(p.data));
  assert.is((await runCli(['verify'], { cwd: p.dir })).code, 0);
});

/**
 * An OS crash under lmdb-js's overlapping sync: the newest transaction's pages never reached the
 * disk (zeroed here), the flushed-meta slot (half a page into page 0) holds the snapshot before it,
 * and the boot id recorded in the meta pages is another boot's. lmdb rolls back to that snapshot.
 */
function simulateCrashAfterLastCommit(path: string): void {
  const fd = openSync(path, 'r+');
  const ps = 4096;
  const page = Buffer.alloc(ps);
  const metas = [0, 1].map((n) => {
    readSync(fd, page, 0, ps, n * ps);
    return { n, txn: page.readBigUInt64LE(152) };
  });
  const [older, newest] = metas[0]!.txn > metas[1]!.txn ? [metas[1]!, metas[0]!] : [metas[0]!, metas[1]!];
  for (let p = 2; p < fstatSync(fd).size / ps; p++) {
    readSync(fd, page, 0, ps, p * ps);
    if (page.readBigUInt64LE(8) === newest.txn) writeSync(fd, Buffer.alloc(ps), 0, ps, p * ps);
  }
  readSync(fd, page, 0, ps, older.n * ps);
  writeSync(fd, page, 24, 144, ps / 2 + 24);
  const boot = Buffer.alloc(8);
  boot.writeBigInt64LE(12345n);
  for (const m of metas) writeSync(fd, boot, 0, 8, m.n * ps + 160);
  closeSync(fd);
}

test('an index lmdb can roll back after a crash is not judged corrupt, though its newest root is gone', async () => {
  if (process.arch !== 'x64' && process.arch !== 'arm64') return;
  const { cacheDir, data, run } = await project();
  simulateCrashAfterLastCommit(data);
  const ls = await runCli(['ls', '--cache-dir', cacheDir], { cwd: tempDir() });
  assert.is(ls.code, 0, ls.err);
  assert.equal(warnings(ls.err), [], ls.err);
  assert.not.ok(
    readdirSync(cacheDir).some((f) => f.startsWith('index.corrupt')),
    'a sound index was moved aside',
  );
  const verify = await runCli(['verify', '--cache-dir', cacheDir], { cwd: tempDir() });
  assert.is(verify.code, 0, verify.out + verify.err);
  // What the rolled-back commit held is still served from hot/.
  const again = await run('b');
  assert.is(again.code, 0, again.err);
  assert.match(again.err, /\bhit\b/);
});

test.run();

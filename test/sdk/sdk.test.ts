/** The SDK, imported from the BUILT package (dist/index.js), against the same cache as the CLI. */
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hashBytes } from '../../src/fingerprint/hash.js';
import { blobPath } from '../../src/store/layout.js';
import { REPLACED_CHECK_MS } from '../../src/store/store.js';
import { REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

type Sdk = typeof import('../../src/index.js');
const sdk: Sdk = await import(pathToFileURL(join(REPO, 'dist', 'index.js')).href);
const { Client, TaskVaultError } = sdk;

function project(): string {
  const dir = tempDir('tv-sdk-');
  writeTree(dir, {
    '.git/HEAD': 'ref: refs/heads/main\n',
    'sales.csv': 'region,amount\nnorth,10\nsouth,32\nnorth,5\n',
  });
  return dir;
}

const auditLines = (dir: string): string[] =>
  readFileSync(join(dir, '.taskvault/cache/audit.log'), 'utf8').trimEnd().split('\n');

test('cacheResult / getCachedResult with bytes, strings, files and streams agree on keys', async () => {
  const dir = project();
  const tv = new Client({ cwd: dir });
  const csv = readFileSync(join(dir, 'sales.csv'));
  const key = await tv.cacheResult('aggregate', csv, '{"north":15,"south":32}');
  assert.match(key, /^[0-9a-f]{64}$/);

  for (const input of [
    csv,
    csv.toString('utf8'),
    new Uint8Array(csv),
    Client.file(join(dir, 'sales.csv')),
    Readable.from([csv.subarray(0, 7), csv.subarray(7)]),
  ]) {
    const r = await tv.getCachedResult('aggregate', input);
    assert.ok(r.hit);
    if (!r.hit) continue;
    assert.is(r.key, key);
    assert.is(r.value.toString('utf8'), '{"north":15,"south":32}');
    assert.is(r.size, 23);
  }
  const miss = await tv.getCachedResult('aggregate', 'region,amount\n');
  assert.equal(Object.keys(miss).sort(), ['hit', 'key']);
  assert.is(miss.hit, false);

  // Output as a stream, read back into a file.
  const big = randomBytes(3 * 1024 * 1024);
  await tv.cacheResult('blob', 'in', Readable.from([big.subarray(0, 1000), big.subarray(1000)]));
  const toFile = await tv.getCachedResult('blob', 'in', { toFile: join(dir, 'out/blob.bin') });
  assert.equal(toFile, {
    hit: true,
    key: toFile.key,
    size: big.length,
    encoding: 'raw',
    value: join(dir, 'out/blob.bin'),
    // The default TTL (7 days) from the entry's creation, a moment ago.
    expiresAt: toFile.hit ? toFile.expiresAt : 0,
  });
  assert.ok(toFile.hit && Math.abs(toFile.expiresAt - Date.now() - 7 * 86_400_000) < 60_000);
  assert.ok(readFileSync(join(dir, 'out/blob.bin')).equals(big));
  const missFile = await tv.getCachedResult('blob', 'other', { toFile: join(dir, 'out/none.bin') });
  assert.is(missFile.hit, false);
  assert.not.ok(existsSync(join(dir, 'out/none.bin')));
  await tv.close();
});

test('hits served back to back (one batch of bookkeeping) are each counted once: per entry, in stats and per task', async () => {
  const dir = project();
  const tv = new Client({ cwd: dir });
  await tv.cacheResult('a', 'x', 'A');
  await tv.cacheResult('b', 'y', 'B');
  for (const [task, input] of [
    ['a', 'x'],
    ['a', 'x'],
    ['b', 'y'],
    ['a', 'x'],
    ['b', 'y'],
  ] as const)
    assert.ok((await tv.getCachedResult(task, input)).hit);
  await tv.close();
  const stats = JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out) as { hits: number };
  assert.is(stats.hits, 5);
  const ls = JSON.parse((await runCli(['ls', '--json'], { cwd: dir })).out) as Array<{
    task: string;
    hits: number;
  }>;
  assert.equal(Object.fromEntries(ls.map((e) => [e.task, e.hits])), { a: 3, b: 2 });
  const metrics = await runCli(['metrics', '--stdout'], { cwd: dir });
  assert.match(metrics.out, /taskvault_hits_total\{task="a",source="local"\} 3\n/);
  assert.match(metrics.out, /taskvault_hits_total\{task="b",source="local"\} 2\n/);
});

test('a long-lived client serves a result it verified from memory: a copy each time, never bytes changed on disk since', async () => {
  const dir = project();
  const tv = new Client({ cwd: dir });
  // Over 16 KB: a blob file (smaller results live in the index), which the test changes below.
  const value = randomBytes(20_000);
  await tv.cacheResult('model', 'params', value);
  const first = await tv.getCachedResult('model', 'params');
  assert.ok(first.hit && first.value.equals(value));
  first.value.fill(0); // the caller's copy: what the client keeps is not changed by it
  // The blob changes on disk behind the client's back (the index still names it).
  const blob = blobPath(join(dir, '.taskvault', 'cache', 'blobs'), hashBytes('blake3', value));
  writeFileSync(blob, randomBytes(20_000));
  const again = await tv.getCachedResult('model', 'params');
  assert.ok(again.hit && again.value.equals(value), 'the verified bytes, not the zeroed copy nor the disk');
  await tv.close();
  // Any other process reads the disk, verifies, and finds it corrupt: a miss, never wrong bytes.
  writeFileSync(join(dir, 'params.txt'), 'params'); // the same input bytes: the same key
  const got = await runCli(['cache', 'get', 'model', 'params.txt', 'out.bin'], { cwd: dir });
  assert.match(got.err, /corrupt/);
  assert.is.not(got.code, 0);
  assert.not.ok(existsSync(join(dir, 'out.bin')));
});

test('a long-lived client whose cache is deleted, or whose index another process rebuilt, uses the one there now', async () => {
  const dir = project();
  const cache = join(dir, '.taskvault', 'cache');
  const tv = new Client({ cwd: dir });
  await tv.cacheResult('agg', 'in', 'out');
  assert.ok((await tv.getCachedResult('agg', 'in')).hit);
  rmSync(cache, { recursive: true, force: true });
  await new Promise((r) => setTimeout(r, REPLACED_CHECK_MS + 20)); // how soon it is noticed
  assert.not.ok((await tv.getCachedResult('agg', 'in')).hit, 'a miss: the cache is gone');
  await tv.cacheResult('agg', 'in', 'again');
  // Another process moves the index aside and builds a new one (as a repair of a corrupt index does).
  renameSync(join(cache, 'index'), join(cache, 'index.aside'));
  const other = new Client({ cwd: dir });
  await other.cacheResult('agg', 'in', 'rebuilt');
  await other.close();
  await new Promise((r) => setTimeout(r, REPLACED_CHECK_MS + 20));
  const now = await tv.getCachedResult('agg', 'in');
  assert.ok(now.hit && now.value.toString() === 'rebuilt', 'the index other processes see');
  await tv.close();
  writeFileSync(join(dir, 'in.txt'), 'in');
  assert.is((await runCli(['cache', 'get', 'agg', 'in.txt', 'got.txt'], { cwd: dir })).code, 0);
  assert.is(readFileSync(join(dir, 'got.txt'), 'utf8'), 'rebuilt');
});

test('a long-lived client closes the indexes it no longer uses', async () => {
  const dir = project();
  const cache = join(dir, '.taskvault', 'cache');
  // Descriptors of the cache's files, this process's own (the Client runs in it). Not lock.mdb's:
  // one per index opened stays open for good (store/index/env.ts keptLocks).
  const indexFds = () =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        const target = readlinkSync(`/proc/self/fd/${fd}`);
        return target.startsWith(cache) && !target.includes('lock.mdb');
      } catch {
        return false; // closed while listed
      }
    }).length;
  const tv = new Client({ cwd: dir });
  await tv.cacheResult('agg', 'in', 'out');
  await tv.getStats();
  await new Promise((r) => setTimeout(r, 200)); // its audit lines written: audit.log is open too
  const one = indexFds();
  // A memoized call under way when its index goes keeps it until the call has saved.
  let release = () => {};
  const slow = tv.memoize('slow', () => new Promise<string>((r) => (release = () => r('slow'))));
  const pending = slow();
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 5; i++) {
    rmSync(cache, { recursive: true, force: true });
    await new Promise((r) => setTimeout(r, REPLACED_CHECK_MS + 20));
    await tv.cacheResult('agg', 'in', `out ${i}`);
  }
  release();
  assert.is(await pending, 'slow');
  await tv.getStats(); // a close of a retired index under way is over before the next call's end
  await new Promise((r) => setTimeout(r, 200));
  assert.is(indexFds(), one, 'the index files of five removed caches are closed');
  assert.ok((await tv.getCachedResult('agg', 'in')).hit);
  await tv.close();
});

test('calls that find the index replaced together all move to the new one, and none after close()', async () => {
  const dir = project();
  const cache = join(dir, '.taskvault', 'cache');
  const tv = new Client({ cwd: dir, onWarning: () => {} });
  await tv.cacheResult('agg', 'in', 'out');
  rmSync(cache, { recursive: true, force: true });
  await new Promise((r) => setTimeout(r, REPLACED_CHECK_MS + 20));
  // Inputs that take a while to read: the first call's retirement of the old index closes it
  // meanwhile, which the others must not be using.
  const slowly = (text: string) =>
    Readable.from(
      (async function* () {
        yield Buffer.from(text.slice(0, 1));
        await new Promise((r) => setTimeout(r, 200));
        yield Buffer.from(text.slice(1));
      })(),
    );
  const [first, got, key] = await Promise.all([
    tv.getCachedResult('agg', 'other'),
    tv.getCachedResult('agg', slowly('in')),
    tv.cacheResult('agg', slowly('new in'), 'new out'),
  ]);
  assert.not.ok(first.hit);
  assert.not.ok(got.hit, 'the removed cache is not read');
  await tv.close();
  const fresh = new Client({ cwd: dir });
  const saved = await fresh.getCachedResult('agg', 'new in');
  assert.ok(saved.hit && saved.key === key, 'the save went to the index on disk');
  await fresh.close();

  // close() while a call is about to open the index again: nothing is left open.
  for (let ticks = 0; ticks < 8; ticks++) {
    const d = project();
    const c = join(d, '.taskvault', 'cache');
    const client = new Client({ cwd: d, onWarning: () => {} });
    await client.cacheResult('agg', 'in', 'out');
    rmSync(c, { recursive: true, force: true });
    await new Promise((r) => setTimeout(r, REPLACED_CHECK_MS + 20));
    const call = client.getCachedResult('agg', 'in').catch((e: Error) => e);
    for (let i = 0; i < ticks; i++) await Promise.resolve();
    await client.close();
    await call;
    await new Promise((r) => setTimeout(r, 100));
    const left = readdirSync('/proc/self/fd').filter((fd) => {
      try {
        const target = readlinkSync(`/proc/self/fd/${fd}`);
        return target.startsWith(c) && !target.includes('lock.mdb');
      } catch {
        return false;
      }
    });
    assert.is(left.length, 0, `files of the cache left open (close after ${ticks} ticks)`);
  }
});

test('close() lets the calls made before it finish, a memoized one included', async () => {
  const dir = project();
  const tv = new Client({ cwd: dir });
  await tv.cacheResult('agg', 'in', 'out');
  let release = () => {};
  const slow = tv.memoize('slow', () => new Promise<string>((r) => (release = () => r('done'))));
  const pending = slow();
  await new Promise((r) => setTimeout(r, 50));
  const lookup = tv.getCachedResult('agg', 'in'); // made just before close(), in the same tick
  let closed = false;
  const closing = tv.close().then(() => {
    closed = true;
  });
  assert.ok((await lookup).hit);
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(closed, 'close() waits for the memoized call');
  let refused: unknown;
  await tv.getCachedResult('agg', 'in').catch((e) => {
    refused = e;
  });
  assert.match(String(refused), /this Client is closed/, 'a call made after close() throws');
  release();
  assert.is(await pending, 'done');
  await closing;
  assert.ok(closed);
  const again = new Client({ cwd: dir });
  const f = again.memoize('slow', async () => 'ran again');
  assert.is(await f(), 'done', 'the memoized result was saved before the close');
  await again.close();
});

test('CLI and SDK see each other’s entries', async () => {
  const dir = project();
  writeFileSync(join(dir, 'model.bin'), randomBytes(4096));
  assert.is((await runCli(['cache', 'save', 'train_model', 'sales.csv', 'model.bin'], { cwd: dir })).code, 0);

  const tv = new Client({ cwd: dir });
  const fromCli = await tv.getCachedResult('train_model', Client.file(join(dir, 'sales.csv')));
  assert.ok(fromCli.hit && fromCli.value.equals(readFileSync(join(dir, 'model.bin'))));

  await tv.cacheResult('report', readFileSync(join(dir, 'sales.csv')), 'north 15\nsouth 32\n');
  await tv.close();
  const got = await runCli(['cache', 'get', 'report', 'sales.csv', 'report.txt'], { cwd: dir });
  assert.is(got.code, 0, got.err);
  assert.is(got.out, '✓ Cache hit for report (size: 18 bytes)\n');
  assert.is(readFileSync(join(dir, 'report.txt'), 'utf8'), 'north 15\nsouth 32\n');

  // The SDK's run() and the CLI's run share entries too.
  const tv2 = new Client({ cwd: dir });
  const spec = {
    command: ['sh', '-c', 'sort sales.csv > sorted.csv; echo sorted'],
    inputs: ['sales.csv'],
    outputs: ['sorted.csv'],
  };
  const first = await tv2.run(spec);
  assert.is(first.kind, 'miss');
  assert.ok(existsSync(join(dir, 'sorted.csv')));
  const cli = await runCli(
    ['run', '--inputs', 'sales.csv', '--outputs', 'sorted.csv', '--', ...spec.command],
    {
      cwd: dir,
    },
  );
  assert.is(cli.code, 0);
  assert.is(cli.out, 'sorted\n');
  assert.match(cli.err, /taskvault: hit /);
  const again = await tv2.run(spec);
  assert.is(again.kind, 'hit');
  if (again.kind === 'hit') assert.is(again.exitCode, 0);

  const stats = await tv2.getStats();
  const cliStats = JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out);
  assert.equal(stats, cliStats);
  assert.is(stats.entries, 3);
  assert.is(stats.hits, 4);
  assert.is(stats.misses, 1);
  await tv2.close();

  const lines = auditLines(dir);
  assert.ok(
    lines.some((l) => / HIT get task=train_model hash=[0-9a-f]{12} via=sdk bytes=4096$/.test(l)),
    lines.join('\n'),
  );
  assert.ok(lines.some((l) => / SAVE save task=report hash=[0-9a-f]{12} via=sdk bytes=18$/.test(l)));
  assert.ok(lines.some((l) => / HIT get task=report hash=[0-9a-f]{12} bytes=18$/.test(l)));
});

test('memoize: JSON and byte results, keyed on arguments (bytes by content), one call in flight', async () => {
  const dir = project();
  const tv = new Client({ cwd: dir });
  let calls = 0;
  const train = tv.memoize('train', async (hp: { lr: number; epochs: number }, data: Uint8Array) => {
    calls++;
    await new Promise((r) => setTimeout(r, 20));
    return { lr: hp.lr, loss: data.length / hp.epochs };
  });
  const data = new Uint8Array([1, 2, 3, 4]);
  const [a, b] = await Promise.all([
    train({ lr: 0.1, epochs: 2 }, data),
    train({ epochs: 2, lr: 0.1 }, data),
  ]);
  assert.equal(a, { lr: 0.1, loss: 2 });
  assert.equal(b, a);
  assert.is(calls, 1, 'concurrent identical calls share one execution; key order does not matter');
  assert.equal(await train({ lr: 0.1, epochs: 2 }, new Uint8Array([1, 2, 3, 4])), a);
  assert.is(calls, 1, 'same bytes in a new array: a hit');
  await train({ lr: 0.1, epochs: 2 }, new Uint8Array([1, 2, 3, 5]));
  await train({ lr: 0.2, epochs: 2 }, data);
  assert.is(calls, 3);

  const weights = tv.memoize('weights', async (n: number) => {
    calls++;
    return new Uint8Array(n).fill(7);
  });
  assert.equal([...(await weights(5))], [7, 7, 7, 7, 7]);
  const cached = await weights(5);
  assert.ok(cached instanceof Uint8Array);
  assert.equal([...cached], [7, 7, 7, 7, 7]);
  assert.is(calls, 4);
  await tv.close();

  // A new client (a new process would be the same) finds the memoized results.
  const tv2 = new Client({ cwd: dir });
  let calls2 = 0;
  const train2 = tv2.memoize('train', async (hp: { lr: number; epochs: number }, d: Uint8Array) => {
    calls2++;
    return { lr: hp.lr, loss: -d.length };
  });
  assert.equal(await train2({ lr: 0.2, epochs: 2 }, data), { lr: 0.2, loss: 2 });
  assert.is(calls2, 0);
  await tv2.close();
  assert.ok(
    auditLines(dir).some((l) => / HIT memoize task=train hash=[0-9a-f]{12} via=sdk bytes=\d+$/.test(l)),
  );
});

test('memoize refuses an argument shaped like a byte array key instead of taking its result', async () => {
  const tv = new sdk.Client({ cwd: project() });
  let calls = 0;
  const f = tv.memoize('f', async (_arg: unknown) => {
    calls++;
    return { n: calls };
  });
  const bytes = Buffer.from('x');
  assert.equal(await f(bytes), { n: 1 });
  let refused: unknown;
  try {
    await f({ $bytes: hashBytes('blake3', bytes) });
  } catch (e) {
    refused = e;
  }
  assert.ok(refused instanceof TypeError, String(refused));
  assert.match((refused as Error).message, /one key "\$bytes"/);
  assert.equal(await f({ $bytes: 'x', other: 1 }), { n: 2 }, 'other objects are keyed as they are');
  assert.is(calls, 2);
  await tv.close();
});

test('memoize does not store a result an object named like a stored tuple would change', async () => {
  const warnings: string[] = [];
  const tv = new Client({ cwd: project(), onWarning: (m) => warnings.push(m) });
  let calls = 0;
  // {"$tuple": [...]} is how the Python SDK stores a tuple: read back, it would be an array.
  const marked = tv.memoize('marked', async () => ({ out: { $tuple: [++calls] } }));
  assert.equal(await marked(), { out: { $tuple: [1] } });
  assert.equal(await marked(), { out: { $tuple: [2] } });
  assert.equal(warnings, [
    'memoize marked: not cached: an object whose only key is $tuple would come back an array',
    'memoize marked: not cached: an object whose only key is $tuple would come back an array',
  ]);
  // The word elsewhere (a value, a key beside others) is stored and read back as it was.
  const plain = tv.memoize('plain', async () => ({ a: '$tuple', b: { $tuple: [1], c: 2 }, calls: ++calls }));
  assert.equal(await plain(), { a: '$tuple', b: { $tuple: [1], c: 2 }, calls: 3 });
  assert.equal(await plain(), { a: '$tuple', b: { $tuple: [1], c: 2 }, calls: 3 });
  assert.is(warnings.length, 2);
  await tv.close();
});

test('memoize with a broken cache still calls the function, with a warning', async () => {
  const dir = project();
  writeFileSync(join(dir, 'not-a-dir'), 'x');
  const warnings: string[] = [];
  const tv = new Client({
    cwd: dir,
    cacheDir: join(dir, 'not-a-dir', 'cache'),
    onWarning: (m) => warnings.push(m),
  });
  let calls = 0;
  const f = tv.memoize('f', async (x: number) => ++calls + x);
  assert.is(await f(1), 2);
  assert.is(await f(1), 3);
  assert.is(warnings.length, 1);
  assert.match(warnings[0]!, /cache skipped: cannot open the cache at .*not-a-dir/);
  const miss = await tv.getCachedResult('f', 'x');
  assert.is(miss.hit, false);
  await tv.close();
});

test('new Client(configPath) uses that config; errors are TaskVaultError values; close() ends the client', async () => {
  const dir = project();
  writeTree(dir, {
    'conf/taskvault.config.json': JSON.stringify({ cacheDir: '../shared-cache', hashAlgorithm: 'sha256' }),
  });
  const tv = new Client(join(dir, 'conf/taskvault.config.json'));
  const key = await tv.cacheResult('t', 'input', 'output');
  assert.ok(existsSync(join(dir, 'shared-cache/index')));
  const s = await tv.settings();
  assert.is(s.hashAlgorithm, 'sha256');
  // The CLI with the same config file reads the same entry.
  writeFileSync(join(dir, 'in.txt'), 'input');
  const got = await runCli(
    ['cache', 'get', 't', 'in.txt', 'o.txt', '--config', 'conf/taskvault.config.json'],
    {
      cwd: dir,
    },
  );
  assert.is(got.code, 0, got.err);
  assert.is(readFileSync(join(dir, 'o.txt'), 'utf8'), 'output');

  let error: unknown;
  try {
    await tv.cacheResult('t', Client.file(join(dir, 'missing.csv')), 'x');
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof TaskVaultError);
  assert.is((error as InstanceType<typeof TaskVaultError>).reason, 'input');
  assert.match((error as Error).message, /cannot read input file .*missing\.csv/);

  await tv.close();
  let closed: unknown;
  try {
    await tv.getCachedResult('t', 'input');
  } catch (e) {
    closed = e;
  }
  assert.ok(closed instanceof TaskVaultError);
  assert.match((closed as Error).message, /closed/);
  assert.match(key, /^[0-9a-f]{64}$/);

  const badConfig = new Client(join(dir, 'nope/taskvault.config.json'));
  let configError: unknown;
  try {
    await badConfig.getStats();
  } catch (e) {
    configError = e;
  }
  assert.ok(configError instanceof TaskVaultError);
  await badConfig.close();
});

test('SDK explain() reports the same differences as the CLI', async () => {
  const dir = project();
  const tv = new Client({ cwd: dir });
  const spec = {
    task: 'sum',
    command: ['sh', '-c', 'wc -l sales.csv > n.txt'],
    inputs: ['*.csv'],
    outputs: ['n.txt'],
  };
  assert.is((await tv.run(spec)).kind, 'miss');
  writeFileSync(join(dir, 'extra.csv'), 'x\n');
  const e = await tv.explain(spec);
  assert.is(e.status, 'miss');
  assert.equal(e.previous?.changes, [{ kind: 'input-added', path: 'extra.csv' }]);
  let bad: unknown;
  try {
    await tv.run({ command: ['true'], inputs: [''] });
  } catch (err) {
    bad = err;
  }
  assert.ok(bad instanceof TaskVaultError, String(bad));
  assert.is((bad as InstanceType<typeof TaskVaultError>).reason, 'input');
  await tv.close();
});

test('the SDK works from a plain ESM program: import { Client } from "taskvault"', async () => {
  const dir = project();
  writeTree(dir, {
    'node_modules/.keep': '',
    'main.mjs': [
      "import { Client } from 'taskvault';",
      'const tv = new Client();',
      "const r1 = await tv.getCachedResult('sq', '7');",
      "if (!r1.hit) await tv.cacheResult('sq', '7', String(49));",
      "const r2 = await tv.getCachedResult('sq', '7');",
      'console.log(r1.hit, r2.hit, r2.hit && r2.value.toString());',
      'await tv.close();',
      '',
    ].join('\n'),
  });
  const { symlinkSync } = await import('node:fs');
  symlinkSync(REPO, join(dir, 'node_modules', 'taskvault'));
  const r = await runProcess(process.execPath, ['main.mjs'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'false true 49\n');
  const again = await runProcess(process.execPath, ['main.mjs'], { cwd: dir });
  assert.is(again.out, 'true true 49\n');
});

test.run();

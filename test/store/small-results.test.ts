/**
 * Small results (up to 16 KB) are kept inside the index instead of as blob files
 * (src/store/index/small-blobs.ts): saved, served, verified, evicted and swept there, with the
 * same guarantees as files; larger ones and every run's outputs stay files.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client } from '../../dist/index.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';
import { overwriteSmallResults, smallResults } from '../support/small-results.js';

function project(): { dir: string; cache: string } {
  const dir = tempDir('tv-small-results-');
  writeTree(dir, { '.git/HEAD': 'ref: refs/heads/main\n', 'in.txt': 'the input\n' });
  return { dir, cache: join(dir, '.taskvault/cache') };
}

function blobFiles(cache: string): string[] {
  const root = join(cache, 'blobs');
  return readdirSync(root).flatMap((fan) => readdirSync(join(root, fan)).map((n) => fan + n));
}

async function cli(dir: string, args: string[], code = 0) {
  const r = await runCli(args, { cwd: dir });
  assert.is(r.code, code, `${args.join(' ')}: ${r.err}`);
  return r;
}

const stats = async (dir: string) => JSON.parse((await cli(dir, ['stats', '--json'])).out);

test('a small result is kept in the index: no blob file, and every way in and out agrees', async () => {
  const { dir, cache } = project();
  writeFileSync(join(dir, 'small.json'), '{"auc":0.91}\n');
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(16 * 1024 + 1, 7));
  await cli(dir, ['cache', 'save', 'eval', 'in.txt', 'small.json']);
  const tv = new Client({ cwd: dir });
  await tv.cacheResult('bytes', 'k', Buffer.from('sixteen kb or less'));
  await tv.cacheResult('exact', 'k', Buffer.alloc(16 * 1024, 1));
  await tv.cacheResult('file', 'k', { path: join(dir, 'small.json') });
  await tv.close();
  await cli(dir, ['cache', 'save', 'big', 'in.txt', 'big.bin']);

  const kept = await smallResults(cache);
  assert.is(kept.size, 3, 'small.json (saved twice), the short bytes and the 16 KB value');
  assert.equal(
    kept.get([...kept.keys()].find((h) => kept.get(h)!.length === 13)!)!.toString(),
    '{"auc":0.91}\n',
  );
  assert.is(blobFiles(cache).length, 1, 'only the result over 16 KB is a file');

  await cli(dir, ['cache', 'get', 'eval', 'in.txt', 'got.json']);
  assert.is(readFileSync(join(dir, 'got.json'), 'utf8'), '{"auc":0.91}\n');
  await cli(dir, ['cache', 'get', 'big', 'in.txt', 'got.bin']);
  assert.ok(readFileSync(join(dir, 'got.bin')).equals(Buffer.alloc(16 * 1024 + 1, 7)));
  const again = new Client({ cwd: dir });
  const exact = await again.getCachedResult('exact', 'k');
  assert.ok(exact.hit && exact.value.equals(Buffer.alloc(16 * 1024, 1)));
  const file = await again.getCachedResult('file', 'k');
  assert.ok(file.hit && file.value.toString() === '{"auc":0.91}\n');
  await again.close();

  const s = await stats(dir);
  assert.is(s.entries, 5);
  assert.is(s.totalBytes, 13 + 18 + 16 * 1024 + 16 * 1024 + 1, 'each distinct blob counted once');
  const verified = JSON.parse((await cli(dir, ['verify', '--json'])).out);
  assert.equal([verified.entries, verified.broken], [5, []]);
});

test('damaged bytes in the index: verify finds them, --repair removes the entry and its bytes', async () => {
  const { dir, cache } = project();
  writeFileSync(join(dir, 'out.txt'), 'accuracy 0.93\n');
  await cli(dir, ['cache', 'save', 't', 'in.txt', 'out.txt']);
  assert.is(await overwriteSmallResults(cache, Buffer.from('accuracy 0.99\n')), 1);
  const found = await runCli(['verify', '--json'], { cwd: dir });
  assert.is(found.code, 1, found.err);
  assert.match(JSON.parse(found.out).broken[0].problem, /does not match its name/);
  await runCli(['verify', '--repair'], { cwd: dir });
  assert.is((await stats(dir)).entries, 0);
  assert.is((await smallResults(cache)).size, 0);
  await cli(dir, ['cache', 'get', 't', 'in.txt', 'got.txt'], 1);
});

test('eviction and removal take the bytes out of the index; a blob shared with a run stays a file', async () => {
  const { dir, cache } = project();
  writeTree(dir, {
    'seed.txt': 'seed\n',
    'taskvault.config.json': JSON.stringify({
      tasks: {
        build: {
          command: 'mkdir -p out && printf shared > out/f',
          inputs: ['seed.txt'],
          outputs: ['out/**'],
        },
      },
    }),
  });
  const build = ['run', 'build'];
  await cli(dir, build);
  writeFileSync(join(dir, 'same.txt'), 'shared');
  await cli(dir, ['cache', 'save', 'same', 'in.txt', 'same.txt']);
  writeFileSync(join(dir, 'other.txt'), 'other');
  await cli(dir, ['cache', 'save', 'other', 'in.txt', 'other.txt']);
  assert.is((await smallResults(cache)).size, 2);
  assert.is(blobFiles(cache).length, 1, "the run's output is a file, whatever a result holds");

  // References count per blob, wherever its bytes are: the run still names these bytes, so both
  // copies stay until the last entry naming them goes.
  await cli(dir, ['clean', '--task', 'same', '--yes']);
  assert.is((await smallResults(cache)).size, 2);
  rmSync(join(dir, 'out'), { recursive: true });
  const hit = await cli(dir, build);
  assert.match(hit.err, /\bhit\b/);
  assert.is(readFileSync(join(dir, 'out/f'), 'utf8'), 'shared');

  // A TTL of one second: expired at the next gc, and its bytes go from the index.
  const config = JSON.parse(readFileSync(join(dir, 'taskvault.config.json'), 'utf8'));
  writeFileSync(
    join(dir, 'taskvault.config.json'),
    JSON.stringify({ ...config, policies: { other: { ttlSeconds: 1 } } }),
  );
  await new Promise((r) => setTimeout(r, 1100));
  await cli(dir, ['gc']);
  assert.equal([...(await smallResults(cache)).values()].map(String), ['shared']);
  const s = await stats(dir);
  assert.is(s.entries, 1);
  assert.is(s.totalBytes, 'shared'.length, 'the run: its output (its empty log is no blob)');

  await cli(dir, ['clean', '--yes']);
  assert.equal([(await smallResults(cache)).size, blobFiles(cache).length], [0, 0], 'nothing left anywhere');
});

test('a file copy left when a result outlives the run that shared its bytes is swept by gc', async () => {
  const { dir, cache } = project();
  writeTree(dir, {
    'seed.txt': 'seed\n',
    'same.txt': 'same',
    'taskvault.config.json': JSON.stringify({
      tasks: {
        build: { command: 'mkdir -p out && printf same > out/f', inputs: ['seed.txt'], outputs: ['out/**'] },
      },
    }),
  });
  await cli(dir, ['run', 'build']);
  await cli(dir, ['cache', 'save', 'same', 'in.txt', 'same.txt']);
  await cli(dir, ['clean', '--task', 'build', '--yes']);
  await cli(dir, ['clean', '--task', 'same', '--yes']);
  assert.equal([(await smallResults(cache)).size, (await stats(dir)).totalBytes], [0, 0]);
  assert.is(blobFiles(cache).length, 1, "the run's copy, referenced by nothing now");
  const gc = JSON.parse((await cli(dir, ['gc', '--grace', '0s', '--json'])).out);
  assert.is(gc.orphanBlobs.files, 1);
  assert.equal(blobFiles(cache), []);
});

test('damaged bytes in the index cost only their own copy: a run sharing them keeps its file, a new save repairs them', async () => {
  const { dir, cache } = project();
  writeTree(dir, {
    'seed.txt': 'seed\n',
    'same.txt': 'same bytes',
    'other-input.txt': 'another input\n',
    'taskvault.config.json': JSON.stringify({
      tasks: {
        build: {
          command: 'mkdir -p out && printf "same bytes" > out/f',
          inputs: ['seed.txt'],
          outputs: ['out/**'],
        },
      },
    }),
  });
  await cli(dir, ['run', 'build']);
  await cli(dir, ['cache', 'save', 'a', 'in.txt', 'same.txt']);
  await overwriteSmallResults(cache, Buffer.from('damaged!!!'));
  const got = await runCli(['cache', 'get', 'a', 'in.txt', 'got.txt'], { cwd: dir });
  assert.match(got.err, /corrupt/);
  // The run's file copy of the same bytes is sound, and stays.
  rmSync(join(dir, 'out'), { recursive: true });
  assert.match((await cli(dir, ['run', 'build'])).err, /\bhit\b/);
  assert.is(readFileSync(join(dir, 'out/f'), 'utf8'), 'same bytes');

  // Two results with the same bytes: damaged under one, a new save of the other rewrites them.
  await cli(dir, ['cache', 'save', 'a', 'in.txt', 'same.txt']);
  await overwriteSmallResults(cache, Buffer.from('damaged!!!'));
  await cli(dir, ['cache', 'save', 'b', 'other-input.txt', 'same.txt']);
  await cli(dir, ['cache', 'get', 'a', 'in.txt', 'got.txt']);
  assert.is(readFileSync(join(dir, 'got.txt'), 'utf8'), 'same bytes');
});

test('gc sweeps bytes in the index that no entry references', async () => {
  const { dir, cache } = project();
  writeFileSync(join(dir, 'out.txt'), 'kept\n');
  await cli(dir, ['cache', 'save', 't', 'in.txt', 'out.txt']);
  const env = open({ path: join(cache, 'index'), maxDbs: 24, compression: false });
  await env
    .openDB<Buffer, string>({ name: 'smallBlobs', encoding: 'binary' })
    .put('ab'.repeat(32), Buffer.from('x'));
  await env.close();
  assert.is((await smallResults(cache)).size, 2);
  const gc = JSON.parse((await cli(dir, ['gc', '--json'])).out);
  assert.ok(gc.refsRepaired >= 1, JSON.stringify(gc));
  assert.equal([...(await smallResults(cache)).values()].map(String), ['kept\n']);
  await cli(dir, ['cache', 'get', 't', 'in.txt', 'got.txt']);
});

test('a cache from before small results lived in the index: its result files still hit, and it is marked', async () => {
  const { dir, cache } = project();
  writeFileSync(join(dir, 'out.txt'), 'written as a file\n');
  await cli(dir, ['cache', 'save', 't', 'in.txt', 'out.txt']);
  // Make it what an older TaskVault wrote: the bytes as a blob file, index schema 1.
  const [[hash, bytes]] = [...(await smallResults(cache))] as [[string, Buffer]];
  const env = open({ path: join(cache, 'index'), maxDbs: 24, compression: false });
  await env.openDB<Buffer, string>({ name: 'smallBlobs', encoding: 'binary' }).remove(hash);
  await env.openDB<number, string>({ name: 'meta' }).put('schema', 1);
  await env.close();
  const fan = join(cache, 'blobs', hash.slice(0, 2));
  mkdirSync(fan, { recursive: true });
  writeFileSync(join(fan, hash.slice(2)), bytes);

  await cli(dir, ['cache', 'get', 't', 'in.txt', 'got.txt']);
  assert.is(readFileSync(join(dir, 'got.txt'), 'utf8'), 'written as a file\n');
  const check = open({ path: join(cache, 'index'), maxDbs: 24, compression: false });
  assert.is(
    check.openDB<number, string>({ name: 'meta' }).get('schema'),
    2,
    'an older TaskVault now refuses it',
  );
  await check.close();
  await cli(dir, ['clean', '--yes']);
  assert.equal(blobFiles(cache), [], 'its file goes with its entry');
});

test.run();

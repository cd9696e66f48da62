/** gc and clean through the built CLI: shared blobs, orphans, stale temp files, confirmation. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { audit, blobFiles, cache, gcJson, project, run, T0, tv } from '../support/evict-helpers.js';
import { CLI, runCli, runProcess, tempDir } from '../support/helpers.js';

test('shared blobs: counted once, kept while any entry references them', async () => {
  const dir = project({ tasks: { s1: { size: 1000, letter: 'z' }, s2: { size: 1000, letter: 'z' } } });
  await run(dir, 's1', T0);
  await run(dir, 's2', T0);
  assert.is(blobFiles(dir).length, 1);
  const counted = await gcJson(dir, T0);
  assert.is(counted.usage, 1000);
  assert.is(counted.refsRepaired, 0, 'commits kept the reference counts exact');

  const c1 = await tv(dir, ['clean', '--task', 's1', '--yes'], T0);
  assert.is(c1.code, 0, c1.err);
  assert.match(c1.out, /removed 1 entry of task 's1'; reclaimed 0 B/);
  assert.is(blobFiles(dir).length, 1, 's2 still references the blob');
  rmSync(join(dir, 'out'), { recursive: true });
  assert.match((await run(dir, 's2', T0 + 1)).err, /hit/);
  assert.is(readFileSync(join(dir, 'out', 's2.bin'), 'utf8'), 'z'.repeat(1000));

  const c2 = await tv(dir, ['clean', '--task', 's2', '--yes'], T0);
  assert.match(c2.out, /removed 1 entry of task 's2'; reclaimed 1\.0 KB/);
  assert.is(blobFiles(dir).length, 0);
  const after = await gcJson(dir, T0);
  assert.is(after.usage, 0);
  assert.is(after.refsRepaired, 0);
  assert.equal(
    audit(dir, 'EVICT').map((e) => [e.task, e.reason, e.freed]),
    [
      ['s1', 'manual', '0'],
      ['s2', 'manual', '1000'],
    ],
  );
});

test('an index written before reference counts existed gets them on open: shared blobs survive', async () => {
  const dir = project({ tasks: { s1: { size: 500, letter: 'q' }, s2: { size: 500, letter: 'q' } } });
  await run(dir, 's1', T0);
  await run(dir, 's2', T0);
  // Make the index look like one from before the refs db: no counts, no usage, no flag.
  const { open } = await import('lmdb');
  const db = open({ path: join(cache(dir), 'index'), maxDbs: 16, compression: false });
  await db.openDB({ name: 'refs' }).clearAsync();
  await db.openDB({ name: 'meta' }).remove('refs');
  await db.openDB({ name: 'counters' }).remove('blobBytes');
  await db.close();

  const c1 = await tv(dir, ['clean', '--task', 's1', '--yes'], T0);
  assert.is(c1.code, 0, c1.err);
  assert.is(blobFiles(dir).length, 1, 's2 still references the shared blob');
  rmSync(join(dir, 'out'), { recursive: true });
  assert.match((await run(dir, 's2', T0 + 1)).err, /hit/);
  const after = await gcJson(dir, T0 + 1);
  assert.is(after.usage, 500);
  assert.is(after.refsRepaired, 0);
});

test('`cache save` over the limit evicts least recently used results too', async () => {
  const dir = tempDir('tv-evict-save-');
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify({ maxSizeGb: 0.0000025 }));
  for (const n of ['1', '2', '3']) {
    writeFileSync(join(dir, `in${n}`), n);
    writeFileSync(join(dir, `out${n}`), n.repeat(1000));
    const r = await runCli(['cache', 'save', 'job', `in${n}`, `out${n}`], { cwd: dir });
    assert.is(r.code, 0, r.err);
  }
  // 3000 bytes > 2500: the two oldest go, down to the 1250-byte low-water mark.
  assert.equal(
    audit(dir, 'EVICT').map((e) => [e.task, e.reason, e.freed]),
    [
      ['job', 'lru', '1000'],
      ['job', 'lru', '1000'],
    ],
  );
  assert.is((await gcJson(dir, Date.now())).usage, 1000);
  const got = await runCli(['cache', 'get', 'job', 'in3', 'got3'], { cwd: dir });
  assert.is(got.code, 0, got.err);
  assert.is(readFileSync(join(dir, 'got3'), 'utf8'), '3'.repeat(1000));
});

function deadPid(): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', '']);
    child.on('exit', () => resolve(child.pid!));
  });
}

test('gc sweeps orphan blobs and stale temp files past the grace period, never a live writer', async () => {
  const dir = project({ tasks: { a: { size: 100 } } });
  await run(dir, 'a', T0);
  const [kept] = blobFiles(dir);
  const now = Date.now();
  const hours = (h: number) => new Date(now - h * 3600_000);
  const blobs = join(cache(dir), 'blobs');
  const tmp = join(cache(dir), 'tmp');
  const put = (path: string, content: string, age: number) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content);
    utimesSync(path, hours(age), hours(age));
  };
  const oldOrphan = join(blobs, 'ab', 'c0ffee');
  const freshOrphan = join(blobs, 'cd', 'beef00');
  put(oldOrphan, 'orphan!', 3);
  put(freshOrphan, 'fresh', 0.1);
  // Not a blob's name (NFS leaves .nfs* files where an open file was deleted): skipped, kept.
  const stray = join(blobs, 'fd', '.nfs0000000001234');
  put(stray, 'stray', 3);
  // An old referenced blob stays whatever its age.
  utimesSync(join(blobs, kept!.hash.slice(0, 2), kept!.hash.slice(2)), hours(5), hours(5));

  const dead = await deadPid();
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  try {
    const deadOld = join(tmp, `${dead}-${now - 3 * 3600_000}-aaaa1111.blob`);
    const deadFresh = join(tmp, `${dead}-${now}-bbbb2222.stdout`);
    const liveOld = join(tmp, `${live.pid}-${now - 3 * 3600_000}-cccc3333.stdout`);
    put(deadOld, 'partial', 3);
    put(deadFresh, 'partial', 0.1);
    put(liveOld, 'still writing', 3);

    const dry = await gcJson(dir, now, ['--dry-run']);
    assert.equal(dry.orphanBlobs, { files: 1, bytes: 7 });
    assert.equal(dry.staleTmp, { files: 1, bytes: 7 });
    assert.ok(existsSync(oldOrphan) && existsSync(deadOld));

    const r = await tv(dir, ['gc'], now);
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /removed 0 entries, 1 orphan blob, 1 stale temp file; reclaimed 14 B/);
    assert.not.ok(existsSync(oldOrphan));
    assert.not.ok(existsSync(deadOld));
    assert.ok(existsSync(stray), 'not ours to delete');
    assert.ok(existsSync(freshOrphan), 'a blob younger than the grace period may be about to be committed');
    assert.ok(existsSync(deadFresh));
    assert.ok(existsSync(liveOld), "a live process's temp file is never deleted");
    // A shorter grace period reaches the fresh ones.
    const short = await gcJson(dir, now, ['--grace', '1m']);
    assert.is(short.orphanBlobs.files, 1);
    assert.is(short.staleTmp.files, 1);
    assert.ok(existsSync(liveOld));
  } finally {
    live.kill('SIGKILL');
  }
  rmSync(join(dir, 'out'), { recursive: true });
  assert.match((await run(dir, 'a', T0 + 1)).err, /hit/);
  const bad = await tv(dir, ['gc', '--grace', 'a while'], now);
  assert.is(bad.code, 2);
});

test('clean: refuses without --yes on a non-TTY; with --yes removes everything (reason=manual)', async () => {
  const dir = project({ tasks: { a: { size: 100 }, b: { size: 200 } } });
  await run(dir, 'a', T0);
  await run(dir, 'b', T0);
  const refused = await tv(dir, ['clean'], T0);
  assert.is(refused.code, 2);
  assert.is(refused.err.trim().split('\n').length, 1);
  assert.match(
    refused.err,
    /clean removes cached results and needs confirmation \(stdin is not a terminal: pass --yes/,
  );
  assert.is(blobFiles(dir).length, 2);

  const r = await tv(dir, ['clean', '--yes'], T0);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /removed 2 entries; reclaimed 300 B/);
  assert.is(blobFiles(dir).length, 0);
  assert.equal(
    audit(dir, 'EVICT').map((e) => e.reason),
    ['manual', 'manual'],
  );
  assert.match((await run(dir, 'a', T0)).err, /miss/);

  const empty = await runCli(['clean', '--yes'], { cwd: tempDir() });
  assert.is(empty.code, 0);
  assert.match(empty.out, /nothing to do: no cache/);
});

test('clean on a terminal asks first and removes nothing unless the answer is yes', async () => {
  // util-linux `script` gives the CLI a real pseudo-terminal; without it this case cannot be driven.
  if (spawnSync('script', ['--version']).status !== 0) {
    assert.not.ok(process.env.CI, 'CI installs script(1) (.ci/install-system-packages)');
    console.log('  (skipped: no `script` for a pseudo-terminal)');
    return;
  }
  const dir = project({ tasks: { a: { size: 100 } } });
  await run(dir, 'a', T0);
  const inTty = (answer: string) =>
    runProcess('script', ['-qec', `node ${CLI} clean --task a`, '/dev/null'], { cwd: dir, input: answer });
  const no = await inTty('n\n');
  assert.match(no.out, /remove 1 entry \(100 B\) of task 'a'\? \[y\/N\]/);
  assert.is(no.code, 1);
  assert.is(blobFiles(dir).length, 1);
  const yes = await inTty('y\n');
  assert.is(yes.code, 0);
  assert.match(yes.out, /removed 1 entry of task 'a'; reclaimed 100 B/);
  assert.is(blobFiles(dir).length, 0);
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

test.run();

/** The single-flight lock on real files: exclusive, bounded waits, stale by dead pid or by silence. */

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { acquireLock, lockTimeoutFromEnv, tryLock } from '../../src/store/lock.js';
import { tempDir } from '../support/helpers.js';

test('exclusive: a second taker waits (announced once) and times out while the first holds it', async () => {
  const dir = tempDir('tv-lock-');
  const a = await acquireLock(dir, 'k', { timeoutMs: 1000 });
  assert.is(a.kind, 'acquired');
  let announced = 0;
  const b = await acquireLock(dir, 'k', { timeoutMs: 300, onWait: () => announced++ });
  assert.is(b.kind, 'timeout');
  assert.is(announced, 1);
  if (b.kind === 'timeout') assert.is(b.holder?.pid, process.pid);
  if (a.kind === 'acquired') a.release();
  const c = await acquireLock(dir, 'k', { timeoutMs: 300 });
  assert.is(c.kind, 'acquired');
  if (c.kind === 'acquired') {
    assert.not.ok(c.waited, 'free lock: no contention');
    c.release();
  }
  assert.not.ok(existsSync(join(dir, 'k')));
});

test("tryLock: taken when free, refused while held, and a dead holder's lock is broken", () => {
  const dir = tempDir('tv-lock-');
  const release = tryLock(dir, 'r');
  assert.ok(release, 'free: taken');
  assert.is(tryLock(dir, 'r'), undefined, 'held by a live process: refused without waiting');
  release!();
  assert.not.ok(existsSync(join(dir, 'r')));
  const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const pid = Number(dead.stdout.trim());
  writeFileSync(join(dir, 'r'), JSON.stringify({ pid, host: hostname(), startedAt: Date.now(), nonce: 'x' }));
  const again = tryLock(dir, 'r');
  assert.ok(again, "a dead process's lock is broken and taken");
  assert.is(JSON.parse(readFileSync(join(dir, 'r'), 'utf8')).pid, process.pid);
  again!();
});

test('a waiter gets the lock as soon as the holder releases it, and knows it was contended', async () => {
  const dir = tempDir('tv-lock-');
  const a = await acquireLock(dir, 'k', { timeoutMs: 1000 });
  setTimeout(() => a.kind === 'acquired' && a.release(), 200);
  const b = await acquireLock(dir, 'k', { timeoutMs: 5000 });
  assert.is(b.kind, 'acquired');
  if (b.kind === 'acquired') {
    assert.ok(b.waited);
    b.release();
  }
});

test('stale by silence: a live pid whose lock file was not refreshed for staleMs is broken', async () => {
  const dir = tempDir('tv-lock-');
  const path = join(dir, 'k');
  writeFileSync(path, JSON.stringify({ pid: process.pid, host: 'elsewhere', startedAt: 0, nonce: 'old' }));
  const past = new Date(Date.now() - 60_000);
  utimesSync(path, past, past);
  const r = await acquireLock(dir, 'k', { timeoutMs: 2000, staleMs: 30_000 });
  assert.is(r.kind, 'acquired');
  assert.match(readFileSync(path, 'utf8'), new RegExp(`"host":"${hostname()}"`));
  if (r.kind === 'acquired') r.release();
});

test('a holder on another host is not judged by pid, only by silence', async () => {
  const dir = tempDir('tv-lock-');
  writeFileSync(
    join(dir, 'k'),
    JSON.stringify({ pid: 999999, host: 'other-host', startedAt: 0, nonce: 'x' }),
  );
  const r = await acquireLock(dir, 'k', { timeoutMs: 300 });
  assert.is(r.kind, 'timeout');
});

test('the holder refreshes its lock (heartbeat), so a long run is not taken for stale', async () => {
  const dir = tempDir('tv-lock-');
  const a = await acquireLock(dir, 'k', { timeoutMs: 1000, heartbeatMs: 50 });
  const past = new Date(Date.now() - 60_000);
  utimesSync(join(dir, 'k'), past, past);
  await new Promise((r) => setTimeout(r, 200));
  const b = await acquireLock(dir, 'k', { timeoutMs: 200, staleMs: 30_000 });
  assert.is(b.kind, 'timeout', 'the heartbeat made it fresh again');
  if (a.kind === 'acquired') a.release();
});

test('release never removes a lock that someone else took over', async () => {
  const dir = tempDir('tv-lock-');
  const a = await acquireLock(dir, 'k', { timeoutMs: 1000 });
  writeFileSync(
    join(dir, 'k'),
    JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 1, nonce: 'theirs' }),
  );
  if (a.kind === 'acquired') a.release();
  assert.ok(existsSync(join(dir, 'k')));
});

test('an unusable lock directory is reported, not thrown', async () => {
  const dir = tempDir('tv-lock-');
  writeFileSync(join(dir, 'file'), '');
  const r = await acquireLock(join(dir, 'file', 'locks'), 'k', { timeoutMs: 100 });
  assert.is(r.kind, 'unavailable');
});

test('TASKVAULT_LOCK_TIMEOUT takes seconds or a duration', () => {
  assert.is(lockTimeoutFromEnv({ TASKVAULT_LOCK_TIMEOUT: '90' }), 90_000);
  assert.is(lockTimeoutFromEnv({ TASKVAULT_LOCK_TIMEOUT: '2m' }), 120_000);
  assert.is(lockTimeoutFromEnv({ TASKVAULT_LOCK_TIMEOUT: 'soon' }), undefined);
  assert.is(lockTimeoutFromEnv({}), undefined);
});

test.run();

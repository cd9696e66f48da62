/**
 * A miss writes the entry's fingerprint (what `explain` compares against) while its command runs
 * (Store.stageFingerprint), not in the commit after it. Staged fingerprints of runs that were not
 * stored must not stay behind, and must never take away the fingerprint of an entry that exists.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Fingerprint } from '../../src/fingerprint/fingerprint.js';
import { Store } from '../../src/store/store.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

const cache = (dir: string) => join(dir, '.taskvault', 'cache');
// The exit code comes from FAIL, which is not part of the key: one key, either outcome.
const CMD = ['--inputs', 'in.txt', '--', 'sh', '-c', 'cat in.txt; exit $((FAIL))'];

async function keyOf(dir: string, cmd = CMD): Promise<{ key: string; fingerprint: Fingerprint }> {
  const r = await runCli(['run', '--dry-run', '--json', ...cmd], { cwd: dir });
  assert.is(r.code, 0, r.err);
  return JSON.parse(r.out) as { key: string; fingerprint: Fingerprint };
}

async function inIndex<T>(dir: string, f: (s: Store) => T | Promise<T>): Promise<T> {
  const opened = Store.open(cache(dir));
  if (!opened.ok) throw new Error(opened.error.message);
  try {
    return await f(opened.value);
  } finally {
    await opened.value.close();
  }
}

/** The entry under `key` is in the index, with its fingerprint. */
const assertStored = (dir: string, key: string, fingerprint: Fingerprint) =>
  inIndex(dir, (s) => {
    assert.ok(s.getEntry(key));
    assert.equal(s.getFingerprint(key), fingerprint);
  });

test('a stored miss has its fingerprint; a run that is not stored leaves none', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'one' });
  const failed = await runCli(['run', ...CMD], { cwd: dir, env: { FAIL: '3' } });
  assert.is(failed.code, 3, failed.err);
  const { key, fingerprint } = await keyOf(dir);
  await inIndex(dir, (s) => {
    assert.is(s.getEntry(key), undefined);
    assert.is(s.getFingerprint(key), undefined, 'the staged fingerprint was dropped');
  });

  const ok = await runCli(['run', ...CMD], { cwd: dir });
  assert.is(ok.code, 0, ok.err);
  await assertStored(dir, key, fingerprint);
});

test("a failed --force run of a stored key keeps that entry's fingerprint", async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'two' });
  assert.is((await runCli(['run', ...CMD], { cwd: dir })).code, 0);
  const { key, fingerprint } = await keyOf(dir);
  const forced = await runCli(['run', '--force', ...CMD], { cwd: dir, env: { FAIL: '4' } });
  assert.is(forced.code, 4, forced.err);
  await assertStored(dir, key, fingerprint);
});

test('gc removes a fingerprint staged by a run killed before its commit, and keeps the others', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'three' });
  assert.is((await runCli(['run', ...CMD], { cwd: dir })).code, 0);
  const { key, fingerprint } = await keyOf(dir);
  const orphan = 'f'.repeat(64);
  await inIndex(dir, (s) => s.stageFingerprint(orphan, fingerprint));
  await inIndex(dir, (s) => assert.ok(s.getFingerprint(orphan)));
  const gc = await runCli(['gc'], { cwd: dir });
  assert.is(gc.code, 0, gc.err);
  await inIndex(dir, (s) => {
    assert.is(s.getFingerprint(orphan), undefined);
    assert.equal(s.getFingerprint(key), fingerprint);
  });
});

test("a killed run's fingerprint is dropped by the next commit an hour later; a recent one may be a live run's", async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'five' });
  assert.is((await runCli(['run', ...CMD], { cwd: dir })).code, 0);
  const { fingerprint } = await keyOf(dir);
  const [old, recent] = ['a'.repeat(64), 'b'.repeat(64)];
  await inIndex(dir, async (s) => {
    await s.stageFingerprint(old, fingerprint, Date.now() - 2 * 3600_000);
    await s.stageFingerprint(recent, fingerprint);
  });
  writeFileSync(join(dir, 'in.txt'), 'five, changed');
  const next = await runCli(['run', ...CMD], { cwd: dir });
  assert.is(next.code, 0, next.err);
  await inIndex(dir, (s) => {
    assert.is(s.getFingerprint(old), undefined, 'the killed run was over an hour ago');
    assert.ok(s.getFingerprint(recent), 'a run staged minutes ago may still commit');
  });
});

test('inputs changed while the command ran: not stored, and no fingerprint left under the old key', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'four' });
  const cmd = ['--inputs', 'in.txt', '--', 'sh', '-c', 'cat in.txt; sleep 0.05; echo changed >> in.txt'];
  const { key } = await keyOf(dir, cmd);
  const r = await runCli(['run', ...cmd], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /inputs changed while the command ran/);
  writeFileSync(join(dir, 'in.txt'), 'four');
  await inIndex(dir, (s) => assert.is(s.getFingerprint(key), undefined));
});

test('fingerprints are JSON text where older versions do not look; theirs (msgpack objects) are still read', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'five' });
  assert.is((await runCli(['run', ...CMD], { cwd: dir })).code, 0);
  const { key, fingerprint } = await keyOf(dir);
  const env = open({ path: join(cache(dir), 'index'), maxDbs: 16, compression: false });
  const text = env.openDB<string, string>({ name: 'fingerprintText' });
  const legacy = env.openDB({ name: 'fingerprints' });
  assert.is(typeof text.get(key), 'string', 'this version keeps JSON text');
  assert.is(legacy.get(key), undefined, 'where an older version would read a string it cannot use');
  // As versions before wrote it: the object itself, in lmdb's default encoding, in `fingerprints`.
  await text.remove(key);
  await legacy.put(key, fingerprint);
  await env.close();
  await assertStored(dir, key, fingerprint);
  writeFileSync(join(dir, 'in.txt'), 'FIVE');
  const r = await runCli(['explain', ...CMD], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /input changed +in\.txt/, r.out);
  // gc removes an old-style fingerprint with no entry, as it does the new ones.
  const orphan = 'f'.repeat(64);
  const again = open({ path: join(cache(dir), 'index'), maxDbs: 16, compression: false });
  await again.openDB({ name: 'fingerprints' }).put(orphan, fingerprint);
  await again.close();
  assert.is((await runCli(['gc'], { cwd: dir })).code, 0);
  await inIndex(dir, (s) => {
    assert.is(s.getFingerprint(orphan), undefined);
    assert.equal(s.getFingerprint(key), fingerprint);
  });
});

test.run();

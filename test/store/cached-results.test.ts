/** saveResult / getResult and the Store bookkeeping under them, on a real LMDB store in a temp dir. */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveSettings, type Settings } from '../../src/config/resolve.js';
import { MISS_WINDOW_MS } from '../../src/store/index/counters.js';
import { getResult, saveResult } from '../../src/store/results.js';
import { cacheStats } from '../../src/store/stats.js';
import { Store } from '../../src/store/store.js';
import { tempDir, writeTree } from '../support/helpers.js';

async function setup(): Promise<{ dir: string; store: Store; settings: Settings }> {
  const dir = tempDir('tv-results-');
  writeTree(dir, { '.git/HEAD': 'ref: refs/heads/main\n', '.git/refs/heads/main': `${'ab'.repeat(20)}\n` });
  const settings = await resolveSettings({ cwd: dir, env: {} });
  if (!settings.ok) throw new Error(settings.error.message);
  const store = Store.open(settings.value.cacheDir);
  if (!store.ok) throw new Error(store.error.message);
  return { dir, store: store.value, settings: settings.value };
}

test('one key whatever form the input takes; provenance and kind recorded', async () => {
  const { dir, store, settings } = await setup();
  writeTree(dir, { 'in.txt': 'hello input' });
  const saved = await saveResult(store, settings, 'greet', 'hello input', 'hello output', { source: 'save' });
  assert.ok(saved.ok);
  if (!saved.ok) return;
  for (const input of [
    new TextEncoder().encode('hello input'),
    { path: join(dir, 'in.txt') },
    Readable.from([Buffer.from('hello '), Buffer.from('input')]),
  ]) {
    const got = await getResult(store, settings, 'greet', input, { kind: 'bytes' }, { source: 'get' });
    assert.ok(got.ok && got.value.hit && got.value.data?.toString() === 'hello output');
    if (got.ok) assert.is(got.value.key, saved.value.key);
  }
  const entry = store.getEntry(saved.value.key)!;
  assert.equal(entry.result, { encoding: 'raw' });
  assert.is(entry.provenance.gitCommit, 'ab'.repeat(20));
  assert.is(entry.provenance.origin, 'local');
  assert.equal(
    entry.outputs.map((o) => o.path),
    ['result'],
  );
  await store.flush();
  assert.is(store.hitCount(saved.value.key), 3);
  await store.close();
});

test('a miss then a save records the time in between; stale misses are pruned', async () => {
  const { store, settings } = await setup();
  const t0 = 1_700_000_000_000;
  const miss = await getResult(store, settings, 'job', 'in', { kind: 'bytes' }, { source: 'get', now: t0 });
  assert.ok(miss.ok && !miss.value.hit);
  const otherMiss = await getResult(
    store,
    settings,
    'other',
    'in',
    { kind: 'bytes' },
    { source: 'get', now: t0 },
  );
  assert.ok(otherMiss.ok);
  if (!otherMiss.ok) return;
  await store.flush();
  const saved = await saveResult(store, settings, 'job', 'in', 'out', { source: 'save', now: t0 + 4200 });
  assert.ok(saved.ok);
  if (!saved.ok) return;
  assert.is(store.getEntry(saved.value.key)!.durationMs, 4200);
  await store.flush();
  // "other" missed long ago: the next miss (past the hourly prune) forgets it, and a save after
  // the window claims no duration.
  const late = t0 + MISS_WINDOW_MS + 1;
  await getResult(store, settings, 'third', 'in', { kind: 'bytes' }, { source: 'get', now: late });
  await store.flush();
  assert.is(store.takeMiss(otherMiss.value.key, late, Number.POSITIVE_INFINITY), undefined, 'pruned');
  const other = await saveResult(store, settings, 'other', 'in', 'out', { source: 'save', now: late });
  assert.ok(other.ok);
  if (other.ok) assert.is(store.getEntry(other.value.key)!.durationMs, 0);
  await store.flush();

  const hit = await getResult(
    store,
    settings,
    'job',
    'in',
    { kind: 'bytes' },
    { source: 'get', now: t0 + 5000 },
  );
  assert.ok(hit.ok && hit.value.hit);
  await store.flush();
  const stats = cacheStats(store, settings.maxSizeBytes);
  assert.is(stats.entries, 2);
  assert.is(stats.totalBytes, 3, 'both entries share one blob ("out"), counted once');
  assert.is(stats.hits, 1);
  assert.is(stats.misses, 3);
  assert.ok(stats.savedMs > 4000 && stats.savedMs <= 4200);
  await store.close();
});

test('a save right after its miss, before the miss is committed, takes it', async () => {
  const { store, settings } = await setup();
  const t0 = 1_700_000_000_000;
  const miss = await getResult(store, settings, 'job', 'in', { kind: 'bytes' }, { source: 'get', now: t0 });
  assert.ok(miss.ok && !miss.value.hit);
  if (!miss.ok) return;
  // No flush in between: an SDK lookup does not wait for its bookkeeping's commit.
  const saved = await saveResult(store, settings, 'job', 'in', 'out', { source: 'save', now: t0 + 4200 });
  assert.ok(saved.ok);
  if (!saved.ok) return;
  assert.is(store.getEntry(saved.value.key)!.durationMs, 4200);
  await store.flush();
  // Left behind, the miss would make a later save of the key claim the hours since as its duration.
  assert.is(store.takeMiss(miss.value.key, t0 + 5000, MISS_WINDOW_MS), undefined, 'the miss is forgotten');
  const again = await saveResult(store, settings, 'job', 'in', 'out 2', {
    source: 'save',
    now: t0 + 3600_000,
  });
  assert.ok(again.ok);
  if (again.ok) assert.is(store.getEntry(again.value.key)!.durationMs, 0);
  await store.close();
});

test('a run of misses queues one prune of old misses, not one per miss', async () => {
  const { store } = await setup();
  // The store's index (private): its write transactions are the prunes (a miss alone is a put).
  const env = (store as unknown as { dbs: { env: { transaction: (f: () => unknown) => unknown } } }).dbs.env;
  const transaction = env.transaction.bind(env);
  let transactions = 0;
  env.transaction = (f) => {
    transactions++;
    return transaction(f);
  };
  const t0 = 1_700_000_000_000;
  // None waits for the last one's commit, as SDK lookups do not.
  for (let i = 0; i < 200; i++) store.markMiss(`key ${i}`, t0 + i);
  assert.is(transactions, 1);
  await store.flush();
  store.markMiss('an hour on', t0 + 3600_000 + 200);
  assert.is(transactions, 2, 'and again once the hour is over');
  await store.close();
});

test('a save over the policy size limit is refused before anything is committed', async () => {
  const { store, settings } = await setup();
  settings.config = { policies: { big: { maxSizeBytes: 10 } } };
  const r = await saveResult(store, settings, 'big', 'in', 'x'.repeat(11), { source: 'save' });
  assert.not.ok(r.ok);
  if (!r.ok) assert.is(r.error.reason, 'cache');
  assert.is(cacheStats(store, 1).entries, 0);
  await store.close();
});

test.run();

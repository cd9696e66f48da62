/**
 * The hourly time series (src/store/timeseries.ts) on a real LMDB index: what the store books
 * lands in the hour it happened, per task, and always adds up to the counters `stats` reports,
 * including hits served from hot/ and folded in later from the journal.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { STORE_SCHEMA } from '../../src/store/entry.js';
import { Store } from '../../src/store/store.js';
import { ANONYMOUS_TASK, HOUR_MS, hourOf } from '../../src/store/timeseries.js';
import { tempDir } from '../support/helpers.js';

const test = suite('store time series');
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);

function entry(key: string, task: string, createdAt: number) {
  return {
    schema: STORE_SCHEMA,
    key,
    task,
    algorithm: 'blake3' as const,
    outputs: [],
    outputGlobs: [],
    cwd: '.',
    logs: { stdout: null, stderr: null, chunks: [] },
    exitCode: 0,
    durationMs: 2_500,
    createdAt,
    bytes: 0,
    ttlMs: 86_400_000,
    provenance: { host: 'h', user: 'u', version: '0', origin: 'local' as const },
  };
}

const open = (dir: string): Store => {
  const s = Store.open(dir);
  if (!s.ok) throw new Error(s.error.message);
  return s.value;
};

test('hits, misses, saves, evictions and errors land in their hour and add up to the counters', async () => {
  const dir = tempDir();
  let store = open(dir);
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  store.count('misses', 1, 'build');
  assert.ok((await store.commit(entry(a, 'build', T0), { schema: 1 } as never, 'build')).ok);
  assert.ok((await store.commit(entry(b, '', T0 + HOUR_MS), { schema: 1 } as never, 'argv:x')).ok);
  store.recordHit(a, { now: T0 + 2 * HOUR_MS, savedMs: 2_000 });
  store.recordHit(a, { now: T0 + 2 * HOUR_MS + 5, savedMs: 1_000, remote: true });
  // Two hits served from hot/ (journal), an hour apart, folded when the index is next opened.
  store.hot.recordHit({ key: a, at: T0 + 3 * HOUR_MS, savedMs: 500 });
  store.hot.recordHit({ key: b, at: T0 + 4 * HOUR_MS, savedMs: 700 });
  store.log('ERROR', 'verify', { error: 'x' });
  await store.flush();
  await store.close();
  store = open(dir);
  assert.is((await store.removeEntries([{ key: b }], { reason: 'lru' })).length, 1);
  await store.flush();

  const c = store.getCounters();
  const all = store.series.allTime();
  assert.equal(
    { hits: all.hits, remoteHits: all.remoteHits, misses: all.misses, savedMs: all.savedMs },
    { hits: c.hits, remoteHits: c.remoteHits, misses: c.misses, savedMs: c.savedMs },
  );
  assert.equal(c, { hits: 4, remoteHits: 1, misses: 1, savedMs: 4_200 });
  assert.equal(all.tasks.build, { hits: 3, remoteHits: 1, misses: 1, savedMs: 3_500, saves: 1 });
  assert.equal(all.tasks[ANONYMOUS_TASK], { hits: 1, remoteHits: 0, misses: 0, savedMs: 700, saves: 1 });
  assert.equal(all.evictReasons, { lru: 1 });
  assert.equal(all.errorKinds, { verify: 1 });
  assert.is(
    all.durations.reduce((n, x) => n + x, 0),
    2,
  );

  const hours = store.series.range(hourOf(T0), hourOf(T0) + 5);
  const at = (h: number) => hours.find((x) => x.hour === hourOf(T0) + h)?.bucket;
  assert.is(at(0)?.saves, 1);
  assert.is(at(1)?.saves, 1);
  assert.equal([at(2)?.hits, at(2)?.remoteHits, at(2)?.savedMs], [2, 1, 3_000]);
  assert.equal([at(3)?.hits, at(4)?.hits], [1, 1]);
  // Ranges never include the all-time record.
  assert.ok(hours.every((x) => x.hour >= hourOf(T0)));
  await store.close();
});

test('a new cache has an empty series', async () => {
  const dir = tempDir();
  const store = open(dir);
  const all = store.series.allTime();
  assert.is(all.hits + all.misses + all.saves, 0);
  assert.equal(store.series.range(0, hourOf(Date.now()) + 1), []);
  await store.close();
});

test.run();

/**
 * The time series' daily buckets (src/store/timeseries.ts) on a real LMDB index: booked in the
 * same transactions as the hours, each day always equals the sum of its hours (hits, misses,
 * saves, evictions, errors, usage), across a UTC day boundary and when happenings are booked out
 * of order; an index from before day buckets gets them at open; hours booked by an older TaskVault
 * (no days) are noticed, read from the hours meanwhile, and the days rebuilt at the next open.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { STORE_SCHEMA } from '../../src/store/entry.js';
import { Store } from '../../src/store/store.js';
import {
  type Bucket,
  DAY_HOURS,
  dayOf,
  hourOf,
  type Stepped,
  sumBuckets,
} from '../../src/store/timeseries.js';
import { REPO, tempDir } from '../support/helpers.js';

const test = suite('store daily rollups');
/** Midnight UTC; the fixture's happenings straddle it (and today's, at `now`, land on another day). */
const MIDNIGHT = Date.UTC(2026, 0, 5);
const MIN = 60_000;

function entry(key: string, task: string, createdAt: number, blob: { hash: string; size: number }) {
  const bytes = blob.size;
  return {
    schema: STORE_SCHEMA,
    key,
    task,
    algorithm: 'blake3' as const,
    outputs: [{ path: `out-${key[0]}`, type: 'file' as const, mode: 0o644, size: bytes, hash: blob.hash }],
    outputGlobs: ['out-*'],
    cwd: '.',
    logs: { stdout: null, stderr: null, chunks: [] },
    exitCode: 0,
    durationMs: 3_000 + bytes,
    createdAt,
    bytes,
    ttlMs: 86_400_000,
    provenance: { host: 'h', user: 'u', version: '0', origin: 'local' as const },
  };
}

const openStore = (dir: string): Store => {
  const s = Store.open(dir);
  if (!s.ok) throw new Error(s.error.message);
  return s.value;
};
const key = (c: string) => c.repeat(64);

/** A cache with hits, misses, saves, an eviction and an error on both sides of MIDNIGHT. */
async function fill(dir: string): Promise<void> {
  let store = openStore(dir);
  // Each entry its own blob of its own size, so that each save changes the cache's usage.
  const commit = async (k: string, task: string, at: number, bytes: number) => {
    const blob = await store.blobs.putBytes('blake3', Buffer.alloc(bytes, k));
    assert.ok((await store.commit(entry(k, task, at, blob), { schema: 1 } as never, task)).ok);
  };
  await commit(key('a'), 'build', MIDNIGHT - 120 * MIN, 1_000);
  await commit(key('b'), 'test', MIDNIGHT + 70 * MIN, 2_000);
  // Booked after b's but earlier in the day: the day's usage stays that of its latest hour.
  await commit(key('d'), 'test', MIDNIGHT + 10 * MIN, 4_000);
  await commit(key('c'), 'build', MIDNIGHT - 50 * MIN, 8_000);
  store.recordHit(key('a'), { now: MIDNIGHT - 10 * MIN, savedMs: 1_000 });
  store.recordHit(key('b'), { now: MIDNIGHT + 10 * MIN, savedMs: 2_000, remote: true });
  // Hits served from hot/ a minute either side of midnight, folded in one transaction at the next open.
  store.hot.recordHit({ key: key('a'), at: MIDNIGHT - MIN, savedMs: 300 });
  store.hot.recordHit({ key: key('b'), at: MIDNIGHT + MIN, savedMs: 400 });
  store.count('misses', 2, 'build');
  store.log('ERROR', 'verify', { error: 'x' });
  await store.flush();
  await store.close();
  store = openStore(dir);
  assert.is((await store.removeEntries([{ key: key('c') }], { reason: 'lru' })).length, 1);
  await store.flush();
  await store.close();
}

/** Each day's hours summed, as its day bucket must be (with the hour its usage comes from). */
function daysFromHours(hours: Stepped[]): Map<number, Bucket> {
  const grouped = new Map<number, Stepped[]>();
  for (const h of hours) grouped.set(dayOf(h.hour), [...(grouped.get(dayOf(h.hour)) ?? []), h]);
  const out = new Map<number, Bucket>();
  for (const [day, hs] of grouped) {
    const sum = sumBuckets(hs.map((h) => h.bucket));
    const withUsage = hs.filter((h) => h.bucket.usage !== undefined).at(-1);
    if (withUsage) sum.usageHour = withUsage.hour;
    out.set(day, sum);
  }
  return out;
}

const allHours = (store: Store) => store.series.range(0, 2 ** 31);
const allDays = (store: Store) => store.series.dayRange(0, 2 ** 31);

/** Every day bucket equals the sum of its hours, and the days add up to the counters. */
function assertDaysAddUp(store: Store): void {
  const expected = daysFromHours(allHours(store));
  const days = allDays(store);
  assert.equal(
    days.map((d) => dayOf(d.hour)),
    [...expected.keys()],
  );
  for (const d of days) assert.equal(d.bucket, expected.get(dayOf(d.hour)), `day ${dayOf(d.hour)}`);
  const c = store.getCounters();
  const sum = sumBuckets(days.map((d) => d.bucket));
  assert.equal(
    { hits: sum.hits, remoteHits: sum.remoteHits, misses: sum.misses, savedMs: sum.savedMs },
    { hits: c.hits, remoteHits: c.remoteHits, misses: c.misses, savedMs: c.savedMs },
  );
}

test('each day bucket is the sum of its hours, across midnight and out-of-order bookings', async () => {
  const dir = tempDir();
  await fill(dir);
  const store = openStore(dir);
  try {
    assert.ok(store.series.daysInStep());
    assertDaysAddUp(store);
    const day = dayOf(hourOf(MIDNIGHT));
    const [before, after] = [
      store.series.dayRange(day - 1, day)[0]!,
      store.series.dayRange(day, day + 1)[0]!,
    ];
    // Before midnight: a's and c's saves, a's two hits; after: b's and d's saves, b's two hits.
    assert.equal([before.bucket.saves, before.bucket.hits, before.bucket.savedMs], [2, 2, 1_300]);
    assert.equal([after.bucket.saves, after.bucket.hits, after.bucket.remoteHits], [2, 2, 1]);
    assert.equal([after.bucket.usageHour, after.bucket.usage], [hourOf(MIDNIGHT + 70 * MIN), 3_000]);
    assert.equal([before.bucket.usageHour, before.bucket.usage], [hourOf(MIDNIGHT - 50 * MIN), 15_000]);
    // Misses, the error and the eviction happened now, on another day.
    assert.is(before.bucket.misses + after.bucket.misses, 0);
    assert.is(sumBuckets(allDays(store).map((d) => d.bucket)).evictReasons.lru, 1);
  } finally {
    await store.close();
  }
});

test('a span by day: whole days from day buckets, partial edge days from hours, same sums', async () => {
  const dir = tempDir();
  await fill(dir);
  const store = openStore(dir);
  try {
    const hours = allHours(store);
    const from = hourOf(MIDNIGHT) - 1; // the first day is partial: its last hour only
    const to = hourOf(Date.now()) + 1;
    const stepped = store.series.steps(from, to, 'day');
    const expected = daysFromHours(hours.filter((h) => h.hour >= from && h.hour < to));
    assert.equal(
      stepped.map((s) => dayOf(s.hour)),
      [...expected.keys()],
    );
    for (const s of stepped) {
      const e = expected.get(dayOf(s.hour))!;
      assert.equal(
        [s.bucket.hits, s.bucket.misses, s.bucket.saves, s.bucket.savedMs, s.bucket.tasks, s.bucket.usage],
        [e.hits, e.misses, e.saves, e.savedMs, e.tasks, e.usage],
      );
    }
    // A partial first day starts at the span's first hour (a's 22:00 save is left out).
    assert.is(stepped[0]!.hour, hourOf(MIDNIGHT - 50 * MIN));
    assert.is(stepped[0]!.bucket.saves, 1);
  } finally {
    await store.close();
  }
});

/** The all-time record and the day buckets, as a TaskVault from before day buckets left them. */
async function asOlderVersionLeftIt(dir: string): Promise<void> {
  const env = openLmdb({ path: join(dir, 'index'), maxDbs: 16, compression: false });
  const series = env.openDB<Bucket, number>({ name: 'series' });
  const days = env.openDB<Bucket, number>({ name: 'seriesDays' });
  for (const k of days.getKeys()) await days.remove(k);
  const total = series.get(-1)!;
  delete total.daysMark;
  await series.put(-1, total);
  await env.close();
}

test('an index from before day buckets gets them, from its hours, when opened', async () => {
  const dir = tempDir();
  await fill(dir);
  await asOlderVersionLeftIt(dir);
  const store = openStore(dir);
  try {
    assert.ok(store.series.daysInStep());
    assert.ok(allDays(store).length >= 3);
    assertDaysAddUp(store);
  } finally {
    await store.close();
  }
});

test('hours an older TaskVault books meanwhile are read from the hours, then rebuilt at open', async () => {
  const dir = tempDir();
  await fill(dir);
  const store = openStore(dir);
  const day = dayOf(hourOf(MIDNIGHT));
  const span = [hourOf(MIDNIGHT) - 2 * DAY_HOURS, hourOf(Date.now()) + 1] as const;
  const dayHits = () =>
    store.series.steps(...span, 'day').find((s) => dayOf(s.hour) === day)?.bucket.hits ?? 0;
  try {
    assert.is(dayHits(), 2);
    // Another process, as an older TaskVault books a hit: its hour and the all-time record only.
    const older = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { open } from 'lmdb';
         const env = open({ path: ${JSON.stringify(join(dir, 'index'))}, maxDbs: 16, compression: false });
         const series = env.openDB({ name: 'series' });
         const counters = env.openDB({ name: 'counters' });
         await env.transaction(() => {
           for (const k of [-1, ${hourOf(MIDNIGHT) + 5}]) {
             const b = series.get(k) ?? { hits: 0, remoteHits: 0, misses: 0, savedMs: 0, saves: 0, evictions: 0,
               evictedBytes: 0, errors: 0, remoteDown: 0, remoteUp: 0, tasks: {}, errorKinds: {}, evictReasons: {},
               durations: new Array(11).fill(0), durationMs: 0 };
             b.hits++;
             b.savedMs += 500;
             b.tasks.build ??= { hits: 0, remoteHits: 0, misses: 0, savedMs: 0, saves: 0 };
             b.tasks.build.hits++;
             b.tasks.build.savedMs += 500;
             series.put(k, b);
           }
           counters.put('hits', counters.get('hits') + 1);
           counters.put('savedMs', counters.get('savedMs') + 500);
         });
         await env.close();`,
      ],
      { cwd: REPO, encoding: 'utf8' },
    );
    assert.is(older.status, 0, older.stderr);
    store.refresh();
    assert.not.ok(store.series.daysInStep());
    assert.is(dayHits(), 3, 'the day read from its hours');
  } finally {
    await store.close();
  }
  const reopened = openStore(dir);
  try {
    assert.ok(reopened.series.daysInStep());
    assert.is(reopened.series.dayRange(day, day + 1)[0]!.bucket.hits, 3);
    assertDaysAddUp(reopened);
  } finally {
    await reopened.close();
  }
});

test('400 days on, a day and its hours are dropped together', async () => {
  const dir = tempDir();
  await fill(dir);
  const store = openStore(dir);
  try {
    const day = dayOf(hourOf(MIDNIGHT));
    // A hit 400 days after MIDNIGHT's day, at 05:30: the days before that are past retention.
    store.recordHit(key('a'), { now: MIDNIGHT + 400 * DAY_HOURS * 3_600_000 + 330 * MIN, savedMs: 10 });
    await store.flush();
    assert.equal(store.series.dayRange(day - 1, day), []);
    assert.equal(store.series.range((day - 1) * DAY_HOURS, day * DAY_HOURS), []);
    assert.is(store.series.dayRange(day, day + 1).length, 1, 'day 400 back is kept');
    const expected = daysFromHours(allHours(store));
    for (const d of allDays(store)) assert.equal(d.bucket, expected.get(dayOf(d.hour)));
  } finally {
    await store.close();
  }
});

test('a new cache: days in step, no day buckets', async () => {
  const store = openStore(tempDir());
  try {
    assert.ok(store.series.daysInStep());
    assert.equal(allDays(store), []);
    assert.equal(store.series.steps(0, hourOf(Date.now()) + 1, 'day'), []);
  } finally {
    await store.close();
  }
});

test.run();

import type { Happening } from '../timeseries.js';
import { chart, chartAll } from './chart.js';
import type { IndexDbs } from './dbs.js';
import { background } from './writes.js';

/*
 * Cache-wide counters, per-entry hit counts and pending misses. All best-effort: a write that
 * fails (disk full) costs a count, never the run.
 */

export interface Counters {
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
}

export function readCounters(dbs: IndexDbs): Counters {
  return {
    hits: dbs.counters.get('hits') ?? 0,
    remoteHits: dbs.counters.get('remoteHits') ?? 0,
    misses: dbs.counters.get('misses') ?? 0,
    savedMs: dbs.counters.get('savedMs') ?? 0,
  };
}

/** Inside a write transaction: adds `by` to a counter. */
function bump(dbs: IndexDbs, name: keyof Counters, by: number): void {
  background(dbs.counters.put(name, (dbs.counters.get(name) ?? 0) + by));
}

/** Adds to a counter; `task` (the run's task name, '' if none) books a miss in the time series. */
export function count(dbs: IndexDbs, name: keyof Counters, by: number, task?: string): void {
  background(
    dbs.env.transaction(() => {
      bump(dbs, name, by);
      if (name === 'misses' && task !== undefined)
        for (let i = 0; i < by; i++) chart(dbs, Date.now(), { kind: 'miss', task });
    }),
  );
}

type Hit = { key: string; now: number; savedMs: number; remote?: boolean };

/** Hits waiting for their write transaction, per index, and the timer that will start it. */
const queued = new WeakMap<IndexDbs, { hits: Hit[]; timer?: NodeJS.Timeout }>();

/**
 * A served hit: the entry's last access and hit count, and the cache-wide counters, booked in one
 * write transaction. With `batchMs` (a long-lived SDK client), hits are held for up to that long
 * and booked together: a client answering hits back to back then pays one commit per batch
 * instead of one per hit. drainHits books them at once (flush, close); a crash loses at most
 * those `batchMs` of hit counts, never an entry.
 */
export function recordHit(
  dbs: IndexDbs,
  key: string,
  o: { now: number; savedMs: number; remote?: boolean },
  batchMs = 0,
): void {
  let q = queued.get(dbs);
  if (!q) {
    q = { hits: [] };
    queued.set(dbs, q);
  }
  q.hits.push({ key, ...o });
  if (batchMs <= 0) drainHits(dbs);
  else if (!q.timer) {
    q.timer = setTimeout(() => drainHits(dbs), batchMs);
    // Never what keeps a process alive: flush and close drain first.
    q.timer.unref();
  }
}

/** Books the hits recordHit holds, now. */
export function drainHits(dbs: IndexDbs): void {
  const q = queued.get(dbs);
  if (!q || q.hits.length === 0) return;
  queued.delete(dbs);
  clearTimeout(q.timer);
  background(dbs.env.transaction(() => bookHits(dbs, q.hits)));
}

/**
 * Inside a write transaction: the bookkeeping of hits (in the order served), summed before it is
 * written: one write per entry and counter, and one pass over the time series, for a batch of
 * any size (a client answering the same key back to back books it once per batch).
 */
function bookHits(dbs: IndexDbs, hits: Hit[]): void {
  const perKey = new Map<string, { now: number; n: number; task: string; gone: boolean }>();
  let remote = 0;
  let savedMs = 0;
  const charted: Array<{ at: number; happening: Happening }> = [];
  for (const h of hits) {
    let k = perKey.get(h.key);
    if (!k) {
      const summary = dbs.summaries.get(h.key);
      // Removed since it was served (by another process): its records are not written again, or
      // a later save of the same key would inherit its hit count.
      k = { now: h.now, n: 0, task: summary?.[3] ?? '', gone: summary === undefined };
      perKey.set(h.key, k);
    }
    k.n++;
    k.now = Math.max(k.now, h.now);
    if (h.remote) remote++;
    savedMs += Math.max(0, Math.round(h.savedMs));
    charted.push({
      at: h.now,
      happening: { kind: 'hit', task: k.task, savedMs: h.savedMs, remote: !!h.remote },
    });
  }
  for (const [key, k] of perKey) {
    if (k.gone) continue;
    background(dbs.access.put(key, k.now));
    background(dbs.hits.put(key, (dbs.hits.get(key) ?? 0) + k.n));
  }
  bump(dbs, 'hits', hits.length);
  if (remote > 0) bump(dbs, 'remoteHits', remote);
  bump(dbs, 'savedMs', savedMs);
  chartAll(dbs, charted);
}

/**
 * When `key` last missed, if within `windowMs` of `now`; forgets it (when `forget`). Misses never
 * followed by a save are pruned apart (markMiss): scanning them on every save made each save
 * cost a read of every miss recorded, 1.3 ms a save after 5,000 misses.
 */
export function takeMiss(
  dbs: IndexDbs,
  key: string,
  now: number,
  windowMs: number,
  forget: boolean,
): number | undefined {
  const at = uncommittedMisses.get(dbs)?.get(key) ?? dbs.pending.get(key);
  // Most saves follow no recorded miss: no write for them. (A remove goes after the put it undoes.)
  if (forget && at !== undefined) {
    uncommittedMisses.get(dbs)?.delete(key);
    background(dbs.pending.remove(key));
  }
  return at !== undefined && now - at >= 0 && now - at < windowMs ? at : undefined;
}

/**
 * Misses this process recorded whose put has not committed yet, by index: a lookup does not wait
 * for it, and a save right after the miss would neither see it nor forget it (the record, left,
 * would give a later save of the key the time since this miss as its duration).
 */
const uncommittedMisses = new WeakMap<IndexDbs, Map<string, number>>();

/** A miss older than this says nothing about how long the work took: no save takes it. */
export const MISS_WINDOW_MS = 24 * 3600_000;
/** The meta record of when misses past the window were last pruned (by any process). */
const MISSES_PRUNED = 'missesPrunedAt';
const PRUNE_EVERY_MS = 3600_000;
/**
 * When this process last queued a prune, by index: the meta record reads as before until that
 * prune commits, and every miss meanwhile (a loop of them: no miss waits for its commit) would
 * queue another scan of every miss, each one longer.
 */
const pruneQueued = new WeakMap<IndexDbs, number>();

const recent = (at: number | undefined, now: number): boolean =>
  at !== undefined && now - at < PRUNE_EVERY_MS && at <= now;

/**
 * Remembers when a lookup of `key` missed, for takeMiss. Once an hour (across processes), the
 * misses past the window that no save took are forgotten, so that they do not pile up.
 */
export function markMiss(dbs: IndexDbs, key: string, now: number): void {
  const uncommitted = uncommittedMisses.get(dbs) ?? new Map<string, number>();
  uncommittedMisses.set(dbs, uncommitted);
  uncommitted.set(key, now);
  const put = dbs.pending.put(key, now);
  background(put);
  const settled = () => {
    if (uncommitted.get(key) === now) uncommitted.delete(key);
  };
  put.then(settled, settled);
  if (recent(pruneQueued.get(dbs), now) || recent(dbs.meta.get(MISSES_PRUNED), now)) return;
  pruneQueued.set(dbs, now);
  background(
    dbs.env.transaction(() => {
      background(dbs.meta.put(MISSES_PRUNED, now));
      for (const { key: k, value } of dbs.pending.getRange())
        if (now - value >= MISS_WINDOW_MS || value > now + PRUNE_EVERY_MS) background(dbs.pending.remove(k));
    }),
  );
}

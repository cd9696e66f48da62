import type { Database } from 'lmdb';

/*
 * Hourly buckets of what the index's counters count (hits, misses, time saved), plus what they do
 * not keep over time (saves, evictions, errors, cache usage, run durations), so that the dashboard
 * and `taskvault metrics` read a month of history as ~720 small records instead of the audit log.
 * Every bucket is written in the same write transaction as the counter or entry change it
 * describes (store.ts), so the buckets are a breakdown of the counters, never a second count.
 */

export const HOUR_MS = 3_600_000;
/** The key of the all-time bucket (what /metrics reads: one record, however long the history). */
const ALL_TIME = -1;
/** Buckets older than this are dropped when a new hour starts. */
const RETAIN_HOURS = 400 * 24;

/** Upper bounds (seconds) of the run-duration histogram; one more slot counts the rest (+Inf). */
export const DURATION_BOUNDS_S = [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600] as const;

/** Task label under which runs without a task name are counted. */
export const ANONYMOUS_TASK = '(anonymous)';

export interface TaskTally {
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
  saves: number;
}

export interface Bucket {
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
  saves: number;
  evictions: number;
  evictedBytes: number;
  errors: number;
  /** Bytes of entries pulled from and blobs pushed to the team cache. */
  remoteDown: number;
  remoteUp: number;
  /** Bytes the cache held after the last save or eviction of the hour (absent: none happened). */
  usage?: number;
  tasks: Record<string, TaskTally>;
  errorKinds: Record<string, number>;
  evictReasons: Record<string, number>;
  /** Saved runs' command durations: counts per DURATION_BOUNDS_S slot (not cumulative), then +Inf. */
  durations: number[];
  durationMs: number;
}

/** One thing that happened, as the store books it. */
export type Happening =
  | { kind: 'hit'; task: string; savedMs: number; remote: boolean }
  | { kind: 'miss'; task: string }
  | { kind: 'save'; task: string; durationMs: number; usage: number }
  | { kind: 'evict'; reason: string; entries: number; bytes: number; usage: number }
  | { kind: 'error'; errorKind: string }
  | { kind: 'remote'; direction: 'up' | 'down'; bytes: number };

export const emptyBucket = (): Bucket => ({
  hits: 0,
  remoteHits: 0,
  misses: 0,
  savedMs: 0,
  saves: 0,
  evictions: 0,
  evictedBytes: 0,
  errors: 0,
  remoteDown: 0,
  remoteUp: 0,
  tasks: {},
  errorKinds: {},
  evictReasons: {},
  durations: new Array(DURATION_BOUNDS_S.length + 1).fill(0),
  durationMs: 0,
});

const emptyTally = (): TaskTally => ({ hits: 0, remoteHits: 0, misses: 0, savedMs: 0, saves: 0 });

export const hourOf = (at: number): number => Math.floor(at / HOUR_MS);

const taskName = (task: string): string => task || ANONYMOUS_TASK;

/** Adds one happening to a bucket (in memory). */
export function addTo(b: Bucket, h: Happening): void {
  const tally = (task: string) => {
    const name = taskName(task);
    const t = b.tasks[name] ?? emptyTally();
    b.tasks[name] = t;
    return t;
  };
  switch (h.kind) {
    case 'hit': {
      const saved = Math.max(0, Math.round(h.savedMs));
      const t = tally(h.task);
      b.hits++;
      t.hits++;
      b.savedMs += saved;
      t.savedMs += saved;
      if (h.remote) {
        b.remoteHits++;
        t.remoteHits++;
      }
      return;
    }
    case 'miss':
      b.misses++;
      tally(h.task).misses++;
      return;
    case 'save': {
      b.saves++;
      tally(h.task).saves++;
      b.usage = h.usage;
      const s = h.durationMs / 1000;
      const slot = DURATION_BOUNDS_S.findIndex((bound) => s <= bound);
      const i = slot === -1 ? DURATION_BOUNDS_S.length : slot;
      b.durations[i] = (b.durations[i] ?? 0) + 1;
      b.durationMs += Math.max(0, Math.round(h.durationMs));
      return;
    }
    case 'evict':
      b.evictions += h.entries;
      b.evictedBytes += h.bytes;
      b.evictReasons[h.reason] = (b.evictReasons[h.reason] ?? 0) + h.entries;
      b.usage = h.usage;
      return;
    case 'error':
      b.errors++;
      b.errorKinds[h.errorKind] = (b.errorKinds[h.errorKind] ?? 0) + 1;
      return;
    case 'remote':
      if (h.direction === 'up') b.remoteUp += h.bytes;
      else b.remoteDown += h.bytes;
      return;
  }
}

/** The hourly buckets, keyed by hours since the epoch, in the index's LMDB environment. */
export class TimeSeries {
  constructor(private readonly db: Database<Bucket, number>) {}

  /**
   * Inside a write transaction: books happenings into their hours' buckets, one read and one write
   * per hour touched (a folded journal of 40,000 hits is a handful of writes). Returns the writes'
   * promises, for the caller's usual handling of best-effort writes.
   */
  record(items: Array<{ at: number; happening: Happening }>): Array<Promise<boolean>> {
    if (items.length === 0) return [];
    const byHour = new Map<number, Bucket>();
    const total = this.db.get(ALL_TIME) ?? emptyBucket();
    byHour.set(ALL_TIME, total);
    for (const { at, happening } of items) {
      addTo(total, happening);
      const hour = hourOf(at);
      let b = byHour.get(hour);
      if (!b) {
        b = this.db.get(hour) ?? this.startHour(hour);
        byHour.set(hour, b);
      }
      addTo(b, happening);
    }
    return [...byHour].map(([hour, b]) => this.db.put(hour, b));
  }

  /** A new hour's bucket; drops those past retention, so the db stays small without a sweep. */
  private startHour(hour: number): Bucket {
    for (const key of this.db.getKeys({ start: 0, end: hour - RETAIN_HOURS, limit: 64 }))
      void this.db.remove(key).catch(() => {}); // best effort: the next new hour tries again
    return emptyBucket();
  }

  /** Everything ever booked, added up (kept as its own record, updated with each hour's). */
  allTime(): Bucket {
    return this.db.get(ALL_TIME) ?? emptyBucket();
  }

  /** Buckets of hours in [fromHour, toHour), oldest first; hours with nothing happening are absent. */
  range(fromHour: number, toHour: number): Array<{ hour: number; bucket: Bucket }> {
    const out: Array<{ hour: number; bucket: Bucket }> = [];
    for (const { key, value } of this.db.getRange({ start: Math.max(0, fromHour), end: toHour }))
      out.push({ hour: key, bucket: value });
    return out;
  }

  /** The newest bucket's hour at or before `hour` that recorded a usage, and that usage. */
  usageBefore(hour: number): number | undefined {
    for (const { key, value } of this.db.getRange({ start: hour, reverse: true, limit: 24 * 31 }))
      if (key >= 0 && value.usage !== undefined) return value.usage;
    return undefined;
  }
}

/** Every bucket added together (all time, or one range). */
export function sumBuckets(buckets: Iterable<Bucket>): Bucket {
  const total = emptyBucket();
  for (const b of buckets) {
    total.hits += b.hits;
    total.remoteHits += b.remoteHits;
    total.misses += b.misses;
    total.savedMs += b.savedMs;
    total.saves += b.saves;
    total.evictions += b.evictions;
    total.evictedBytes += b.evictedBytes;
    total.errors += b.errors;
    total.remoteUp += b.remoteUp ?? 0;
    total.remoteDown += b.remoteDown ?? 0;
    total.durationMs += b.durationMs;
    b.durations.forEach((n, i) => {
      total.durations[i] = (total.durations[i] ?? 0) + n;
    });
    for (const [k, n] of Object.entries(b.errorKinds)) total.errorKinds[k] = (total.errorKinds[k] ?? 0) + n;
    for (const [k, n] of Object.entries(b.evictReasons))
      total.evictReasons[k] = (total.evictReasons[k] ?? 0) + n;
    for (const [name, t] of Object.entries(b.tasks)) {
      const into = total.tasks[name] ?? emptyTally();
      total.tasks[name] = into;
      into.hits += t.hits;
      into.remoteHits += t.remoteHits;
      into.misses += t.misses;
      into.savedMs += t.savedMs;
      into.saves += t.saves;
    }
    if (b.usage !== undefined) total.usage = b.usage;
  }
  return total;
}

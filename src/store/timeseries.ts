import type { Database } from 'lmdb';

/*
 * Hourly buckets of what the index's counters count (hits, misses, time saved), plus what they do
 * not keep over time (saves, evictions, errors, cache usage, run durations), so that the dashboard
 * and `taskvault metrics` read history as small records instead of the audit log. Every bucket is
 * written in the same write transaction as the counter or entry change it describes (store.ts), so
 * the buckets are a breakdown of the counters, never a second count.
 *
 * Daily buckets roll the hours up (a month is 30 records, not 720): booked in the same transaction
 * as the hours, from the same happenings, so a day is always the sum of its hours. They are
 * derived data: an index from before they existed gets them once from its hours (rebuildDays, at
 * open), and the all-time record carries a mark of the totals the days were last in step with, so
 * that hours booked without them (an older TaskVault on the same cache) are noticed and the days
 * are then read from the hours instead (daysInStep).
 */

export const HOUR_MS = 3_600_000;
export const DAY_HOURS = 24;
/** The key of the all-time bucket (what /metrics reads: one record, however long the history). */
const ALL_TIME = -1;
/** Days (and their hours) older than this are dropped when a new hour starts. */
const RETAIN_DAYS = 400;

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
  /** Day buckets only: the hour whose usage `usage` is (the day's last hour that recorded one). */
  usageHour?: number;
  /** The all-time bucket only: its totals when the day buckets last added up to it (stepMark). */
  daysMark?: string;
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
/** The UTC day (days since the epoch) an hour falls in. */
export const dayOf = (hour: number): number => Math.floor(hour / DAY_HOURS);

/** What every happening changes at least one of: equal marks, equal totals. */
const stepMark = (b: Bucket): string =>
  [
    b.hits,
    b.remoteHits,
    b.misses,
    b.savedMs,
    b.saves,
    b.evictions,
    b.evictedBytes,
    b.errors,
    b.remoteUp ?? 0,
    b.remoteDown ?? 0,
  ].join(':');
const NOTHING_BOOKED = stepMark(emptyBucket());

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

/**
 * Adds one happening to a day's bucket: as to an hour's, but the day's usage is that of its
 * latest hour (happenings can be booked out of order: a save is booked at its entry's creation).
 */
function addToDay(d: Bucket, hour: number, h: Happening): void {
  const before = d.usage;
  addTo(d, h);
  if (h.kind !== 'save' && h.kind !== 'evict') return;
  if (d.usageHour !== undefined && hour < d.usageHour) d.usage = before;
  else d.usageHour = hour;
}

export interface Stepped {
  /** The first hour the bucket covers. */
  hour: number;
  bucket: Bucket;
}

/**
 * The hourly and daily buckets, keyed by hours (days) since the epoch, in the index's LMDB
 * environment; the hourly db also holds the all-time record.
 */
export class TimeSeries {
  constructor(
    private readonly db: Database<Bucket, number>,
    private readonly daysDb: Database<Bucket, number>,
  ) {}

  /**
   * Inside a write transaction: books happenings into their hours' and days' buckets, one read and
   * one write per hour and day touched (a folded journal of 40,000 hits is a handful of writes).
   * Returns the writes' promises, for the caller's usual handling of best-effort writes.
   */
  record(items: Array<{ at: number; happening: Happening }>): Array<Promise<boolean>> {
    if (items.length === 0) return [];
    const byHour = new Map<number, Bucket>();
    const byDay = new Map<number, Bucket>();
    const total = this.db.get(ALL_TIME) ?? emptyBucket();
    const inStep = this.inStep(total);
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
      const day = dayOf(hour);
      let d = byDay.get(day);
      if (!d) {
        d = this.daysDb.get(day) ?? this.startDay(day);
        byDay.set(day, d);
      }
      addToDay(d, hour, happening);
    }
    // Days that were behind the hours stay marked so (readers then use the hours) until rebuilt.
    if (inStep) total.daysMark = stepMark(total);
    return [
      ...[...byHour].map(([hour, b]) => this.db.put(hour, b)),
      ...[...byDay].map(([day, d]) => this.daysDb.put(day, d)),
    ];
  }

  /** A new hour's bucket; drops those past retention, so the db stays small without a sweep. */
  private startHour(hour: number): Bucket {
    // Whole days of hours, as the day buckets go: what is left of a day always adds up to it.
    const end = (dayOf(hour) - RETAIN_DAYS) * DAY_HOURS;
    for (const key of this.db.getKeys({ start: 0, end, limit: 64 })) void this.db.remove(key).catch(() => {}); // best effort: the next new hour tries again
    return emptyBucket();
  }

  private startDay(day: number): Bucket {
    for (const key of this.daysDb.getKeys({ start: 0, end: day - RETAIN_DAYS, limit: 64 }))
      void this.daysDb.remove(key).catch(() => {}); // best effort: the next new day tries again
    return emptyBucket();
  }

  /** Whether the day buckets add up to what was booked (the all-time record's mark says so). */
  private inStep(total: Bucket): boolean {
    return (
      total.daysMark === stepMark(total) ||
      (total.daysMark === undefined && stepMark(total) === NOTHING_BOOKED)
    );
  }

  daysInStep(): boolean {
    return this.inStep(this.allTime());
  }

  /**
   * Inside a write transaction: every day bucket again from the hours (an index from before day
   * buckets, or one an older TaskVault wrote hours to since), and the mark that they are in step.
   */
  rebuildDays(): void {
    const days = new Map<number, Bucket>();
    for (const { key: hour, value } of this.db.getRange({ start: 0 })) {
      const day = dayOf(hour);
      const d = days.get(day) ?? emptyBucket();
      days.set(day, sumInto(d, value, hour));
    }
    for (const key of this.daysDb.getKeys()) if (!days.has(key)) void this.daysDb.remove(key);
    for (const [day, d] of days) void this.daysDb.put(day, d);
    const total = this.db.get(ALL_TIME);
    if (total) {
      total.daysMark = stepMark(total);
      void this.db.put(ALL_TIME, total);
    }
  }

  /** Everything ever booked, added up (kept as its own record, updated with each hour's). */
  allTime(): Bucket {
    return this.db.get(ALL_TIME) ?? emptyBucket();
  }

  /** Buckets of hours in [fromHour, toHour), oldest first; hours with nothing happening are absent. */
  range(fromHour: number, toHour: number): Stepped[] {
    const out: Stepped[] = [];
    for (const { key, value } of this.db.getRange({ start: Math.max(0, fromHour), end: toHour }))
      out.push({ hour: key, bucket: value });
    return out;
  }

  /** Day buckets of days in [fromDay, toDay), oldest first, keyed by their first hour. */
  dayRange(fromDay: number, toDay: number): Stepped[] {
    const out: Stepped[] = [];
    for (const { key, value } of this.daysDb.getRange({ start: Math.max(0, fromDay), end: toDay }))
      out.push({ hour: key * DAY_HOURS, bucket: value });
    return out;
  }

  /**
   * [fromHour, toHour) in buckets of one hour or one UTC day, oldest first, empty ones absent. By
   * day, a day wholly in the span is its day bucket; the partial days at either edge (and every
   * day, if the days are not in step) are summed from their hours. A partial day is keyed by its
   * first hour in the span.
   */
  steps(fromHour: number, toHour: number, step: 'hour' | 'day'): Stepped[] {
    if (step === 'hour') return this.range(fromHour, toHour);
    const fromDay = Math.ceil(fromHour / DAY_HOURS);
    const toDay = Math.floor(toHour / DAY_HOURS);
    if (fromDay >= toDay || !this.daysInStep()) return byDay(this.range(fromHour, toHour));
    return [
      ...byDay(this.range(fromHour, fromDay * DAY_HOURS)),
      ...this.dayRange(fromDay, toDay),
      ...byDay(this.range(toDay * DAY_HOURS, toHour)),
    ];
  }

  /** The usage recorded last at or before `hour` (hours of its day, then whole days back). */
  usageBefore(hour: number): number | undefined {
    const day = dayOf(hour);
    if (this.daysInStep()) {
      for (const { value } of this.db.getRange({ start: hour, end: day * DAY_HOURS - 1, reverse: true }))
        if (value.usage !== undefined) return value.usage;
      for (const { value } of this.daysDb.getRange({ start: day - 1, end: -1, reverse: true, limit: 400 }))
        if (value.usage !== undefined) return value.usage;
      return undefined;
    }
    for (const { key, value } of this.db.getRange({ start: hour, reverse: true, limit: 24 * 31 }))
      if (key >= 0 && value.usage !== undefined) return value.usage;
    return undefined;
  }
}

/** Hourly buckets summed per UTC day (for spans the day buckets cannot answer). */
function byDay(hours: Stepped[]): Stepped[] {
  const out: Stepped[] = [];
  for (const { hour, bucket } of hours) {
    const last = out.at(-1);
    if (last && dayOf(last.hour) === dayOf(hour)) sumInto(last.bucket, bucket, hour);
    else out.push({ hour, bucket: sumInto(emptyBucket(), bucket, hour) });
  }
  return out;
}

/** Every bucket added together (all time, or one range), oldest first. */
export function sumBuckets(buckets: Iterable<Bucket>): Bucket {
  const total = emptyBucket();
  for (const b of buckets) sumInto(total, b);
  return total;
}

/**
 * Adds `b` to `total` (in place; returns it). Buckets come oldest first: the usage is the last
 * one given, and with `hour` (b's hour) its hour is kept as a day bucket's usageHour.
 */
function sumInto(total: Bucket, b: Bucket, hour?: number): Bucket {
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
  if (b.usage !== undefined) {
    total.usage = b.usage;
    if (hour !== undefined) total.usageHour = hour;
  }
  return total;
}

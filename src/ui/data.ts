import { statSync } from 'node:fs';
import type { Settings } from '../config/resolve.js';
import { describeChange, diffFingerprints } from '../fingerprint/diff.js';
import { type AuditLine, recentAudit } from '../store/activity.js';
import type { Entry } from '../store/entry.js';
import { type EntryRow, entryRows } from '../store/overview.js';
import { type CacheStats, cacheStats } from '../store/stats.js';
import { Store } from '../store/store.js';
import {
  ANONYMOUS_TASK,
  type Bucket,
  DAY_HOURS,
  HOUR_MS,
  hourOf,
  sumBuckets,
  type TaskTally,
} from '../store/timeseries.js';
import { err, ok, type Result } from '../util/result.js';
import { costOf, type Prices, prices } from './cost.js';

/*
 * What the dashboard and /metrics show, read from the store: its stats, its entry summaries, the
 * hourly time series and the audit log's tail. Read-only but for what opening the index does for
 * every reader (`taskvault stats` too): folding the hits journal into the counters.
 */

export interface SeriesPoint {
  /** Start of the period, epoch ms. */
  t: number;
  hits: number;
  remoteHits: number;
  misses: number;
  errors: number;
  savedMs: number;
  evictions: number;
  evictedBytes: number;
  /** Cache usage at the end of the period (carried forward from the last change). */
  usage: number | null;
  cost: number;
}

/** The counts of runs every series has, local or team. */
type RunCounts = Pick<SeriesPoint, 'hits' | 'remoteHits' | 'misses' | 'errors' | 'savedMs'>;

/** A series point at `t` with nothing counted yet. */
export function emptyPoint<U extends number | null>(
  t: number,
  usage: U,
): Omit<SeriesPoint, 'usage'> & { usage: U } {
  return {
    t,
    hits: 0,
    remoteHits: 0,
    misses: 0,
    errors: 0,
    savedMs: 0,
    evictions: 0,
    evictedBytes: 0,
    usage,
    cost: 0,
  };
}

/** Adds `x`'s run counts to `p`. */
export function addRuns(p: RunCounts, x: RunCounts): void {
  p.hits += x.hits;
  p.remoteHits += x.remoteHits;
  p.misses += x.misses;
  p.errors += x.errors;
  p.savedMs += x.savedMs;
}

export interface TaskFigures extends TaskTally {
  task: string;
  cost: number;
}

export interface OverviewData {
  stats: CacheStats;
  currency: string;
  range: { from: number; to: number; step: 'hour' | 'day' };
  totals: {
    hits: number;
    remoteHits: number;
    misses: number;
    errors: number;
    savedMs: number;
    evictions: number;
    cost: number;
  };
  series: SeriesPoint[];
  tasks: TaskFigures[];
  evictReasons: Record<string, number>;
  /** What changes whenever anything the dashboard shows changes (for live updates). */
  version: string;
}

export interface RunRow {
  at: number;
  event: 'HIT' | 'MISS' | 'SAVE';
  hash: string;
  origin?: string;
  /** For a miss: why, one line per fingerprint difference (the same lines as `taskvault explain`). */
  reason?: string[];
}

/** An entries listing is reused while nothing changed (version), but never longer than this. */
const ROWS_MAX_AGE_MS = 60_000;

export class DashboardData {
  private store: Store;
  private rows: { at: number; version: string; rows: EntryRow[] } | undefined;
  private seenJournal = -1;
  private held:
    | { version: string; sizes: Array<{ task: string; entries: number; bytes: number }> }
    | undefined;
  /** Overviews computed since the cache last changed, by span (hours) and step. */
  private overviews: { version: string; bySpan: Map<string, OverviewData> } | undefined;
  readonly prices: Prices;

  private constructor(
    private readonly settings: Settings,
    store: Store,
  ) {
    this.store = store;
    this.prices = prices(settings.config.cost);
  }

  static open(settings: Settings): Result<DashboardData> {
    const opened = Store.open(settings.cacheDir);
    if (!opened.ok) return err(opened.error);
    return ok(new DashboardData(settings, opened.value));
  }

  async close(): Promise<void> {
    await this.store.close().catch(() => {});
  }

  /**
   * Sees what other processes committed since: a fresh read snapshot, and the store opened again
   * when hits were journaled (opening folds them into the counters, as for `taskvault stats`).
   */
  async refresh(): Promise<void> {
    const journal = statSync(this.store.layout.hitsJournal, { throwIfNoEntry: false })?.size ?? 0;
    if (journal !== this.seenJournal && this.seenJournal !== -1 && journal > 0) {
      const reopened = Store.open(this.settings.cacheDir);
      if (reopened.ok) {
        const old = this.store;
        this.store = reopened.value;
        await old.close().catch(() => {});
      }
    } else this.store.refresh();
    this.seenJournal = statSync(this.store.layout.hitsJournal, { throwIfNoEntry: false })?.size ?? 0;
  }

  /** Changes whenever the counters, the entries or the audit log change. */
  version(): string {
    const c = this.store.getCounters();
    const audit = statSync(this.store.layout.audit, { throwIfNoEntry: false });
    return [
      c.hits,
      c.remoteHits,
      c.misses,
      c.savedMs,
      this.store.usage(),
      audit?.size ?? 0,
      audit?.mtimeMs ?? 0,
    ].join(':');
  }

  entryRows(): EntryRow[] {
    const version = this.version();
    const now = Date.now();
    if (!this.rows || this.rows.version !== version || now - this.rows.at > ROWS_MAX_AGE_MS)
      this.rows = { at: now, version, rows: entryRows(this.store) };
    return this.rows.rows;
  }

  stats(): CacheStats {
    return cacheStats(this.store, this.settings.maxSizeBytes);
  }

  /** All-time totals from the time series (for the Prometheus counters). */
  allTime(): Bucket {
    return this.store.series.allTime();
  }

  /**
   * The overview of a span; computed once per span and step while the cache does not change (more
   * pages, reloads, and every live update of every open page ask for the same one).
   */
  overview(o: { from: number; to: number; step: 'hour' | 'day' }): OverviewData {
    const version = this.version();
    if (this.overviews?.version !== version) this.overviews = { version, bySpan: new Map() };
    const span = `${hourOf(o.from)}:${hourOf(o.to)}:${o.step}`;
    const known = this.overviews.bySpan.get(span);
    if (known) return { ...known, range: o };
    const computed = this.computeOverview(o);
    if (this.overviews.bySpan.size >= 16) this.overviews.bySpan.clear();
    this.overviews.bySpan.set(span, computed);
    return computed;
  }

  /**
   * Computes the default views ahead of the first request: started as the server starts listening,
   * it runs while the browser is still loading the page's script.
   */
  warm(views: Array<{ from: number; to: number; step: 'hour' | 'day' }>): void {
    try {
      for (const v of views) this.overview(v);
    } catch {
      // Only a head start: whatever failed here fails again, with its 500, when the page asks.
    }
  }

  private computeOverview(o: { from: number; to: number; step: 'hour' | 'day' }): OverviewData {
    const stats = this.stats();
    const stepH = o.step === 'day' ? DAY_HOURS : 1;
    const fromHour = Math.floor(hourOf(o.from) / stepH) * stepH;
    const toHour = hourOf(o.to) + 1;
    // By day: whole days are one record each, only the current day is summed from its hours.
    const buckets = this.store.series.steps(fromHour, toHour, o.step);
    let usage: number | null = this.store.series.usageBefore(fromHour - 1) ?? null;
    const series: SeriesPoint[] = [];
    let j = 0;
    for (let h = fromHour; h < toHour; h += stepH) {
      const p: SeriesPoint = emptyPoint(h * HOUR_MS, usage);
      while (j < buckets.length && buckets[j]!.hour < h + stepH) {
        const b = buckets[j++]!.bucket;
        addRuns(p, b);
        p.evictions += b.evictions;
        p.evictedBytes += b.evictedBytes;
        for (const [task, t] of Object.entries(b.tasks)) p.cost += costOf(this.prices, task, t.savedMs);
        if (b.usage !== undefined) usage = b.usage;
      }
      p.usage = usage;
      series.push(p);
    }
    // The current hour shows the cache as it is now.
    if (series.length > 0 && o.to >= Date.now() - HOUR_MS)
      series[series.length - 1]!.usage = stats.totalBytes;
    const sum = sumBuckets(buckets.map((b) => b.bucket));
    const tasks = this.taskFigures(sum);
    return {
      stats,
      currency: this.prices.currency,
      range: o,
      totals: {
        hits: sum.hits,
        remoteHits: sum.remoteHits,
        misses: sum.misses,
        errors: sum.errors,
        savedMs: sum.savedMs,
        evictions: sum.evictions,
        cost: tasks.reduce((n, t) => n + t.cost, 0),
      },
      series,
      tasks,
      evictReasons: sum.evictReasons,
      version: this.version(),
    };
  }

  /** Per task: the range's tallies. */
  private taskFigures(sum: Bucket): TaskFigures[] {
    return Object.keys(sum.tasks)
      .sort()
      .map((task) => {
        const t = sum.tasks[task]!;
        return { task, ...t, cost: costOf(this.prices, task, t.savedMs) };
      });
  }

  /**
   * Per task: entries and bytes it holds in the cache now (one pass over the summaries; asked for
   * after the first paint, which needs only the counters and the series).
   */
  sizes(): Array<{ task: string; entries: number; bytes: number }> {
    const version = this.version();
    if (this.held?.version === version) return this.held.sizes;
    const held = new Map<string, { entries: number; bytes: number }>();
    for (const r of this.store.summariesOf()) {
      const name = r.task || ANONYMOUS_TASK;
      const h = held.get(name) ?? { entries: 0, bytes: 0 };
      h.entries++;
      h.bytes += r.bytes;
      held.set(name, h);
    }
    const sizes = [...held].map(([task, h]) => ({ task, ...h })).sort((a, b) => b.bytes - a.bytes);
    this.held = { version, sizes };
    return sizes;
  }

  getEntry(key: string): { entry: Entry; hits: number; lastAccess?: number } | undefined {
    const entry = this.store.getEntry(key);
    if (!entry) return undefined;
    const last = this.store.lastAccess(key);
    return { entry, hits: this.store.hitCount(key), ...(last === undefined ? {} : { lastAccess: last }) };
  }

  /**
   * A task's newest runs from the audit log, newest first; each miss with why it missed: its
   * fingerprint compared with the one of the task's run before it (what `explain` compares).
   */
  recentRuns(task: string, limit: number): RunRow[] {
    const lines = recentAudit(
      this.store.layout.audit,
      (l) =>
        (l.event === 'HIT' || l.event === 'MISS' || l.event === 'SAVE') && (l.fields.task ?? '') === task,
    );
    const byPrefix = new Map<string, string>();
    for (const r of this.entryRows()) byPrefix.set(r.key.slice(0, 12), r.key);
    const rows: RunRow[] = [];
    let previous: string | undefined; // the hash of the state last served or saved
    for (const l of lines) {
      const hash = l.fields.hash ?? '';
      const row: RunRow = { at: l.at, event: l.event as RunRow['event'], hash };
      if (l.fields.origin) row.origin = l.fields.origin;
      if (l.event === 'MISS') row.reason = this.missReason(previous, hash, byPrefix);
      if (l.event !== 'MISS') previous = hash;
      // A save follows its own miss: one row says both.
      if (l.event === 'SAVE' && rows.at(-1)?.event === 'MISS' && rows.at(-1)?.hash === hash) continue;
      rows.push(row);
    }
    return rows.slice(-limit).reverse();
  }

  private missReason(previous: string | undefined, hash: string, byPrefix: Map<string, string>): string[] {
    if (previous === undefined) return ['no earlier run of this task in the log, so nothing to compare with'];
    if (previous === hash)
      return ['the same key as the run before: its entry had expired or was evicted or removed'];
    const before = byPrefix.get(previous);
    const now = byPrefix.get(hash);
    const prevFp = before && this.store.getFingerprint(before);
    const fp = now && this.store.getFingerprint(now);
    if (!prevFp) return [`the run before (${previous}) is no longer in the cache (evicted or removed)`];
    if (!fp)
      return [`this run (${hash}) was not stored or is no longer in the cache, so its inputs are unknown`];
    const changes = diffFingerprints(prevFp, fp);
    return changes.length ? changes.map(describeChange) : ['same fingerprint as the run before'];
  }

  /** The audit log's newest lines (any event), for the activity list. */
  recentEvents(limit: number): AuditLine[] {
    return recentAudit(this.store.layout.audit, () => true, 256 * 1024)
      .slice(-limit)
      .reverse();
  }
}

import { type Policy, resolvePolicy, type Settings } from '../config/resolve.js';
import { formatBytes } from '../util/format.js';
import { monotonicMs } from '../util/monotonic.js';
import type { Entry } from './entry.js';
import { entryBlobs } from './entry.js';
import type { Removed, Store } from './store.js';

/** Why an entry left the cache; written as `reason=` on its EVICT audit line. */
export type EvictReason = 'ttl' | 'lru' | 'size' | 'manual';

export interface Tally {
  entries: number;
  /** Blob bytes actually freed (a blob still shared with a kept entry frees nothing). */
  bytes: number;
}

export interface EvictReport {
  byReason: Record<EvictReason, Tally>;
  entries: number;
  bytes: number;
  usageBefore: number;
  usageAfter: number;
  /** False when the time budget ran out before the cache was back under its limits. */
  complete: boolean;
}

export interface EvictOptions {
  now: number;
  /** Whole-cache limit in bytes (settings.maxSizeBytes). */
  maxBytes: number;
  /** Once over maxBytes, least-recently-used entries go until usage is at most this. */
  lowWaterBytes: number;
  /** The policy in force for a task name ('' for anonymous runs). */
  policyFor: (task: string) => Pick<Policy, 'ttlMs' | 'maxEntryBytes'>;
  /** Also remove entries larger than their task's current per-entry limit (gc does; saves don't). */
  enforceEntrySize?: boolean;
  /** Never evicted: the entry a run has just saved. */
  protect?: string;
  /** monotonicMs() value after which no new batch starts. */
  deadline?: number;
  dryRun?: boolean;
  source: string;
}

/** Entries removed by the first write transaction of an eviction. */
const BATCH = 1024;
/**
 * A long eviction grows its batches up to this while each takes under BATCH_MS: each write
 * transaction ends with a flush to disk (tens of ms on a busy disk), so 50,000 removals in batches
 * of 1024 waited seconds on flushes alone. Other writers (a run's commit) then wait for at most one
 * batch, a few hundred ms.
 */
const MAX_BATCH = 8192;
const BATCH_MS = 200;

/** Each task's policy under the current config, memoised; a broken policy falls back to no limit. */
export function policyLookup(settings: Pick<Settings, 'config'>): EvictOptions['policyFor'] {
  const memo = new Map<string, Pick<Policy, 'ttlMs' | 'maxEntryBytes'>>();
  return (task) => {
    let p = memo.get(task);
    if (!p) {
      const r = resolvePolicy(settings, task, settings.config.tasks?.[task]?.policy);
      p = r.ok ? r.value : { ttlMs: Number.POSITIVE_INFINITY, maxEntryBytes: Number.POSITIVE_INFINITY };
      memo.set(task, p);
    }
    return p;
  };
}

/**
 * An entry's TTL is the shorter of the one it was saved with (which includes a `--ttl` flag) and
 * its task's policy now, so lowering a TTL in the config takes effect on existing entries.
 */
export function isExpired(
  entry: Pick<Entry, 'createdAt' | 'ttlMs'>,
  policy: Pick<Policy, 'ttlMs'>,
  now: number,
): boolean {
  return entry.createdAt + Math.min(entry.ttlMs, policy.ttlMs) <= now;
}

/**
 * Expire, then evict least-recently-used entries (by last hit, falling back to creation) until the
 * cache is under its low-water mark. Runs in small write transactions, each re-checking what it
 * removes, so it is safe while other processes hit and save: an entry hit since the plan was made
 * is kept, and a blob is deleted only when the last entry referencing it goes (see Store.dropRefs).
 */
export async function evict(store: Store, o: EvictOptions): Promise<EvictReport> {
  const usageBefore = store.usage();
  const report: EvictReport = {
    byReason: { ttl: tally(), lru: tally(), size: tally(), manual: tally() },
    entries: 0,
    bytes: 0,
    usageBefore,
    usageAfter: usageBefore,
    complete: true,
  };
  const sim = o.dryRun ? new DryRun(store) : undefined;
  // The deadline is checked before each batch but the first, so a slow plan still makes progress.
  let batches = 0;
  const remove = async (
    items: Array<{ key: string; at?: number }>,
    reason: EvictReason,
    stopAtUsage?: number,
  ): Promise<boolean> => {
    let inTime = true;
    await inBatches(items, async (batch) => {
      if (o.deadline !== undefined && batches++ > 0 && monotonicMs() > o.deadline) {
        inTime = false;
        return false;
      }
      const removed = sim
        ? sim.remove(batch, stopAtUsage)
        : await store.removeEntries(batch, stopAtUsage === undefined ? { reason } : { stopAtUsage, reason });
      record(report, reason, removed);
      if (!sim) auditEvictions(store, o.source, reason, removed);
      return stopAtUsage === undefined || (sim?.usage ?? store.usage()) > stopAtUsage;
    });
    return inTime;
  };

  const expired: Array<{ key: string }> = [];
  const oversize: Array<{ key: string }> = [];
  for (const entry of store.summariesOf()) {
    if (entry.key === o.protect) continue;
    const policy = o.policyFor(entry.task);
    if (isExpired(entry, policy, o.now)) expired.push({ key: entry.key });
    else if (o.enforceEntrySize && entry.bytes > policy.maxEntryBytes) oversize.push({ key: entry.key });
  }
  let complete = (await remove(expired, 'ttl')) && (await remove(oversize, 'size'));

  const usage = () => sim?.usage ?? store.usage();
  if (complete && usage() > o.maxBytes) {
    const gone = new Set([...expired, ...oversize].map((e) => e.key));
    const byAge: Array<{ key: string; at: number }> = [];
    for (const a of store.accessTimes()) if (a.key !== o.protect && !gone.has(a.key)) byAge.push(a);
    byAge.sort((a, b) => a.at - b.at);
    complete = await remove(byAge, 'lru', o.lowWaterBytes);
  }
  report.usageAfter = usage();
  report.complete = complete && report.usageAfter <= o.maxBytes;
  return report;
}

/**
 * Calls `removeSome` on successive slices of `items` until it returns false, each slice one write
 * transaction: the first BATCH long, doubled up to MAX_BATCH while each takes under BATCH_MS.
 */
export async function inBatches<T>(items: T[], removeSome: (batch: T[]) => Promise<boolean>): Promise<void> {
  let size = BATCH;
  for (let i = 0; i < items.length; ) {
    const batch = items.slice(i, i + size);
    // Past this batch, not past one of the next size: that skipped items each time it grew.
    i += batch.length;
    const started = monotonicMs();
    if (!(await removeSome(batch))) return;
    if (monotonicMs() - started < BATCH_MS) size = Math.min(size * 2, MAX_BATCH);
  }
}

/** Removes entries by hand (`taskvault clean`): every entry, or those of one task. */
export async function removeMatching(
  store: Store,
  match: (entry: Pick<Entry, 'key' | 'task'>) => boolean,
  o: { dryRun?: boolean; source: string },
): Promise<Tally> {
  const keys: Array<{ key: string }> = [];
  for (const entry of store.summariesOf()) if (match(entry)) keys.push({ key: entry.key });
  const sim = o.dryRun ? new DryRun(store) : undefined;
  const total = tally();
  await inBatches(keys, async (batch) => {
    const removed = sim ? sim.remove(batch) : await store.removeEntries(batch, { reason: 'manual' });
    for (const r of removed) {
      total.entries++;
      total.bytes += r.bytes;
    }
    if (!sim) auditEvictions(store, o.source, 'manual', removed);
    return true;
  });
  return total;
}

function auditEvictions(store: Store, source: string, reason: EvictReason, removed: Removed[]): void {
  store.audit.writeAll(
    removed.map((r) => ({
      event: 'EVICT' as const,
      source,
      fields: {
        task: r.entry.task || undefined,
        hash: r.key.slice(0, 12),
        reason,
        bytes: r.entry.bytes,
        freed: r.bytes,
      },
    })),
  );
}

const tally = (): Tally => ({ entries: 0, bytes: 0 });

function record(report: EvictReport, reason: EvictReason, removed: Removed[]): void {
  for (const r of removed) {
    report.byReason[reason].entries++;
    report.byReason[reason].bytes += r.bytes;
    report.entries++;
    report.bytes += r.bytes;
  }
}

/** What removal would free, without writing: reference counts are decremented in memory. */
class DryRun {
  private readonly released = new Map<string, number>();
  private readonly gone = new Set<string>();
  usage: number;
  constructor(private readonly store: Store) {
    this.usage = store.usage();
  }

  remove(items: Array<{ key: string }>, stopAtUsage?: number): Removed[] {
    const out: Removed[] = [];
    for (const { key } of items) {
      if (stopAtUsage !== undefined && this.usage <= stopAtUsage) break;
      const entry = this.store.getEntry(key);
      if (!entry || this.gone.has(key)) continue;
      this.gone.add(key);
      let blobs = 0;
      let bytes = 0;
      for (const ref of new Map(entryBlobs(entry).map((r) => [r.hash, r])).values()) {
        const left = this.store.refCount(ref.hash) - (this.released.get(ref.hash) ?? 0) - 1;
        this.released.set(ref.hash, (this.released.get(ref.hash) ?? 0) + 1);
        if (left <= 0) {
          blobs++;
          bytes += ref.size;
        }
      }
      this.usage -= bytes;
      out.push({ key, entry, blobs, bytes });
    }
    return out;
  }
}

/** How long eviction after a save may hold up the end of a run; gc finishes what it leaves. */
export const AFTER_SAVE_BUDGET_MS = 2000;

/**
 * Called after a run saved an entry: O(1) when the cache is under its limit (one counter read);
 * otherwise expires and evicts down to the low-water mark within a time budget, never touching the
 * entry just saved. Never on the hit path.
 */
export async function evictAfterSave(
  store: Store,
  settings: Pick<Settings, 'maxSizeBytes' | 'lowWaterMark' | 'config'>,
  o: { now: number; protect: string; source: string; info: (message: string) => void },
): Promise<EvictReport | undefined> {
  if (store.usage() <= settings.maxSizeBytes) return undefined;
  const report = await evict(store, {
    now: o.now,
    maxBytes: settings.maxSizeBytes,
    lowWaterBytes: Math.floor(settings.maxSizeBytes * settings.lowWaterMark),
    policyFor: policyLookup(settings),
    protect: o.protect,
    deadline: monotonicMs() + AFTER_SAVE_BUDGET_MS,
    source: o.source,
  });
  o.info(
    `cache over its ${formatBytes(settings.maxSizeBytes)} limit: evicted ${report.entries} entr${report.entries === 1 ? 'y' : 'ies'}, freed ${formatBytes(report.bytes)}${report.complete ? '' : " (time budget reached; run 'taskvault gc')"}`,
  );
  return report;
}

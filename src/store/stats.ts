import type { Store } from './store.js';

/** What `taskvault stats` and `Client.getStats()` report. */
export interface CacheStats {
  entries: number;
  /** Bytes of the distinct blobs the entries reference (shared blobs count once). */
  totalBytes: number;
  /** The configured upper bound of the local cache (maxSizeGb). */
  limitBytes: number;
  /** totalBytes / limitBytes × 100. */
  usagePercent: number;
  hits: number;
  /** The hits served from the team cache (counted in `hits` too). */
  remoteHits: number;
  misses: number;
  /** hits / (hits + misses), 0…1; null before the first lookup. */
  hitRate: number | null;
  /** Sum over hits of the original run's duration minus the time the hit took. */
  savedMs: number;
}

/**
 * Reads two counts the index keeps, never the entries: the database's record count and the usage
 * total that every commit and removal keeps in step (refs.ts), so `stats` costs the same at 100
 * entries as at 100,000. gc recomputes that total from the entries if it ever drifted.
 */
export function cacheStats(store: Store, limitBytes: number): CacheStats {
  const entries = store.entryCount();
  const totalBytes = store.usage();
  const { hits, remoteHits, misses, savedMs } = store.getCounters();
  return {
    entries,
    totalBytes,
    limitBytes,
    usagePercent: limitBytes > 0 ? (totalBytes / limitBytes) * 100 : 0,
    hits,
    remoteHits,
    misses,
    hitRate: hits + misses > 0 ? hits / (hits + misses) : null,
    savedMs,
  };
}

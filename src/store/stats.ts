import { entryBlobs } from './entry.js';
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

export function cacheStats(store: Store, limitBytes: number): CacheStats {
  let entries = 0;
  const blobs = new Map<string, number>();
  for (const entry of store.allEntries()) {
    entries++;
    for (const ref of entryBlobs(entry)) blobs.set(ref.hash, ref.size);
  }
  let totalBytes = 0;
  for (const size of blobs.values()) totalBytes += size;
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

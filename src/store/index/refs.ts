import { statSync, unlinkSync } from 'node:fs';
import type { BlobStore } from '../blobs.js';
import { type Entry, uniqueBlobs } from '../entry.js';
import { syncByCreation } from './by-creation.js';
import { type IndexDbs, type SummaryRecord, summaryOf } from './dbs.js';
import { dropSmallBlob, mayBeInIndex, removeSmallBlob } from './small-blobs.js';
import { transact } from './writes.js';

/*
 * Blob reference counts: how many entries name each blob, and the bytes of all referenced blobs
 * (what `maxSizeGb` limits). A blob is deleted only inside the write transaction that drops its
 * last reference, so a commit that found it in place can count on it.
 */

/** Counter holding the bytes of unique referenced blobs, kept in step by commit and removal. */
const USAGE_KEY = 'blobBytes';

export const usage = (dbs: IndexDbs): number => dbs.counters.get(USAGE_KEY) ?? 0;

export interface Recount {
  repaired: number;
  missing: string[];
  usage: number;
}

/** Inside a write transaction: counts one more reference to each blob of `entry`. */
export function addRefs(dbs: IndexDbs, entry: Entry): void {
  let added = 0;
  for (const ref of uniqueBlobs(entry)) {
    const n = dbs.refs.get(ref.hash) ?? 0;
    if (n === 0) added += ref.size;
    dbs.refs.put(ref.hash, n + 1);
  }
  if (added) dbs.counters.put(USAGE_KEY, usage(dbs) + added);
}

/** Inside a write transaction: adds `delta` bytes to the usage counter (never below 0). */
export function bookUsage(dbs: IndexDbs, delta: number): void {
  if (delta) dbs.counters.put(USAGE_KEY, Math.max(0, usage(dbs) + delta));
}

/**
 * Inside a write transaction: drops `entry`'s references and deletes blobs nobody references.
 * Returns the bytes that are no longer referenced, which the caller books (bookUsage), once per
 * transaction when it removes many entries.
 */
export function dropRefs(dbs: IndexDbs, blobs: BlobStore, entry: Entry): { blobs: number; bytes: number } {
  let freed = 0;
  let bytes = 0;
  for (const ref of uniqueBlobs(entry)) {
    const n = dbs.refs.get(ref.hash) ?? 0;
    if (n > 1) {
      dbs.refs.put(ref.hash, n - 1);
      continue;
    }
    dbs.refs.remove(ref.hash);
    bytes += ref.size;
    const inIndex = dropSmallBlob(dbs, ref);
    // A result whose bytes were in the index has no file to look for (a failed unlink costs more
    // than the rest of its removal). A file copy of the same bytes, from a run that shared them
    // and went first, is an orphan from now on, which gc sweeps.
    if (inIndex && mayBeInIndex(entry)) {
      freed++;
      continue;
    }
    try {
      unlinkSync(blobs.path(ref.hash));
      freed++;
    } catch {
      // Already gone (a corrupt blob removed on the hit path): the reference is dropped all the same.
      if (inIndex) freed++;
    }
  }
  return { blobs: freed, bytes };
}

/**
 * Deletes blob files no entry references, re-checked inside a write transaction so no commit can
 * start referencing one in between. `olderThan` (epoch ms) spares blobs written or reused
 * recently: a run adopts its blobs before it commits the entry that references them.
 */
export function removeOrphanBlobs(
  dbs: IndexDbs,
  blobs: BlobStore,
  hashes: string[],
  olderThan: number,
): Promise<{ blobs: number; bytes: number }> {
  return transact(dbs.env, () => {
    let removed = 0;
    let bytes = 0;
    for (const hash of hashes) {
      if (dbs.refs.get(hash) !== undefined) continue;
      const path = blobs.path(hash);
      try {
        const s = statSync(path);
        if (s.mtimeMs >= olderThan) continue;
        unlinkSync(path);
        removed++;
        bytes += s.size;
      } catch {
        // Already gone (another gc, or verify --repair): nothing left to remove or count.
      }
    }
    return { blobs: removed, bytes };
  });
}

/**
 * Inside a write transaction: recomputes every reference count, the usage total and the summaries
 * from the entries (the "mark" of gc), and drops fingerprints staged by runs killed before their
 * commit. Returns how many records were wrong and which referenced blobs are missing (normally none).
 */
export function recount(dbs: IndexDbs, blobs: BlobStore): Recount {
  // Each db is read in one pass, joined in memory: a lookup per record in another db was most of
  // a gc at 100,000 entries.
  const hadSummaries = new Map<string, SummaryRecord>();
  for (const { key, value } of dbs.summaries.getRange()) hadSummaries.set(key, value);
  /** `file`: a run names it, whose hits read files only. */
  const counts = new Map<string, { n: number; size: number; file: boolean }>();
  const createdAt = new Map<string, number>();
  let summaries = 0;
  for (const { key, value } of dbs.entries.getRange()) {
    const summary = summaryOf(value);
    createdAt.set(key, summary[0]);
    const had = hadSummaries.get(key);
    if (!had || had.some((v, i) => v !== summary[i])) {
      dbs.summaries.put(key, summary);
      summaries++;
    }
    const file = !mayBeInIndex(value);
    for (const ref of uniqueBlobs(value)) {
      const c = counts.get(ref.hash);
      if (!c) counts.set(ref.hash, { n: 1, size: ref.size, file });
      else {
        c.n++;
        c.file ||= file;
      }
    }
  }
  for (const key of hadSummaries.keys()) if (!createdAt.has(key)) dbs.summaries.remove(key);
  // Fingerprints staged by runs killed before their commit (stageFingerprint): gc takes them all.
  for (const key of dbs.fingerprints.keys()) if (!createdAt.has(key)) dbs.fingerprints.remove(key);
  for (const key of dbs.staged.getKeys()) dbs.staged.remove(key);
  // Last-access and hit records of removed entries (a hit booked after another process removed
  // its entry, by an older TaskVault): a new save of the key would inherit them.
  for (const db of [dbs.access, dbs.hits])
    for (const key of db.getKeys()) if (!createdAt.has(key)) db.remove(key);
  let repaired = summaries + syncByCreation(dbs, createdAt);
  const hadRefs = new Map<string, number>();
  for (const { key, value } of dbs.refs.getRange()) {
    if (counts.has(key)) hadRefs.set(key, value);
    else {
      dbs.refs.remove(key);
      repaired++;
    }
  }
  // Small results' bytes nobody references (none unless a count was wrong): the sweep of gc.
  const inIndex = new Set<string>();
  for (const key of dbs.smallBlobs.getKeys()) {
    if (counts.has(key)) inIndex.add(key);
    else {
      removeSmallBlob(dbs, key);
      repaired++;
    }
  }
  let total = 0;
  const missing: string[] = [];
  for (const [hash, { n, size, file }] of counts) {
    if (hadRefs.get(hash) !== n) {
      dbs.refs.put(hash, n);
      repaired++;
    }
    total += size;
    if ((file || !inIndex.has(hash)) && !blobs.has(hash)) missing.push(hash);
  }
  if (usage(dbs) !== total) {
    dbs.counters.put(USAGE_KEY, total);
    repaired++;
  }
  return { repaired, missing, usage: total };
}

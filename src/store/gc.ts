import { readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from '../util/process.js';
import { isBlobName } from './blobs.js';
import { type EvictOptions, type EvictReport, evict, type Tally } from './evict.js';
import type { Store } from './store.js';

/** How old an unreferenced blob or a dead process's temp file must be before gc deletes it. */
export const DEFAULT_GRACE_MS = 60 * 60_000;

export interface SweepTally {
  files: number;
  bytes: number;
}

export interface GcReport {
  evicted: EvictReport;
  orphanBlobs: SweepTally;
  staleTmp: SweepTally;
  /** Hot entry copies the index no longer has, and input manifests unused for a month (hot.ts). */
  staleHot: SweepTally;
  /** Reference counts that were wrong and were rebuilt from the entries (normally 0). */
  refsRepaired: number;
  /** Blobs an entry references that are not on disk (such hits turn into misses; normally 0). */
  missingBlobs: number;
  dryRun: boolean;
}

export interface GcOptions extends Omit<EvictOptions, 'enforceEntrySize' | 'protect'> {
  graceMs?: number;
}

/**
 * `taskvault gc`: expire and evict to the limits, rebuild reference counts from the entries that
 * are left (mark), then sweep blobs no entry references and temp files left by killed processes.
 *
 * The mark comes after eviction so that it reads only the entries that stay (half of them, when
 * gc evicts half). Commits and removals keep the counts exact in their own transactions, so the
 * mark repairs nothing unless something went wrong (a bug, an older TaskVault); if it does
 * repair, the eviction runs again on the repaired counts.
 *
 * Why sweeping is safe with other processes running: a run writes (or reuses, refreshing its
 * mtime) every blob before it commits the entry that references it, and the commit re-checks that
 * the blobs exist inside its write transaction. The sweep deletes a blob only inside a write
 * transaction that sees no reference to it and an mtime older than the grace period, so a blob
 * that a run is about to reference is either still fresh (kept) or already referenced (kept); in
 * the worst interleaving the run's commit finds the blob gone and the run is simply not cached.
 */
export async function collectGarbage(store: Store, o: GcOptions): Promise<GcReport> {
  const grace = o.graceMs ?? DEFAULT_GRACE_MS;
  const evictOptions = { ...o, enforceEntrySize: true };
  let evicted = await evict(store, evictOptions);
  let refsRepaired = 0;
  let missingBlobs = 0;
  if (!o.dryRun) {
    const recount = await store.recountRefs();
    refsRepaired = recount.repaired;
    missingBlobs = recount.missing.length;
    if (refsRepaired > 0) evicted = addReports(evicted, await evict(store, evictOptions));
  }
  const { orphanBlobs, staleTmp, staleHot } = await sweep(store, o.now - grace, o.dryRun === true);
  return { evicted, orphanBlobs, staleTmp, staleHot, refsRepaired, missingBlobs, dryRun: o.dryRun === true };
}

/** Two evictions in a row as one. */
function addReports(a: EvictReport, b: EvictReport): EvictReport {
  const byReason = { ...a.byReason };
  for (const [reason, t] of Object.entries(b.byReason) as Array<[keyof typeof byReason, Tally]>)
    byReason[reason] = {
      entries: byReason[reason].entries + t.entries,
      bytes: byReason[reason].bytes + t.bytes,
    };
  return {
    byReason,
    entries: a.entries + b.entries,
    bytes: a.bytes + b.bytes,
    usageBefore: a.usageBefore,
    usageAfter: b.usageAfter,
    complete: b.complete,
  };
}

/** Deletes unreferenced blobs and dead processes' temp files not modified since `olderThan`. */
export async function sweep(
  store: Store,
  olderThan: number,
  dryRun: boolean,
): Promise<{ orphanBlobs: SweepTally; staleTmp: SweepTally; staleHot: SweepTally }> {
  const orphanBlobs = await sweepOrphanBlobs(store, olderThan, dryRun);
  const staleTmp = sweepTmp(store.layout.tmp, olderThan, dryRun);
  // Manifest age is real time: an injected clock (TASKVAULT_NOW_MS) ages entries, not files.
  const staleHot = sweepHot(store, Date.now() - MANIFEST_UNUSED_MS, dryRun);
  return { orphanBlobs, staleTmp, staleHot };
}

/** A manifest rewritten this long ago is probably for globs no task uses any more. */
const MANIFEST_UNUSED_MS = 30 * 24 * 60 * 60_000;

/**
 * Hot entry copies whose key the index no longer has (left by a process that died between removing
 * an entry and its copy), and manifests not rewritten since `manifestsBefore`: deleting one of those
 * only costs its glob set one slower run.
 */
function sweepHot(store: Store, manifestsBefore: number, dryRun: boolean): SweepTally {
  const total: SweepTally = { files: 0, bytes: 0 };
  const drop = (path: string, size: number) => {
    try {
      if (!dryRun) unlinkSync(path);
      total.files++;
      total.bytes += size;
    } catch {
      // gone already
    }
  };
  for (const key of listDir(store.layout.hot)) {
    if (store.hasEntry(key)) continue;
    const path = join(store.layout.hot, key);
    drop(path, statOrUndefined(path)?.size ?? 0);
  }
  for (const id of listDir(store.layout.manifests)) {
    const path = join(store.layout.manifests, id);
    const s = statOrUndefined(path);
    if (s && s.mtimeMs < manifestsBefore) drop(path, s.size);
  }
  return total;
}

/** Blob files that no entry references and that are older than `olderThan` (epoch ms). */
async function sweepOrphanBlobs(store: Store, olderThan: number, dryRun: boolean): Promise<SweepTally> {
  const total: SweepTally = { files: 0, bytes: 0 };
  let batch: string[] = [];
  const flush = async () => {
    const r = await store.removeOrphanBlobs(batch, olderThan);
    total.files += r.blobs;
    total.bytes += r.bytes;
    batch = [];
  };
  for (const fan of listDir(store.blobs.dir)) {
    for (const name of listDir(join(store.blobs.dir, fan))) {
      const hash = fan + name;
      // Not a blob (a stray file: an editor's, NFS's .nfs*): not ours to delete.
      if (!isBlobName(hash)) continue;
      // A cheap first filter outside any transaction; removeOrphanBlobs re-checks both conditions.
      if (store.refCount(hash) > 0) continue;
      const s = statOrUndefined(store.blobs.path(hash));
      if (!s || s.mtimeMs >= olderThan) continue;
      if (dryRun) {
        total.files++;
        total.bytes += s.size;
        continue;
      }
      batch.push(hash);
      if (batch.length >= 256) await flush();
    }
  }
  if (batch.length > 0) await flush();
  return total;
}

/** Temp names are `<pid>-<ms>-<rand>.<tag>` (BlobStore.tempPath). */
const TMP_NAME = /^(\d+)-\d+-[0-9a-f]+\./;

/**
 * Temp files of processes that are gone. A file is deleted only when its writer's pid is not
 * alive AND it has not been modified for the grace period: a live writer (even a silent one whose
 * log file has not grown for hours) keeps its file, and a recycled pid errs on the side of keeping.
 */
function sweepTmp(dir: string, olderThan: number, dryRun: boolean): SweepTally {
  const total: SweepTally = { files: 0, bytes: 0 };
  for (const name of listDir(dir)) {
    const m = TMP_NAME.exec(name);
    const pid = m ? Number(m[1]) : undefined;
    if (pid !== undefined && pidAlive(pid)) continue;
    const path = join(dir, name);
    const s = statOrUndefined(path);
    if (!s || s.mtimeMs >= olderThan) continue;
    try {
      if (!dryRun) unlinkSync(path);
      total.files++;
      total.bytes += s.size;
    } catch {
      // gone already, or not ours to delete
    }
  }
  return total;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return []; // no such dir yet (or unreadable): nothing of ours to sweep there
  }
}

function statOrUndefined(path: string) {
  try {
    const s = statSync(path);
    return s.isFile() ? s : undefined;
  } catch {
    return undefined; // gone meanwhile: nothing to sweep
  }
}

import { AuditLog } from '../store/audit.js';
import { BlobStore, type CheckedBlobs } from '../store/blobs.js';
import type { Entry } from '../store/entry.js';
import type { HotIndex } from '../store/hot.js';
import type { Store } from '../store/store.js';
import { monotonicMs } from '../util/monotonic.js';
import { err, ok, type Result } from '../util/result.js';
import { replayLogs, verifyLogs } from './replay.js';
import { restoreOutputs } from './restore.js';
import type { HitOutcome, RemoteHit, RunContext, RunOptions } from './types.js';

/*
 * Serving a hit: from the entry's copy in hot/ without the index (hotHit), or from an entry the
 * caller read from the index (serveHit, then recordHit). Nothing is restored unless every blob
 * checked out; the logs are replayed only after the outputs are in place.
 */

/**
 * What hot/ says about a key: no copy (undefined), a hit served from it, 'expired' (the index
 * removes the entry), 'damaged' (a copy this version cannot read: the index has the entry), or
 * 'unusable' with the reason when its blobs failed verification (the corrupt blob is already
 * deleted; the caller discards the entry).
 */
export type HotLookup =
  | HitOutcome
  | { kind: 'unusable'; message: string; createdAt: number }
  | { kind: 'expired' | 'damaged' };

/** What a served hit restored. */
export interface Served {
  files: number;
  bytes: number;
  restoreMs: number;
}

/**
 * A hit served from hot/ (store/hot.ts) without loading the index: the entry copy committed under
 * this key, within its TTL, restored and replayed after every blob is verified. Otherwise nothing
 * is restored or printed, and the caller learns why (HotLookup).
 */
export async function hotHit(hot: HotIndex, run: RunContext): Promise<HotLookup | undefined> {
  const { key, o } = run;
  const entry = hot.getEntry(key);
  if (!entry) return undefined;
  if (entry === 'damaged') return { kind: 'damaged' };
  if (entry.createdAt + run.spec.policy.ttlMs <= run.now()) return { kind: 'expired' };
  const blobs = new BlobStore(hot.layout.blobs, hot.layout.tmp);
  const hit = await serveHit(blobs, run.settings.root, entry, o);
  if (!hit.ok) return { kind: 'unusable', message: hit.error, createdAt: entry.createdAt };
  const savedMs = Math.max(0, entry.durationMs - hit.value.restoreMs);
  if (hot.recordHit({ key, at: run.now(), savedMs })) {
    // Opening the index folds the journal (Store.open); failing to is only a missed count.
    const { Store } = await import('../store/store.js');
    const opened = Store.open(run.settings.cacheDir, { warn: (m) => o.reporter.warn(m) });
    // The journal stays for the next open to fold: a failed close loses nothing.
    if (opened.ok) await opened.value.close().catch(() => {});
  }
  new AuditLog(hot.layout.audit).write('HIT', run.source, {
    ...run.logFields,
    files: hit.value.files,
    bytes: hit.value.bytes,
  });
  return {
    kind: 'hit',
    key,
    exitCode: entry.exitCode,
    files: hit.value.files,
    bytes: hit.value.bytes,
    restoreMs: hit.value.restoreMs,
    savedMs,
    origin: 'local',
  };
}

/** Verifies the logs, restores the outputs, replays the logs; a failure says why (and drops a bad blob). */
export async function serveHit(
  blobs: BlobStore,
  root: string,
  entry: Entry,
  o: Pick<RunOptions, 'replayTo'>,
  /** Blobs a pull just checked as it wrote them (see CheckedBlobs). */
  checked?: CheckedBlobs,
): Promise<Result<Served, string>> {
  const started = monotonicMs();
  const logs = await verifyLogs(blobs, entry);
  if (!logs.ok) {
    await blobs.remove(logs.problem.hash);
    return err(`log blob ${logs.problem.kind}: ${logs.problem.detail}`);
  }
  const restored = await restoreOutputs(blobs, entry, root, checked);
  if (!restored.ok) {
    if (restored.kind === 'blob') {
      await blobs.remove(restored.problem.hash);
      return err(`output blob ${restored.problem.kind}: ${restored.problem.detail}`);
    }
    return err(restored.message);
  }
  await replayLogs(blobs, entry, logs.logs, o.replayTo);
  return ok({ files: restored.files, bytes: restored.bytes, restoreMs: monotonicMs() - started });
}

/**
 * An entry from the index served and booked (recordHit), or, when it cannot be served, discarded
 * with a warning that names what comes `next`: undefined then.
 */
export async function serveIndexed(
  store: Store,
  run: RunContext,
  entry: Entry,
  o: { pulled?: Pick<RemoteHit, 'ms' | 'checked'>; next: Parameters<typeof discardEntry>[3] },
): Promise<HitOutcome | undefined> {
  const hit = await serveHit(store.blobs, run.settings.root, entry, run.o, o.pulled?.checked);
  if (hit.ok) return recordHit(store, entry, hit.value, run, o.pulled?.ms);
  await discardEntry(store, run, { why: hit.error, createdAt: entry.createdAt }, o.next);
  return undefined;
}

/** Books a served hit (access time, counters, audit) and builds its outcome. */
export function recordHit(
  store: Store,
  entry: Entry,
  hit: Served,
  run: RunContext,
  /** Set for a hit pulled from the team cache: how long the download took. */
  pulledMs?: number,
): HitOutcome {
  const pulled = pulledMs !== undefined;
  // A remote hit's time includes the download.
  const restoreMs = pulled ? hit.restoreMs + pulledMs : hit.restoreMs;
  store.recordHit(entry.key, { now: run.now(), savedMs: entry.durationMs - restoreMs, remote: pulled });
  store.log('HIT', run.source, {
    ...run.logFields,
    files: hit.files,
    bytes: hit.bytes,
    origin: pulled ? 'remote' : undefined,
  });
  return {
    kind: 'hit',
    key: entry.key,
    exitCode: entry.exitCode,
    files: hit.files,
    bytes: hit.bytes,
    restoreMs,
    savedMs: Math.max(0, entry.durationMs - restoreMs),
    origin: pulled ? 'remote' : 'local',
  };
}

/**
 * A cached entry that cannot be served: say why and what comes next, log it, drop it. Only the
 * entry that was judged (`createdAt`) goes: another process may have saved the key again since,
 * and the blob this one missed may be one that re-save replaced.
 */
export async function discardEntry(
  store: Store,
  run: RunContext,
  judged: { why: string; createdAt: number },
  next: 'running the command' | 'trying the team cache',
): Promise<void> {
  run.o.reporter.warn(`cached result for ${run.key.slice(0, 12)} not used: ${judged.why}; ${next}`);
  store.log('ERROR', run.source, { ...run.logFields, error: judged.why });
  await store.remove(run.key, 'removed', judged.createdAt);
}

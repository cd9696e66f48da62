import type { Settings, TaskSpec } from '../config/resolve.js';
import { AuditLog } from '../store/audit.js';
import { BlobStore } from '../store/blobs.js';
import type { Entry } from '../store/entry.js';
import type { HotIndex } from '../store/hot.js';
import type { Store } from '../store/store.js';
import { monotonicMs } from '../util/monotonic.js';
import { replayLogs, verifyLogs } from './replay.js';
import { restoreOutputs } from './restore.js';
import type { RunOptions, RunOutcome } from './run-task.js';

/*
 * Serving a hit: from the entry's copy in hot/ without the index (hotHit), or from an entry the
 * caller read from the index (serveHit, then recordHit). Nothing is restored unless every blob
 * checked out; the logs are replayed only after the outputs are in place.
 */

/**
 * A hit served from hot/ (store/hot.ts) without loading the index: the entry copy committed under
 * this key, within its TTL, restored and replayed after every blob is verified. Otherwise nothing
 * is restored or printed, and the caller learns why: no copy (undefined), 'expired' (the index
 * removes the entry), 'damaged' (a copy this version cannot read: the index has the entry), or
 * 'unusable' with the reason when its blobs failed verification (the corrupt blob is already
 * deleted; the caller reports it and drops the entry).
 */
export async function hotHit(
  hot: HotIndex,
  settings: Settings,
  spec: TaskSpec,
  key: string,
  logFields: Record<string, string>,
  o: RunOptions,
): Promise<RunOutcome | { kind: 'unusable'; message: string } | { kind: 'expired' | 'damaged' } | undefined> {
  const entry = hot.getEntry(key);
  const now = o.now ?? Date.now;
  if (!entry) return undefined;
  if (entry === 'damaged') return { kind: 'damaged' };
  if (entry.createdAt + spec.policy.ttlMs <= now()) return { kind: 'expired' };
  const blobs = new BlobStore(hot.layout.blobs, hot.layout.tmp);
  const hit = await serveHit(blobs, settings.root, entry, o);
  if (!hit.ok) return { kind: 'unusable', message: hit.message };
  const savedMs = Math.max(0, entry.durationMs - hit.restoreMs);
  if (hot.recordHit({ key, at: now(), savedMs })) {
    // Opening the index folds the journal (Store.open); failing to is only a missed count.
    const { Store } = await import('../store/store.js');
    const opened = Store.open(settings.cacheDir, { warn: (m) => o.reporter.warn(m) });
    if (opened.ok) await opened.value.close().catch(() => {});
  }
  new AuditLog(hot.layout.audit).write('HIT', o.source ?? 'run', {
    ...logFields,
    files: hit.files,
    bytes: hit.bytes,
  });
  return {
    kind: 'hit',
    key,
    exitCode: entry.exitCode,
    files: hit.files,
    bytes: hit.bytes,
    restoreMs: hit.restoreMs,
    savedMs,
    origin: 'local',
  };
}

export async function serveHit(
  blobs: BlobStore,
  root: string,
  entry: Entry,
  o: RunOptions,
): Promise<{ ok: true; files: number; bytes: number; restoreMs: number } | { ok: false; message: string }> {
  const started = monotonicMs();
  const logs = await verifyLogs(blobs, entry);
  if (!logs.ok) {
    await blobs.remove(logs.problem.hash);
    return { ok: false, message: `log blob ${logs.problem.kind}: ${logs.problem.detail}` };
  }
  const restored = await restoreOutputs(blobs, entry, root);
  if (!restored.ok) {
    if (restored.kind === 'blob') {
      await blobs.remove(restored.problem.hash);
      return { ok: false, message: `output blob ${restored.problem.kind}: ${restored.problem.detail}` };
    }
    return { ok: false, message: restored.message };
  }
  await replayLogs(blobs, entry, logs.logs, o.replayTo);
  return { ok: true, files: restored.files, bytes: restored.bytes, restoreMs: monotonicMs() - started };
}

/** Books a served hit (access time, counters, audit) and builds its outcome. */
export function recordHit(
  store: Store,
  entry: Entry,
  hit: { files: number; bytes: number; restoreMs: number },
  logFields: Record<string, string>,
  o: RunOptions,
  /** Set for a hit pulled from the team cache: how long the download took. */
  pulledMs?: number,
): RunOutcome {
  const pulled = pulledMs !== undefined;
  if (pulled) hit.restoreMs += pulledMs; // a remote hit's time includes the download
  store.recordHit(entry.key, {
    now: (o.now ?? Date.now)(),
    savedMs: entry.durationMs - hit.restoreMs,
    remote: pulled,
  });
  store.log('HIT', o.source ?? 'run', {
    ...logFields,
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
    restoreMs: hit.restoreMs,
    savedMs: Math.max(0, entry.durationMs - hit.restoreMs),
    origin: pulled ? 'remote' : 'local',
  };
}

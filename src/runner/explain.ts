import type { Settings, TaskSpec } from '../config/resolve.js';
import { diffFingerprints, type FingerprintChange } from '../fingerprint/diff.js';
import { type Fingerprint, fingerprintTask } from '../fingerprint/fingerprint.js';
import type { Entry } from '../store/entry.js';
import { Store } from '../store/store.js';
import type { Result } from '../util/result.js';
import { err, ok } from '../util/result.js';
import { taskKeyLabel } from './types.js';

/** What the newest earlier entry of the same task was, and how the current state differs from it. */
export interface Comparison {
  key: string;
  /** Gone when that entry has since been evicted, expired or removed. */
  entry?: Entry;
  fingerprint?: Fingerprint;
  changes: FingerprintChange[];
}

export interface Explanation {
  key: string;
  fingerprint: Fingerprint;
  /** 'expired': an entry exists under this key but is past its TTL, so the next run misses. */
  status: 'hit' | 'miss' | 'expired';
  entry?: Entry;
  hits?: number;
  lastAccess?: number;
  /** On a would-miss: the most recent entry of the same task (undefined if there never was one). */
  previous?: Comparison;
}

/**
 * `taskvault explain`: fingerprints the task as `run` would and looks the key up, running nothing and
 * changing nothing in the index (a cache directory that does not exist yet is not created).
 */
export async function explainTask(
  settings: Settings,
  spec: TaskSpec,
  now = Date.now(),
): Promise<Result<Explanation>> {
  let store: Store | undefined;
  if (Store.exists(settings.cacheDir)) {
    const opened = Store.open(settings.cacheDir);
    if (!opened.ok) return opened;
    store = opened.value;
  }
  try {
    const fp = await fingerprintTask(spec, {
      algorithm: settings.hashAlgorithm,
      salt: settings.salt,
      cacheDir: settings.cacheDir,
      ...(store ? { manifests: store.manifestStore() } : {}),
    });
    if (!fp.ok) return err(fp.error);
    const { key, fingerprint } = fp.value;
    const entry = store?.getEntry(key);
    if (store && entry) {
      const e: Explanation = {
        key,
        fingerprint,
        status: entry.createdAt + spec.policy.ttlMs <= now ? 'expired' : 'hit',
        entry,
        hits: store.hitCount(key),
      };
      const last = store.lastAccess(key);
      if (last !== undefined) e.lastAccess = last;
      return ok(e);
    }
    const e: Explanation = { key, fingerprint, status: 'miss' };
    const prevKey = store?.latestKey(taskKeyLabel(spec));
    if (store && prevKey) {
      const prevFp = store.getFingerprint(prevKey);
      const prevEntry = store.getEntry(prevKey);
      e.previous = { key: prevKey, changes: prevFp ? diffFingerprints(prevFp, fingerprint) : [] };
      if (prevFp) e.previous.fingerprint = prevFp;
      if (prevEntry) e.previous.entry = prevEntry;
    }
    return ok(e);
  } finally {
    if (store) {
      // explain only reads: nothing of the user's is lost if flushing or closing fails.
      await store.flush().catch(() => {});
      await store.close().catch(() => {});
    }
  }
}

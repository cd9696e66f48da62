import type { Settings, TaskSpec } from '../config/resolve.js';
import type { Fingerprint } from '../fingerprint/fingerprint.js';
import type { Reporter } from '../runner/run-task.js';
import type { Entry } from '../store/entry.js';
import type { Store } from '../store/store.js';
import { monotonicMs } from '../util/monotonic.js';

/**
 * The two places the run pipeline meets the team cache. The remote code (and, for s3://, its signer)
 * is imported here on first use only: a local hit never loads it.
 */
export async function pullRemote(
  settings: Settings,
  store: Store,
  spec: TaskSpec,
  fp: { key: string; fingerprint: Fingerprint },
  label: string,
  reporter: Reporter,
  now: number,
): Promise<{ entry: Entry; ms: number } | undefined> {
  if (!settings.remote) return undefined;
  const started = monotonicMs();
  const { pullFromRemote } = await import('./sync.js');
  const entry = await pullFromRemote({
    remote: settings.remote,
    store,
    root: settings.root,
    key: fp.key,
    fingerprint: fp.fingerprint,
    label,
    policy: spec.policy,
    reporter,
    now,
  });
  return entry && { entry, ms: monotonicMs() - started };
}

export async function pushRemote(
  settings: Settings,
  store: Store,
  entry: Entry,
  reporter: Reporter,
): Promise<void> {
  if (!settings.remote) return;
  const { pushToRemote } = await import('./sync.js');
  await pushToRemote({ remote: settings.remote, store, entry, reporter });
}

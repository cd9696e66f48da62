import type { Policy, Settings } from '../config/resolve.js';
import type { Durability } from '../config/types.js';
import type { Fingerprint } from '../fingerprint/fingerprint.js';
import type { CheckedBlobs } from '../store/blobs.js';
import type { Entry } from '../store/entry.js';
import type { Store } from '../store/store.js';
import { monotonicMs } from '../util/monotonic.js';
import type { Reporter } from '../util/reporter.js';
import { errorMessage } from '../util/result.js';
import type { RemoteSettings } from './settings.js';

/*
 * The team cache as the runner sees it: an implementation of the runner's RemoteTier interface
 * (runner/types.ts), which matches it by shape, so that neither folder imports the other. The
 * entry points (cli run, sdk, watch) build it with remoteTier() and pass it to runTask.
 *
 * This module is on every run's path and stays light: the remote code (sync.ts, the backends,
 * node:crypto, and for s3:// its signer) is imported on the first pull or push only, so a local
 * hit never loads it.
 */

/** The remote code, loaded on first use; a failure to load it is a warning, never the run's end. */
async function loaded(reporter: Reporter): Promise<typeof import('./sync.js') | undefined> {
  try {
    return await import('./sync.js');
  } catch (e) {
    reporter.warn(`remote cache: cannot load its code: ${errorMessage(e)}; continuing with the local cache`);
    return undefined;
  }
}

/** A remote cache, pulled from after a local miss and pushed to after a local commit. */
export class RemoteCacheTier {
  constructor(
    private readonly remote: RemoteSettings,
    /** The project root: a pulled entry's paths are checked against it before any download. */
    private readonly root: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
    /** The config's `durability`, for what a pull writes (PullRequest.durability). */
    private readonly durability?: Durability,
  ) {}

  async pull(r: {
    store: Store;
    key: string;
    fingerprint: Fingerprint;
    label: string;
    policy: Policy;
    reporter: Reporter;
    now: number;
  }): Promise<{ entry: Entry; checked: CheckedBlobs; ms: number } | undefined> {
    const started = monotonicMs();
    const code = await loaded(r.reporter);
    const pulled = await code?.pullFromRemote({
      ...r,
      remote: this.remote,
      root: this.root,
      env: this.env,
      ...(this.durability && { durability: this.durability }),
    });
    return pulled && { ...pulled, ms: monotonicMs() - started };
  }

  async push(entry: Entry, via: { store: Store; reporter: Reporter }): Promise<void> {
    if (this.remote.readOnly) return;
    const code = await loaded(via.reporter);
    await code?.pushToRemote({ ...via, entry, remote: this.remote, env: this.env });
  }
}

/** The tier for these settings; undefined when no remote is configured. */
export function remoteTier(
  settings: Pick<Settings, 'remote' | 'root' | 'durability'>,
  env?: NodeJS.ProcessEnv,
): RemoteCacheTier | undefined {
  return settings.remote
    ? new RemoteCacheTier(settings.remote, settings.root, env, settings.durability)
    : undefined;
}

import type { RemoteResult } from './backend.js';

/** One object in a namespace of a remote that can list: its key, bytes and last write. */
export interface ListedObject {
  key: string;
  size: number;
  modifiedMs: number;
}

/**
 * What `taskvault gc --remote` needs beyond RemoteBackend, from the remotes that can list (S3,
 * Azure Blob, WebDAV). The token APIs (Turborepo, Nx) and bazel-remote cannot: their servers keep
 * their own retention.
 */
export interface RemoteListing {
  readonly label: string;
  list(kind: 'ac' | 'cas'): Promise<RemoteResult<ListedObject[]>>;
  /** Deleting what is already gone is success. */
  remove(kind: 'ac' | 'cas', key: string): Promise<RemoteResult<void>>;
}

/** Keys we wrote: hex names only, so that nothing else sharing the prefix is ever listed or deleted. */
export const OUR_KEY = /^[0-9a-f]{32,128}$/;

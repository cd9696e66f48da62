import type { Readable } from 'node:stream';

/*
 * The types every remote backend shares, and nothing else: each backend file imports them from
 * here, and the factory that picks one (open-backend.ts) imports the backends, so no loop.
 */

/**
 * Why a remote request did not work. `retryable`: worth trying again (network, timeout, 5xx, 429).
 * `stop`: no point asking this remote again during this run (unreachable, no credentials).
 */
export interface RemoteProblem {
  message: string;
  retryable: boolean;
  stop?: boolean;
  status?: number;
}

export type RemoteResult<T> = { ok: true; value: T } | { ok: false; problem: RemoteProblem };

export const done = <T>(value: T): RemoteResult<T> => ({ ok: true, value });
export const problem = (p: RemoteProblem): { ok: false; problem: RemoteProblem } => ({
  ok: false,
  problem: p,
});

/**
 * A remote cache as TaskVault needs it: the two namespaces of Bazel's HTTP cache layout. Entries
 * (`ac/<key>`) are small documents read and written whole; blobs (`cas/<sha256>`) are streamed from
 * and to files. A new backend is one file implementing this, plus a line in
 * open-backend.ts.
 */
export interface RemoteBackend {
  /** For messages: the URL without credentials. */
  readonly label: string;
  /** undefined: the remote has no such entry. */
  getEntry(key: string): Promise<RemoteResult<Buffer | undefined>>;
  putEntry(key: string, body: Buffer): Promise<RemoteResult<void>>;
  hasBlob(key: string): Promise<RemoteResult<boolean>>;
  /**
   * Streams a blob into `consume` (which may be called again on a retry, and must start over).
   * false: the remote has no such blob.
   */
  getBlob(key: string, consume: (body: Readable) => Promise<void>): Promise<RemoteResult<boolean>>;
  /** Uploads `size` bytes from `file`; `key` is the SHA-256 of exactly those bytes. */
  putBlob(key: string, file: string, size: number): Promise<RemoteResult<void>>;
}

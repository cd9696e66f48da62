import type { Readable } from 'node:stream';
import type { RemoteSettings } from './settings.js';

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
 * and to files. A new backend is one file implementing this.
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

/**
 * Picks the backend for a URL; each backend's code (and S3's signer) loads only when used. Every
 * backend comes back write-once (./write-once.ts): an entry already on the remote is never replaced.
 */
export async function openBackend(
  s: RemoteSettings,
  env: NodeJS.ProcessEnv,
): Promise<RemoteResult<RemoteBackend>> {
  const opened = await pickBackend(s, env);
  if (!opened.ok) return opened;
  const { writeOnce } = await import('./write-once.js');
  return done(writeOnce(opened.value));
}

async function pickBackend(s: RemoteSettings, env: NodeJS.ProcessEnv): Promise<RemoteResult<RemoteBackend>> {
  const api = /^(turbo|nx)\+/i.exec(s.url)?.[1]?.toLowerCase() ?? s.protocol ?? 'bazel';
  let url: URL;
  try {
    url = new URL(s.url.replace(/^(turbo|nx)\+/i, ''));
  } catch {
    return problem({
      message: `remote url ${JSON.stringify(s.url)} is not a URL`,
      retryable: false,
      stop: true,
    });
  }
  if ((url.protocol === 'http:' || url.protocol === 'https:') && api === 'turbo') {
    const { openTurboBackend } = await import('./turbo.js');
    return openTurboBackend(url, s);
  }
  if ((url.protocol === 'http:' || url.protocol === 'https:') && api === 'nx') {
    const { NxBackend } = await import('./nx.js');
    return done(new NxBackend(url, s));
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    const { HttpBackend } = await import('./http.js');
    return done(new HttpBackend(url, s));
  }
  if (url.protocol === 's3:') {
    const { openS3Backend } = await import('./s3.js');
    return openS3Backend(url, s, env);
  }
  if (url.protocol === 'azure:') {
    const { openAzureBackend } = await import('./azure.js');
    return openAzureBackend(url, s, env);
  }
  return problem({
    message: `remote url ${url.protocol}//… is not supported (use http(s)://, s3://, azure://, turbo+http(s):// or nx+http(s)://)`,
    retryable: false,
    stop: true,
  });
}

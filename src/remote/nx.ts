import type { Readable } from 'node:stream';
import { RateLimit, tokenApiProblem } from './api-status.js';
import { done, problem, type RemoteBackend, type RemoteResult } from './backend.js';
import { blobReply, entryReply } from './replies.js';
import type { RemoteSettings } from './settings.js';
import { discard, redact, send } from './transport.js';
import type { KeepsFirst } from './write-once.js';

/**
 * Nx's self-hosted remote cache API (its OpenAPI spec, Nx 20.8+): GET and PUT
 * <base>/v1/cache/<hash>, optional Bearer token. Entries are records `ac-<key>`, blobs `cas-<sha256>`.
 * The spec forbids overwriting: a PUT of an existing record is 409, which is success here (the
 * entry is write-once anyway). A 403 on PUT is a read-only token: reads go on, writes stop.
 */
export class NxBackend implements RemoteBackend, KeepsFirst {
  readonly label: string;
  readonly keepsFirst = true;
  private readonly base: string;
  private readonly headers: Record<string, string> = {};
  private readonly timeoutMs: number;
  /** Set after a 403 on PUT: the token may read but not write, so uploads stop quietly. */
  private readOnly = false;

  constructor(url: URL, s: RemoteSettings) {
    this.base = redact(url).replace(/\/$/, '');
    this.label = `nx+${this.base}`;
    if (s.token) this.headers.authorization = `Bearer ${s.token}`;
    this.timeoutMs = s.timeoutMs;
  }

  private url(id: string): URL {
    return new URL(`${this.base}/v1/cache/${id}`);
  }

  private readonly rateLimit = new RateLimit();
  private failed = async (
    method: string,
    url: URL,
    status: number,
    body: import('node:http').IncomingMessage,
  ) => this.rateLimit.note(await tokenApiProblem('Nx', method, url, status, body));

  async getEntry(key: string): Promise<RemoteResult<Buffer | undefined>> {
    const url = this.url(`ac-${key}`);
    const r = await send({ method: 'GET', url, headers: this.headers, timeoutMs: this.timeoutMs });
    return entryReply(url, r, this.failed);
  }

  putEntry(key: string, body: Buffer): Promise<RemoteResult<void>> {
    return this.put(`ac-${key}`, { bytes: body });
  }

  /**
   * The spec has no HEAD: a GET whose body is dropped at once. At most a socket buffer of the blob
   * crosses the network; the connection is not reused.
   */
  async hasBlob(key: string): Promise<RemoteResult<boolean>> {
    const url = this.url(`cas-${key}`);
    const r = await send({ method: 'GET', url, headers: this.headers, timeoutMs: this.timeoutMs });
    if (!r.ok) return r;
    const { status, body } = r.value;
    if (status === 200) {
      body.destroy();
      return done(true);
    }
    if (status === 404) {
      discard(body);
      return done(false);
    }
    return this.failed('GET', url, status, body);
  }

  async getBlob(key: string, consume: (body: Readable) => Promise<void>): Promise<RemoteResult<boolean>> {
    const url = this.url(`cas-${key}`);
    const r = await send({ method: 'GET', url, headers: this.headers, timeoutMs: this.timeoutMs });
    return blobReply(url, r, consume, this.failed);
  }

  putBlob(key: string, file: string, size: number): Promise<RemoteResult<void>> {
    return this.put(`cas-${key}`, { file, size });
  }

  private async put(id: string, body: { bytes: Buffer } | { file: string; size: number }) {
    if (this.readOnly) return done(undefined);
    const url = this.url(id);
    const r = await send({
      method: 'PUT',
      url,
      headers: { ...this.headers, 'content-type': 'application/octet-stream' },
      body,
      timeoutMs: this.timeoutMs,
    });
    if (!r.ok) return r;
    const { status, body: res } = r.value;
    // 200 (spec), 202 (later revisions of it); 409: the record exists and is kept.
    if ((status >= 200 && status < 300) || status === 409) {
      discard(res);
      return done(undefined);
    }
    if (status === 403 && this.headers.authorization) {
      this.readOnly = true;
      discard(res);
      return problem({
        message: `PUT ${redact(url)}: HTTP 403: the Nx token is read-only; reading from the remote, not writing to it for the rest of this run`,
        retryable: false,
        status,
      });
    }
    return this.failed('PUT', url, status, res);
  }
}

import type { Readable } from 'node:stream';
import { done, type RemoteBackend, type RemoteResult } from './backend.js';
import type { RemoteSettings } from './settings.js';
import { discard, readAll, redact, send, statusProblem } from './transport.js';
import { isPermanent } from './wire.js';

/** Remote entries are small JSON documents; anything bigger is not ours. */
export const MAX_ENTRY_BYTES = 64 * 1024 * 1024;

/**
 * Bazel's HTTP remote cache layout: GET/PUT/HEAD on <base>/ac/<key> and <base>/cas/<sha256>.
 * Served by nginx with WebDAV PUT, bazel-remote, and other servers of that protocol.
 * Auth: a Bearer token (TASKVAULT_REMOTE_TOKEN or config), else basic auth from the URL's userinfo
 * or TASKVAULT_REMOTE_USER/TASKVAULT_REMOTE_PASSWORD.
 */
export class HttpBackend implements RemoteBackend {
  readonly label: string;
  private readonly base: string;
  private readonly headers: Record<string, string> = {};
  private readonly timeoutMs: number;

  constructor(url: URL, s: RemoteSettings) {
    const user = url.username ? decodeURIComponent(url.username) : s.username;
    const pass = url.password ? decodeURIComponent(url.password) : s.password;
    if (s.token) this.headers.authorization = `Bearer ${s.token}`;
    else if (user !== undefined)
      this.headers.authorization = `Basic ${Buffer.from(`${user}:${pass ?? ''}`).toString('base64')}`;
    this.label = redact(url).replace(/\/$/, '');
    const clean = new URL(this.label);
    this.base = clean.href.replace(/\/$/, '');
    this.timeoutMs = s.timeoutMs;
  }

  private url(kind: 'ac' | 'cas', key: string): URL {
    return new URL(`${this.base}/${kind}/${key}`);
  }

  async getEntry(key: string): Promise<RemoteResult<Buffer | undefined>> {
    const url = this.url('ac', key);
    const r = await send({ method: 'GET', url, headers: this.headers, timeoutMs: this.timeoutMs });
    if (!r.ok) return r;
    const { status, body } = r.value;
    if (status === 404) {
      discard(body);
      return done(undefined);
    }
    if (status !== 200) {
      discard(body);
      return statusProblem('GET', url, status);
    }
    try {
      return done(await readAll(body, MAX_ENTRY_BYTES));
    } catch (e) {
      return {
        ok: false,
        problem: { message: `GET ${redact(url)}: ${(e as Error).message}`, retryable: !isPermanent(e) },
      };
    }
  }

  putEntry(key: string, body: Buffer): Promise<RemoteResult<void>> {
    return this.put(this.url('ac', key), { bytes: body });
  }

  async hasBlob(key: string): Promise<RemoteResult<boolean>> {
    const url = this.url('cas', key);
    const r = await send({ method: 'HEAD', url, headers: this.headers, timeoutMs: this.timeoutMs });
    if (!r.ok) return r;
    discard(r.value.body);
    if (r.value.status === 200) return done(true);
    if (r.value.status === 404) return done(false);
    return statusProblem('HEAD', url, r.value.status);
  }

  async getBlob(key: string, consume: (body: Readable) => Promise<void>): Promise<RemoteResult<boolean>> {
    const url = this.url('cas', key);
    const r = await send({ method: 'GET', url, headers: this.headers, timeoutMs: this.timeoutMs });
    if (!r.ok) return r;
    const { status, body } = r.value;
    if (status === 404) {
      discard(body);
      return done(false);
    }
    if (status !== 200) {
      discard(body);
      return statusProblem('GET', url, status);
    }
    try {
      await consume(body);
      return done(true);
    } catch (e) {
      body.destroy();
      return {
        ok: false,
        problem: { message: `GET ${redact(url)}: ${(e as Error).message}`, retryable: !isPermanent(e) },
      };
    }
  }

  putBlob(key: string, file: string, size: number): Promise<RemoteResult<void>> {
    return this.put(this.url('cas', key), { file, size });
  }

  private async put(
    url: URL,
    body: { bytes: Buffer } | { file: string; size: number },
  ): Promise<RemoteResult<void>> {
    const r = await send({
      method: 'PUT',
      url,
      headers: { ...this.headers, 'content-type': 'application/octet-stream' },
      body,
      timeoutMs: this.timeoutMs,
    });
    if (!r.ok) return r;
    const { status, body: res } = r.value;
    const text =
      status >= 400 ? (await readAll(res, 4096).catch(() => Buffer.alloc(0))).toString().trim() : '';
    if (status < 400) discard(res);
    // 200 (bazel-remote), 201 created / 204 replaced (nginx WebDAV).
    if (status >= 200 && status < 300) return done(undefined);
    return statusProblem('PUT', url, status, text.split('\n')[0]?.slice(0, 120));
  }
}

import type { Readable } from 'node:stream';
import { done, type RemoteBackend, type RemoteResult } from './backend.js';
import { blobReply, entryReply, existsReply } from './replies.js';
import type { RemoteSettings } from './settings.js';
import { discard, readAll, redact, send, statusProblem } from './transport.js';
import type { HasEntry } from './write-once.js';

/**
 * Bazel's HTTP remote cache layout: GET/PUT/HEAD on <base>/ac/<key> and <base>/cas/<sha256>.
 * Served by nginx with WebDAV PUT, bazel-remote, and other servers of that protocol.
 * Auth: a Bearer token (TASKVAULT_REMOTE_TOKEN or config), else basic auth from the URL's userinfo
 * or TASKVAULT_REMOTE_USER/TASKVAULT_REMOTE_PASSWORD.
 */
export class HttpBackend implements RemoteBackend, HasEntry {
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

  private get(url: URL, method: 'GET' | 'HEAD' = 'GET') {
    return send({ method, url, headers: this.headers, timeoutMs: this.timeoutMs });
  }

  async getEntry(key: string): Promise<RemoteResult<Buffer | undefined>> {
    const url = this.url('ac', key);
    return entryReply(url, await this.get(url));
  }

  putEntry(key: string, body: Buffer): Promise<RemoteResult<void>> {
    return this.put(this.url('ac', key), { bytes: body });
  }

  /** HEAD /ac/<key>: whether the entry is there, without fetching it (write-once.ts). */
  async hasEntry(key: string): Promise<RemoteResult<boolean>> {
    const url = this.url('ac', key);
    return existsReply(url, await this.get(url, 'HEAD'));
  }

  async hasBlob(key: string): Promise<RemoteResult<boolean>> {
    const url = this.url('cas', key);
    return existsReply(url, await this.get(url, 'HEAD'));
  }

  async getBlob(key: string, consume: (body: Readable) => Promise<void>): Promise<RemoteResult<boolean>> {
    const url = this.url('cas', key);
    return blobReply(url, await this.get(url), consume);
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
    // The error body only adds detail to the message: unreadable, the status alone says it.
    const text =
      status >= 400 ? (await readAll(res, 4096).catch(() => Buffer.alloc(0))).toString().trim() : '';
    if (status < 400) discard(res);
    // 200 (bazel-remote), 201 created / 204 replaced (nginx WebDAV).
    if (status >= 200 && status < 300) return done(undefined);
    return statusProblem('PUT', url, status, text.split('\n')[0]?.slice(0, 120));
  }
}

import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { RateLimit, tokenApiProblem } from './api-status.js';
import { done, problem, type RemoteBackend, type RemoteProblem, type RemoteResult } from './backend.js';
import { blobReply, entryReply, existsReply } from './replies.js';
import type { RemoteSettings } from './settings.js';
import { discard, readAll, redact, send } from './transport.js';
import type { HasEntry } from './write-once.js';

/**
 * The Turborepo remote cache API (Vercel's, and servers of it such as the `turborepo-remote-cache`
 * npm package): GET/HEAD/PUT <base>/v8/artifacts/<id>?teamId|slug=…, Authorization: Bearer.
 * Entries are the artifacts `ac-<key>`, blobs `cas-<sha256>`, both in the team's space.
 */
export function openTurboBackend(url: URL, s: RemoteSettings): RemoteResult<RemoteBackend> {
  if (!s.token)
    return problem({
      message:
        'the Turborepo remote needs a token: set TASKVAULT_REMOTE_TOKEN (the server’s TURBO_TOKEN, or a Vercel access token)',
      retryable: false,
      stop: true,
    });
  return done(new TurboBackend(url, s));
}

/** What GET /v8/artifacts/status may answer besides "enabled" (turbo stops using the cache then). */
const NOT_ENABLED: Record<string, string> = {
  disabled: 'remote caching is disabled for this team',
  over_limit: 'the team is over its remote cache usage limit',
  paused: 'remote caching is paused for this team',
};

export class TurboBackend implements RemoteBackend, HasEntry {
  readonly label: string;
  private readonly base: string;
  private readonly query: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly signatureKey: string | undefined;
  private readonly team: string;
  private readonly sessionId = randomUUID();
  private status: Promise<RemoteProblem | undefined> | undefined;
  /** Set after a 403 on PUT: uploads stop quietly, lookups go on. */
  private readOnly = false;

  constructor(url: URL, s: RemoteSettings) {
    this.label = `turbo+${redact(url).replace(/\/$/, '')}`;
    this.base = redact(url).replace(/\/$/, '');
    this.team = s.team ?? '';
    // As turbo does: a team id (team_…) goes as teamId, anything else is the team's slug.
    this.query = !s.team
      ? ''
      : s.team.startsWith('team_')
        ? `?teamId=${enc(s.team)}`
        : `?slug=${enc(s.team)}`;
    this.headers = { authorization: `Bearer ${s.token}` };
    this.timeoutMs = s.timeoutMs;
    this.signatureKey = s.signatureKey;
  }

  private url(id: string): URL {
    return new URL(`${this.base}/v8/artifacts/${id}${this.query}`);
  }

  /** GET /v8/artifacts/status once per process: a disabled or over-limit team is not asked again. */
  private enabled(): Promise<RemoteProblem | undefined> {
    this.status ??= this.askStatus().then((p) => {
      if (p && !p.stop) this.status = undefined; // a network hiccup: ask again next time
      return p;
    });
    return this.status;
  }

  private async askStatus(): Promise<RemoteProblem | undefined> {
    const url = new URL(`${this.base}/v8/artifacts/status${this.query}`);
    const r = await send({ method: 'GET', url, headers: this.headers, timeoutMs: this.timeoutMs });
    if (!r.ok) return r.problem;
    const { status, body } = r.value;
    if (status === 404) {
      discard(body); // a server without the status route: nothing to learn from it
      return undefined;
    }
    if (status !== 200) return (await tokenApiProblem('Turborepo', 'GET', url, status, body)).problem;
    const text = (await readAll(body, 64 * 1024).catch(() => Buffer.alloc(0))).toString();
    let said: unknown;
    try {
      said = (JSON.parse(text) as { status?: unknown }).status;
    } catch {
      return undefined; // not the API's JSON: let the artifact requests speak for the server
    }
    const why = typeof said === 'string' ? NOT_ENABLED[said] : undefined;
    return why ? { message: `${redact(url)}: ${why}`, retryable: false, stop: true } : undefined;
  }

  private readonly rateLimit = new RateLimit();
  private failed = async (
    method: string,
    url: URL,
    status: number,
    body: import('node:http').IncomingMessage,
  ) => this.rateLimit.note(await tokenApiProblem('Turborepo', method, url, status, body));

  async getEntry(key: string): Promise<RemoteResult<Buffer | undefined>> {
    const off = await this.enabled();
    if (off) return problem(off);
    const id = `ac-${key}`;
    const url = this.url(id);
    const r = await send({ method: 'GET', url, headers: this.headers, timeoutMs: this.timeoutMs });
    const got = await entryReply(url, r, this.failed);
    if (got.ok) this.event(got.value === undefined ? 'MISS' : 'HIT', id, got.value);
    if (!got.ok || got.value === undefined || !this.signatureKey || !r.ok) return got;
    const tag = r.value.headers['x-artifact-tag'];
    if (typeof tag === 'string' && !this.tagMatches(id, got.value, tag))
      return problem({
        message: `GET ${redact(url)}: its x-artifact-tag does not match (signed with another key, or altered)`,
        retryable: false,
      });
    return got;
  }

  async putEntry(key: string, body: Buffer): Promise<RemoteResult<void>> {
    const id = `ac-${key}`;
    const headers: Record<string, string> = { 'x-artifact-duration': String(durationOf(body)) };
    if (this.signatureKey) headers['x-artifact-tag'] = this.tag(id, body);
    return this.put(id, { bytes: body }, headers);
  }

  hasBlob(key: string): Promise<RemoteResult<boolean>> {
    return this.has(`cas-${key}`);
  }

  /** For write-once uploads: HEAD, so the check is neither a download nor a hit/miss event. */
  hasEntry(key: string): Promise<RemoteResult<boolean>> {
    return this.has(`ac-${key}`);
  }

  private async has(id: string): Promise<RemoteResult<boolean>> {
    const off = await this.enabled();
    if (off) return problem(off);
    const url = this.url(id);
    const r = await send({ method: 'HEAD', url, headers: this.headers, timeoutMs: this.timeoutMs });
    if (r.ok && (r.value.status === 401 || r.value.status === 403))
      return this.failed('HEAD', url, r.value.status, r.value.body);
    return existsReply(url, r);
  }

  async getBlob(key: string, consume: (body: Readable) => Promise<void>): Promise<RemoteResult<boolean>> {
    const off = await this.enabled();
    if (off) return problem(off);
    const url = this.url(`cas-${key}`);
    const r = await send({ method: 'GET', url, headers: this.headers, timeoutMs: this.timeoutMs });
    return blobReply(url, r, consume, this.failed);
  }

  async putBlob(key: string, file: string, size: number): Promise<RemoteResult<void>> {
    // Blobs are checked against their SHA-256 on the way in, so we never need their tag; but a
    // server that keeps tags (TURBO_REMOTE_CACHE_SIGNATURE_KEY) serves no untagged artifact.
    const id = `cas-${key}`;
    const headers: Record<string, string> = { 'x-artifact-duration': '0' };
    if (this.signatureKey) headers['x-artifact-tag'] = await this.fileTag(id, file);
    return this.put(id, { file, size }, headers);
  }

  private async put(
    id: string,
    body: { bytes: Buffer } | { file: string; size: number },
    extra: Record<string, string>,
  ): Promise<RemoteResult<void>> {
    if (this.readOnly) return done(undefined);
    const off = await this.enabled();
    if (off) return problem(off);
    const url = this.url(id);
    const r = await send({
      method: 'PUT',
      url,
      headers: { ...this.headers, 'content-type': 'application/octet-stream', ...extra },
      body,
      timeoutMs: this.timeoutMs,
    });
    if (!r.ok) return r;
    const { status, body: res } = r.value;
    if (status >= 200 && status < 300) {
      discard(res);
      return done(undefined);
    }
    if (status === 403 && !this.readOnly) {
      // A read-only token or server (its READ_ONLY mode): keep reading, stop writing.
      const refused = await this.failed('PUT', url, status, res);
      this.readOnly = true;
      return problem({
        ...refused.problem,
        message: `${refused.problem.message.replace(/: the Turborepo token.*$/, '')}: the Turborepo remote is read-only for this token; reading from it, not writing to it for the rest of this run`,
        stop: false,
      });
    }
    return this.failed('PUT', url, status, res);
  }

  /** turbo's x-artifact-tag: base64 HMAC-SHA256 over the artifact id and team, then the body. */
  private tag(id: string, body: Buffer): string {
    return createHmac('sha256', this.signatureKey!)
      .update(id)
      .update(this.team)
      .update(body)
      .digest('base64');
  }

  private async fileTag(id: string, file: string): Promise<string> {
    const mac = createHmac('sha256', this.signatureKey!).update(id).update(this.team);
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }))
      mac.update(chunk as Buffer);
    return mac.digest('base64');
  }

  private tagMatches(id: string, body: Buffer, tag: string): boolean {
    const want = Buffer.from(this.tag(id, body), 'base64');
    const got = Buffer.from(tag, 'base64');
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /**
   * POST /v8/artifacts/events, as turbo reports cache use. Not awaited: it is bookkeeping for the
   * server's analytics, and a lookup must not wait for it; failures are of no consequence.
   */
  private event(event: 'HIT' | 'MISS', hash: string, body: Buffer | undefined): void {
    const url = new URL(`${this.base}/v8/artifacts/events${this.query}`);
    const payload = Buffer.from(
      JSON.stringify([
        {
          sessionId: this.sessionId,
          source: 'REMOTE',
          event,
          hash,
          ...(body ? { duration: durationOf(body) } : {}),
        },
      ]),
    );
    void send({
      method: 'POST',
      url,
      headers: { ...this.headers, 'content-type': 'application/json' },
      body: { bytes: payload },
      timeoutMs: this.timeoutMs,
    }).then((r) => {
      if (r.ok) discard(r.value.body);
    });
  }
}

const enc = encodeURIComponent;

/** The task's run time from our own entry document (the npm server does not keep the header's). */
function durationOf(doc: Buffer): number {
  try {
    const ms = (JSON.parse(doc.toString('utf8')) as { entry?: { durationMs?: unknown } }).entry?.durationMs;
    return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? Math.round(ms) : 0;
  } catch {
    return 0; // not one of our documents (the conformance suite's raw bytes): no duration to report
  }
}

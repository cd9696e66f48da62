import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { type AzureAuth, authorizedUrl, findAzureAccess, signAzure } from './azure-auth.js';
import { done, problem, type RemoteBackend, type RemoteResult } from './backend.js';
import { type ListedObject, OUR_KEY, type RemoteListing } from './listing.js';
import { blobReply, entryReply } from './replies.js';
import type { RemoteSettings } from './settings.js';
import { discard, readAll, redact, send, statusProblem } from './transport.js';
import type { KeepsFirst } from './write-once.js';

/**
 * azure://account/container/prefix on Azure Blob Storage (not S3-compatible, so its own backend):
 * block blobs <prefix>/ac/<key> and <prefix>/cas/<sha256>, each uploaded in one Put Blob (up to
 * 5000 MiB) with If-None-Match: *, so an existing entry is never replaced, atomically on the
 * server. Auth: SharedKey (account key) or a SAS token; see ./azure-auth.ts for where they come from.
 */
export function openAzureBackend(
  url: URL,
  s: RemoteSettings,
  env: NodeJS.ProcessEnv,
): RemoteResult<RemoteBackend & RemoteListing> {
  const account = url.hostname;
  const [container, ...rest] = decodeURIComponent(url.pathname)
    .replace(/^\/+|\/+$/g, '')
    .split('/');
  if (!account || !container)
    return problem({
      message: `remote url ${JSON.stringify(s.url)} must name an account and a container: azure://account/container[/prefix]`,
      retryable: false,
      stop: true,
    });
  const found = findAzureAccess(account, s.endpoint, env);
  if (!found.ok) return problem({ message: found.message, retryable: false, stop: true });
  return done(
    new AzureBackend(account, container, rest.join('/'), found.value.endpoint, found.value.auth, s.timeoutMs),
  );
}

type Body = { bytes: Buffer } | { file: string; size: number };

class AzureBackend implements RemoteBackend, RemoteListing, KeepsFirst {
  readonly label: string;
  readonly keepsFirst = true;
  private readonly containerUrl: string;

  constructor(
    account: string,
    container: string,
    private readonly prefix: string,
    endpoint: string,
    private readonly auth: AzureAuth,
    private readonly timeoutMs: number,
  ) {
    this.label = `azure://${account}/${container}${prefix ? `/${prefix}` : ''}`;
    this.containerUrl = `${endpoint}/${container}`;
  }

  private blobUrl(kind: 'ac' | 'cas', key: string): URL {
    return new URL(`${this.containerUrl}/${this.prefix ? `${this.prefix}/` : ''}${kind}/${key}`);
  }

  private request(
    method: 'GET' | 'HEAD' | 'PUT' | 'DELETE',
    url: URL,
    headers: Record<string, string> = {},
    body?: Body,
  ) {
    const length = body ? ('bytes' in body ? body.bytes.byteLength : body.size) : 0;
    const signed = signAzure(this.auth, method, url, headers, length);
    const target = authorizedUrl(this.auth, url);
    return send(
      body
        ? { method, url: target, headers: signed, body, timeoutMs: this.timeoutMs }
        : { method, url: target, headers: signed, timeoutMs: this.timeoutMs },
    );
  }

  /** Azure names the reason in its XML body (or x-ms-error-code): keep it, e.g. AuthenticationFailed. */
  private failed = async (method: string, url: URL, status: number, body: IncomingMessage) => {
    const text = (await readAll(body, 16 * 1024).catch(() => Buffer.alloc(0))).toString();
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? body.headers['x-ms-error-code'];
    const r = statusProblem(method, url, status, code ? `(${code})` : '');
    if (status === 403 || code === 'ContainerNotFound') r.problem.stop = true;
    return r;
  };

  async getEntry(key: string): Promise<RemoteResult<Buffer | undefined>> {
    const url = this.blobUrl('ac', key);
    const r = await this.request('GET', url);
    // A missing container is not a miss: it is a remote that is set up wrong.
    if (r.ok && r.value.status === 404 && r.value.headers['x-ms-error-code'] === 'ContainerNotFound')
      return this.failed('GET', url, 404, r.value.body);
    return entryReply(url, r, this.failed);
  }

  putEntry(key: string, body: Buffer): Promise<RemoteResult<void>> {
    return this.put(this.blobUrl('ac', key), { bytes: body });
  }

  async hasBlob(key: string): Promise<RemoteResult<boolean>> {
    const url = this.blobUrl('cas', key);
    const r = await this.request('HEAD', url);
    if (!r.ok) return r;
    discard(r.value.body);
    if (r.value.status === 200) return done(true);
    const code = r.value.headers['x-ms-error-code'];
    if (r.value.status === 404 && code !== 'ContainerNotFound') return done(false);
    return statusProblem('HEAD', url, r.value.status, code ? `(${code})` : '');
  }

  async getBlob(key: string, consume: (body: Readable) => Promise<void>): Promise<RemoteResult<boolean>> {
    const url = this.blobUrl('cas', key);
    return blobReply(url, await this.request('GET', url), consume, this.failed);
  }

  putBlob(key: string, file: string, size: number): Promise<RemoteResult<void>> {
    return this.put(this.blobUrl('cas', key), { file, size });
  }

  private async put(url: URL, body: Body): Promise<RemoteResult<void>> {
    const r = await this.request(
      'PUT',
      url,
      { 'content-type': 'application/octet-stream', 'if-none-match': '*', 'x-ms-blob-type': 'BlockBlob' },
      body,
    );
    if (!r.ok) return r;
    const { status, body: res } = r.value;
    // 201 created; 409 (BlobAlreadyExists) / 412: it exists, and write-once keeps it.
    if (status === 201 || status === 409 || status === 412) {
      discard(res);
      return done(undefined);
    }
    return this.failed('PUT', url, status, res);
  }

  async list(kind: 'ac' | 'cas'): Promise<RemoteResult<ListedObject[]>> {
    const within = `${this.prefix ? `${this.prefix}/` : ''}${kind}/`;
    const out: ListedObject[] = [];
    let marker = '';
    do {
      const url = new URL(this.containerUrl);
      url.searchParams.set('restype', 'container');
      url.searchParams.set('comp', 'list');
      url.searchParams.set('prefix', within);
      if (marker) url.searchParams.set('marker', marker);
      const r = await this.request('GET', url);
      if (!r.ok) return r;
      if (r.value.status !== 200) return this.failed('GET', url, r.value.status, r.value.body);
      let xml: string;
      try {
        xml = (await readAll(r.value.body, 64 * 1024 * 1024)).toString('utf8');
      } catch (e) {
        return problem({ message: `GET ${redact(url)}: ${(e as Error).message}`, retryable: true });
      }
      for (const [, blob] of xml.matchAll(/<Blob>([\s\S]*?)<\/Blob>/g)) {
        const name = tag(blob!, 'Name');
        const key = name?.slice(within.length) ?? '';
        if (!name?.startsWith(within) || !OUR_KEY.test(key)) continue;
        out.push({
          key,
          size: Number(tag(blob!, 'Content-Length') ?? 0),
          modifiedMs: Date.parse(tag(blob!, 'Last-Modified') ?? '') || 0,
        });
      }
      marker = tag(xml.replace(/<Blobs>[\s\S]*<\/Blobs>/, ''), 'NextMarker') ?? '';
    } while (marker);
    return done(out);
  }

  async remove(kind: 'ac' | 'cas', key: string): Promise<RemoteResult<void>> {
    const url = this.blobUrl(kind, key);
    const r = await this.request('DELETE', url);
    if (!r.ok) return r;
    if (r.value.status === 202 || r.value.status === 404) {
      discard(r.value.body);
      return done(undefined);
    }
    return this.failed('DELETE', url, r.value.status, r.value.body);
  }
}

const tag = (xml: string, name: string): string | undefined =>
  new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1]?.replace(/&amp;/g, '&');

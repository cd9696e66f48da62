import { done, type RemoteResult } from './backend.js';
import { type ListedObject, OUR_KEY, type RemoteListing } from './listing.js';
import type { RemoteSettings } from './settings.js';
import { discard, readAll, redact, send, statusProblem } from './transport.js';

/**
 * Listing and deleting on a WebDAV server that holds the Bazel HTTP layout (nginx with its dav_ext
 * module: `dav_methods PUT DELETE; dav_ext_methods PROPFIND;`): PROPFIND with Depth: 1 on <base>/ac/
 * and <base>/cas/, DELETE of one file. Same auth as the HTTP backend.
 */
export class WebDavListing implements RemoteListing {
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
    this.base = redact(url).replace(/\/$/, '');
    this.label = this.base;
    this.timeoutMs = s.timeoutMs;
  }

  async list(kind: 'ac' | 'cas'): Promise<RemoteResult<ListedObject[]>> {
    const url = new URL(`${this.base}/${kind}/`);
    const r = await send({
      method: 'PROPFIND',
      url,
      headers: { ...this.headers, depth: '1', 'content-type': 'application/xml' },
      body: {
        bytes: Buffer.from(
          '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getlastmodified/><getcontentlength/></prop></propfind>',
        ),
      },
      timeoutMs: this.timeoutMs,
    });
    if (!r.ok) return r;
    const { status, body } = r.value;
    if (status === 404) {
      discard(body); // nothing uploaded yet
      return done([]);
    }
    if (status !== 207) {
      discard(body);
      return statusProblem(
        'PROPFIND',
        url,
        status,
        status === 405 ? '(the server does not list: enable WebDAV PROPFIND)' : '',
      );
    }
    const xml = (await readAll(body, 256 * 1024 * 1024)).toString('utf8');
    const out: ListedObject[] = [];
    for (const [, response] of xml.matchAll(/<(?:\w+:)?response\b[^>]*>([\s\S]*?)<\/(?:\w+:)?response>/g)) {
      const href = decodeURIComponent(prop(response!, 'href') ?? '');
      const key = href.replace(/\/$/, '').split('/').pop() ?? '';
      if (href.endsWith('/') || !OUR_KEY.test(key)) continue;
      out.push({
        key,
        size: Number(prop(response!, 'getcontentlength') ?? 0),
        modifiedMs: Date.parse(prop(response!, 'getlastmodified') ?? '') || 0,
      });
    }
    return done(out);
  }

  async remove(kind: 'ac' | 'cas', key: string): Promise<RemoteResult<void>> {
    const url = new URL(`${this.base}/${kind}/${key}`);
    const r = await send({ method: 'DELETE', url, headers: this.headers, timeoutMs: this.timeoutMs });
    if (!r.ok) return r;
    discard(r.value.body);
    if ((r.value.status >= 200 && r.value.status < 300) || r.value.status === 404) return done(undefined);
    return statusProblem('DELETE', url, r.value.status);
  }
}

const prop = (xml: string, name: string): string | undefined =>
  new RegExp(`<(?:\\w+:)?${name}\\b[^>]*>([^<]*)</(?:\\w+:)?${name}>`).exec(xml)?.[1];

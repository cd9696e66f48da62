import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { isIP } from 'node:net';
import { besideCode } from '../package-dir.js';
import { errorMessage } from '../util/result.js';
import type { DashboardData } from './data.js';
import { CONTENT_TYPE, renderMetrics } from './prometheus.js';
import { BadQuery, choice, HttpError, integer, key, only, span, text } from './query.js';

/*
 * The dashboard's HTTP server: the page and its bundled assets (a fixed list read at start, so a
 * path can never reach another file), a read-only JSON API, server-sent events when the cache
 * changes, and GET /metrics. GET and HEAD only.
 */

export interface ServerOptions {
  host: string;
  port: number;
  /** Required on every request when set (header, ?token= or the cookie the page sets). */
  token?: string;
  /** How often the cache is looked at for changes (live updates). */
  pollMs?: number;
}

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/assets/app.js': 'app.js',
  '/assets/app.css': 'app.css',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};
const COOKIE = 'taskvault_ui_token';

export const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

/** The bundled page and assets (scripts/bundle.mjs puts them in dist/ui/). */
function loadAssets(): Map<string, { body: Buffer; type: string }> {
  const out = new Map<string, { body: Buffer; type: string }>();
  for (const [path, file] of Object.entries(ASSETS)) {
    const body = readFileSync(besideCode(`ui/${file}`));
    out.set(path, { body, type: TYPES[file.split('.').pop()!]! });
  }
  return out;
}

/**
 * What the server serves from: this machine's cache (DashboardData, through localRoutes) or the
 * team index (team-data.ts). Errors are BadQuery (400) or HttpError (404, 503).
 */
export interface DashboardRoutes {
  /** Changes whenever what the page shows changes (live updates). */
  version(): string;
  /** Looks again at the source, for version(). */
  refresh(): Promise<void>;
  /** The JSON answer of an /api/ path. */
  api(path: string, params: URLSearchParams): Promise<unknown>;
  /** The Prometheus text of /metrics. */
  metrics(): string;
  /** How often the source is looked at for changes while a page is open. */
  pollMs?: number;
  /** api() reads the source itself (a database query), so a request needs no refresh() first. */
  readsLive?: boolean;
}

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** The routes of this machine's cache. */
export function localRoutes(data: DashboardData): DashboardRoutes {
  const api = async (path: string, params: URLSearchParams): Promise<unknown> => {
    const now = Date.now();
    switch (path) {
      case '/api/overview':
        only(params, ['range', 'step']);
        return data.overview(span(params, now));
      case '/api/runs': {
        only(params, ['task', 'limit']);
        const task = text(params, 'task', { max: 512, required: true });
        return {
          task,
          runs: data.recentRuns(task, integer(params, 'limit', { min: 1, max: 500, fallback: 20 })),
        };
      }
      case '/api/entries': {
        only(params, ['q', 'task', 'sort', 'order', 'offset', 'limit']);
        const q = text(params, 'q', { max: 200 }).toLowerCase();
        const task = params.has('task') ? text(params, 'task', { max: 512 }) : undefined;
        const sort = choice(params, 'sort', ['created', 'access', 'bytes', 'task', 'key'] as const, 'access');
        const order = choice(params, 'order', ['asc', 'desc'] as const, 'desc');
        const offset = integer(params, 'offset', { min: 0, max: 100_000_000, fallback: 0 });
        const limit = integer(params, 'limit', { min: 1, max: 500, fallback: 50 });
        let rows = data.entryRows();
        if (task !== undefined) rows = rows.filter((r) => r.task === task);
        if (q) rows = rows.filter((r) => r.key.startsWith(q) || r.task.toLowerCase().includes(q));
        const field = {
          created: 'createdAt',
          access: 'lastAccess',
          bytes: 'bytes',
          task: 'task',
          key: 'key',
        }[sort];
        const sign = order === 'asc' ? 1 : -1;
        const sorted = [...rows].sort((a, b) => {
          const x = a[field as keyof typeof a];
          const y = b[field as keyof typeof b];
          return (x < y ? -1 : x > y ? 1 : 0) * sign || (a.key < b.key ? -1 : 1);
        });
        return { total: rows.length, offset, rows: sorted.slice(offset, offset + limit) };
      }
      case '/api/entry': {
        only(params, ['key']);
        const k = key(params);
        const found = data.getEntry(k);
        if (!found) throw new HttpError(404, `no entry with key ${k.slice(0, 12)} in the cache`);
        const { entry, hits, lastAccess } = found;
        return {
          key: entry.key,
          task: entry.task,
          createdAt: entry.createdAt,
          lastAccess,
          hits,
          bytes: entry.bytes,
          ttlMs: entry.ttlMs,
          durationMs: entry.durationMs,
          exitCode: entry.exitCode,
          cwd: entry.cwd,
          outputs: entry.outputs
            .slice(0, 200)
            .map((x) => ({ path: x.path, type: x.type, size: x.type === 'file' ? x.size : undefined })),
          outputCount: entry.outputs.length,
          provenance: entry.provenance,
        };
      }
      case '/api/sizes':
        only(params, []);
        return { tasks: data.sizes() };
      default:
        throw new HttpError(404, `no such path: ${path}`);
    }
  };
  return {
    version: () => data.version(),
    refresh: () => data.refresh(),
    api,
    metrics: () => renderMetrics(data.stats(), data.allTime()),
  };
}

export function createDashboardServer(routes: DashboardRoutes, o: ServerOptions): http.Server {
  const assets = loadAssets();
  const listeners = new Set<http.ServerResponse>();
  let version = routes.version();
  const pollMs = o.pollMs ?? routes.pollMs ?? 500;

  // Looks at the source again (what other processes did since), at most once per poll: for the
  // pages' watcher, and for a request with no page open (a Prometheus scrape, curl).
  let looked = 0;
  const lookAgain = async (): Promise<void> => {
    if (Date.now() - looked < pollMs) return;
    looked = Date.now();
    // A failed look answers from what was read before; the next request or tick looks again.
    await routes.refresh().catch(() => {});
  };

  // One watcher for every open page: looks at the cache and tells the pages when it changed.
  const timer = setInterval(() => {
    if (listeners.size === 0) return;
    looked = 0;
    lookAgain()
      .then(() => {
        const now = routes.version();
        if (now === version) return;
        version = now;
        for (const res of listeners) res.write(`event: change\ndata: ${now}\n\n`);
      })
      .catch(() => {}); // a failed look is retried at the next tick
  }, pollMs);
  timer.unref();

  const authorised = (req: http.IncomingMessage, url: URL): boolean => {
    if (!o.token) return true;
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ') && sameSecret(header.slice(7), o.token)) return true;
    const query = url.searchParams.get('token');
    if (query !== null && sameSecret(query, o.token)) return true;
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === COOKIE && sameSecret(decodeURIComponent(v.join('=')), o.token)) return true;
    }
    return false;
  };

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    res.end(text);
  };

  const server = http.createServer((req, res) => {
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader(
      'content-security-policy',
      "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
    );
    const fail = (status: number, message: string) => {
      if (!res.headersSent) json(res, status, { error: message });
      else res.end();
    };
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://dashboard');
      // Percent-decoding here rejects a malformed escape before any route sees it.
      decodeURIComponent(url.pathname);
    } catch {
      return fail(400, 'malformed request URL');
    }
    // A page on another site must not reach a loopback dashboard through DNS rebinding.
    if (isLoopback(o.host)) {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
      if (!isLoopback(host))
        return fail(403, `requests must name a loopback host, not ${JSON.stringify(host)}`);
    }
    if (!authorised(req, url))
      return fail(
        401,
        'a valid token is required: open the URL with ?token=<token> or send Authorization: Bearer <token>',
      );
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return fail(405, 'the dashboard is read-only: only GET and HEAD are allowed');
    }
    const path = url.pathname;
    const asset = assets.get(path);
    if (asset) {
      try {
        if (path !== '/') only(url.searchParams, []);
      } catch (e) {
        return fail(400, errorMessage(e));
      }
      const headers: Record<string, string> = { 'content-type': asset.type, 'cache-control': 'no-cache' };
      // The page's token becomes a cookie, so its scripts, API calls and event stream carry it.
      if (o.token && url.searchParams.has('token'))
        headers['set-cookie'] = `${COOKIE}=${encodeURIComponent(o.token)}; HttpOnly; SameSite=Strict; Path=/`;
      res.writeHead(200, headers);
      return res.end(req.method === 'HEAD' ? undefined : asset.body);
    }
    if (path === '/api/events') {
      try {
        only(url.searchParams, []);
      } catch (e) {
        return fail(400, errorMessage(e));
      }
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write(`retry: 1000\nevent: hello\ndata: ${version}\n\n`);
      listeners.add(res);
      req.on('close', () => listeners.delete(res));
      return;
    }
    if (path === '/metrics') {
      try {
        only(url.searchParams, []);
      } catch (e) {
        return fail(400, errorMessage(e));
      }
      lookAgain()
        .then(() => {
          const text = routes.metrics();
          res.writeHead(200, { 'content-type': CONTENT_TYPE, 'cache-control': 'no-store' });
          res.end(text);
        })
        .catch((e: unknown) => fail(e instanceof HttpError ? e.status : 500, errorMessage(e)));
      return;
    }
    if (!path.startsWith('/api/')) return fail(404, `no such path: ${path.slice(0, 200)}`);
    (routes.readsLive ? Promise.resolve() : lookAgain())
      .then(() => routes.api(path, url.searchParams))
      .then((body) => json(res, 200, body))
      .catch((e: unknown) => {
        if (e instanceof BadQuery) return fail(400, e.message);
        if (e instanceof HttpError) return fail(e.status, e.message);
        fail(500, `internal error: ${errorMessage(e)}`);
      });
  });
  server.on('close', () => {
    clearInterval(timer);
    for (const res of listeners) res.end();
  });
  return server;
}

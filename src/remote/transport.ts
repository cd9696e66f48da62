import { createReadStream } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { errorMessage } from '../util/result.js';
import { done, problem, type RemoteProblem, type RemoteResult } from './backend.js';

/**
 * node:http rather than fetch: uploads stream from a file with an exact Content-Length (S3 rejects
 * chunked bodies, and not every cache server takes them), and one idle timeout covers connect,
 * upload and download alike.
 */
export interface Request {
  method: 'GET' | 'PUT' | 'HEAD' | 'POST' | 'DELETE' | 'PROPFIND';
  url: URL;
  headers?: Record<string, string>;
  body?: { bytes: Buffer } | { file: string; size: number };
  /** The request fails when the connection is idle this long (not a cap on the whole transfer). */
  timeoutMs: number;
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

// Idle keep-alive sockets are unref'd by the agent: they never hold the process open.
const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 32 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 32 }),
};

/** Network errors that mean the remote is not there at all: retrying later in this run won't help. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ETIMEDOUT',
]);

export function send(req: Request): Promise<RemoteResult<Reply>> {
  return new Promise((resolve) => {
    const secure = req.url.protocol === 'https:';
    const headers: Record<string, string> = { ...req.headers };
    if (req.body)
      headers['content-length'] = String('bytes' in req.body ? req.body.bytes.byteLength : req.body.size);
    const r = (secure ? https : http).request(req.url, {
      method: req.method,
      headers,
      agent: secure ? agents.https : agents.http,
    });
    let settled = false;
    const settle = (v: RemoteResult<Reply>) => {
      if (!settled) {
        settled = true;
        resolve(v);
      }
    };
    r.setTimeout(req.timeoutMs, () => {
      const e = new Error(`no response within ${req.timeoutMs} ms`) as NodeJS.ErrnoException;
      e.code = 'ETIMEDOUT';
      r.destroy(e);
    });
    r.on('error', (e: NodeJS.ErrnoException) => {
      settle(
        problem({
          message: `${req.method} ${redact(req.url)}: ${errorMessage(e)}`,
          retryable: true,
          stop: UNREACHABLE.has(e.code ?? ''),
        }),
      );
    });
    r.on('response', (res) => {
      settle(done({ status: res.statusCode ?? 0, headers: res.headers, body: res }));
    });
    if (!req.body) r.end();
    else if ('bytes' in req.body) r.end(req.body.bytes);
    else {
      const file = createReadStream(req.body.file, { highWaterMark: 1024 * 1024 });
      file.on('error', (e) => r.destroy(e));
      file.pipe(r);
    }
  });
}

/** Reads a whole (small) response body; bigger than `limit` is an error, not a memory blow-up. */
export async function readAll(res: IncomingMessage, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of res) {
    n += (chunk as Buffer).byteLength;
    if (n > limit) {
      res.destroy();
      throw new Error(`response larger than ${limit} bytes`);
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

/** Drains a response we don't need the body of, so its connection goes back to the pool. */
export function discard(res: IncomingMessage): void {
  res.resume();
}

/** A problem for an HTTP status we did not expect: 5xx and 429 are worth a retry, other 4xx are not. */
export function statusProblem(
  method: string,
  url: URL,
  status: number,
  detail = '',
): { ok: false; problem: RemoteProblem } {
  return problem({
    message: `${method} ${redact(url)}: HTTP ${status}${detail ? ` ${detail}` : ''}`,
    retryable: status >= 500 || status === 429 || status === 408,
    status,
  });
}

export function redact(url: URL): string {
  const u = new URL(url.href);
  u.username = '';
  u.password = '';
  u.search = '';
  return u.href;
}

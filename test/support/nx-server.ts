/**
 * A test fixture, not product code: an Nx self-hosted remote cache server written from Nx's published
 * OpenAPI spec ("Nx custom remote cache specification", Nx 20.8+), because Nx ships no reference
 * server. The spec: GET /v1/cache/{hash} → 200 octet-stream | 401 | 403 | 404;
 * PUT /v1/cache/{hash} with Content-Length → 200 | 400 (no Content-Length) | 401 | 403 (e.g. a
 * read-only token) | 409 (cannot override an existing record). Auth: optional bearer token.
 * Records are files under `dir`, written to a temp file and renamed, so a cut upload leaves nothing.
 * Paths may carry a prefix before /v1/cache/ (a server behind a reverse proxy), one space each.
 */
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { tempDir } from './helpers.js';

export interface NxServer {
  url: string;
  dir: string;
  /** Requests seen, as "METHOD path". */
  requests: string[];
  stop(): Promise<void>;
}

export interface NxTokens {
  /** Tokens that may GET and PUT. */
  write: string[];
  /** Tokens that may only GET (PUT → 403). */
  read?: string[];
}

export async function startNxServer(tokens?: NxTokens): Promise<NxServer> {
  const dir = tempDir('tv-nx-');
  const requests: string[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const text = (status: number, message: string) => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(message);
    };
    const m = /^((?:\/[A-Za-z0-9._-]+)*)\/v1\/cache\/([A-Za-z0-9._-]+)$/.exec(req.url ?? '');
    if (!m) return text(404, 'not found');
    let access: 'write' | 'read' = 'write';
    if (tokens) {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (token !== undefined && tokens.write.includes(token)) access = 'write';
      else if (token !== undefined && tokens.read?.includes(token)) access = 'read';
      else return text(401, 'Missing or invalid authentication token.');
    }
    const space = join(dir, m[1]!.replace(/\//g, '_') || '_');
    const file = join(space, m[2]!);
    if (req.method === 'GET') {
      if (!existsSync(file)) return text(404, 'The record was not found');
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(statSync(file).size),
      });
      createReadStream(file).pipe(res);
      return;
    }
    if (req.method === 'PUT') {
      if (access !== 'write') return text(403, 'Access forbidden: this token is read-only.');
      const length = Number(req.headers['content-length']);
      if (req.headers['content-length'] === undefined || !Number.isSafeInteger(length) || length < 0)
        return text(400, 'Missing or invalid Content-Length header.');
      if (existsSync(file)) {
        req.resume();
        res.writeHead(409);
        res.end();
        return;
      }
      mkdirSync(space, { recursive: true });
      const tmp = `${file}.${process.pid}.${++n}.tmp`;
      const out = createWriteStream(tmp);
      let got = 0;
      req.on('data', (d: Buffer) => {
        got += d.byteLength;
      });
      req.pipe(out);
      out.on('finish', () => {
        if (got !== length) {
          rmSync(tmp, { force: true });
          return text(400, 'The body does not match Content-Length.');
        }
        if (existsSync(file)) {
          rmSync(tmp, { force: true });
          res.writeHead(409);
          return res.end();
        }
        renameSync(tmp, file);
        res.writeHead(200);
        res.end();
      });
      req.on('aborted', () => rmSync(tmp, { force: true }));
      return;
    }
    text(405, 'method not allowed');
  });
  // Longer than any pause in a suite: a client reusing a connection the server just timed out
  // would see ECONNRESET, a race of the fixture's idle timer, not of the API.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    dir,
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

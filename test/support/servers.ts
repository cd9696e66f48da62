/** Real servers for the remote-cache tests, on 127.0.0.1 and free ports, stopped by the tests. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './helpers.js';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s: Server = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls until something answers HTTP on the port (any status), for at most `ms`. */
export async function waitForHttp(port: number, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const r = http.get({ host: '127.0.0.1', port, path: '/', timeout: 1000 }, (res) => {
        res.resume();
        resolve(true);
      });
      r.on('error', () => resolve(false));
      r.on('timeout', () => r.destroy());
    });
    if (up) return;
    if (Date.now() > until) throw new Error(`nothing answered on 127.0.0.1:${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Nginx {
  url: string;
  port: number;
  /** The WebDAV root: what the remote holds, as files. */
  data: string;
  dir: string;
  stop(): Promise<void>;
}

export const NGINX_USER = 'ci';
// Characters that must be percent-encoded in a URL (nginx's htpasswd reader stops at ':').
export const NGINX_PASSWORD = 'pa ss@wo/rd';
export const NGINX_READ_TOKEN = 'read-token-1';
export const NGINX_WRITE_TOKEN = 'write-token-1';

/**
 * The config docs/team-cache.md shows (its /tokens/ location: a read token and a write token, so that
 * read-only is enforced by the server), plus an open location and one with basic auth.
 */
export function nginxConfig(dir: string, port: number, o: { listing?: boolean } = {}): string {
  // listing: DELETE and PROPFIND too (the dav_ext module), what `taskvault gc --remote` needs.
  const dav = o.listing
    ? 'dav_methods PUT DELETE; dav_ext_methods PROPFIND OPTIONS; create_full_put_path on; dav_access user:rw group:r all:r;'
    : 'dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r;';
  return `${o.listing ? `load_module ${DAV_EXT_MODULE};\n` : ''}daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 0;
  map "$request_method:$http_authorization" $taskvault_denied {
    default 1;
    "~^(GET|HEAD):Bearer ${NGINX_READ_TOKEN}$" 0;
    "~^(GET|HEAD|PUT):Bearer ${NGINX_WRITE_TOKEN}$" 0;
  }
  server {
    listen 127.0.0.1:${port};
    root ${dir}/data;
    location / { ${dav} }
    location /basic/ {
      auth_basic "taskvault";
      auth_basic_user_file ${dir}/htpasswd;
      ${dav}
    }
    location /tokens/ {
      if ($taskvault_denied) { return 401; }
      ${dav}
    }
  }
}
`;
}

function nginxBinary(): string {
  for (const candidate of ['nginx', '/usr/sbin/nginx']) {
    const r = spawnSync(candidate, ['-v'], { stdio: 'ignore' });
    if (!r.error) return candidate;
  }
  // Never a skip: CI installs nginx (.ci/install-system-packages), so its absence is a failure.
  const message = 'nginx is not installed: run `bash .ci/install-system-packages` (Debian package nginx)';
  console.error(message); // uvu does not print errors thrown by hooks
  throw new Error(message);
}

/** Debian's libnginx-mod-http-dav-ext (.ci/install-system-packages installs it). */
export const DAV_EXT_MODULE = '/usr/lib/nginx/modules/ngx_http_dav_ext_module.so';

/** Starts nginx with a WebDAV config in a temp dir; a port taken in between is retried. */
export async function startNginx(o: { listing?: boolean } = {}): Promise<Nginx> {
  const bin = nginxBinary();
  for (let attempt = 0; ; attempt++) {
    const dir = tempDir('tv-nginx-');
    const port = await freePort();
    for (const d of ['data', 'body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
    // nginx reads {PLAIN} passwords, which keeps the test free of htpasswd tooling.
    writeFileSync(join(dir, 'htpasswd'), `${NGINX_USER}:{PLAIN}${NGINX_PASSWORD}\n`);
    writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port, o));
    const child = spawn(bin, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await Promise.race([
        waitForHttp(port),
        exited.then((code) => {
          throw new Error(`nginx exited with ${code}: ${stderr.trim()}`);
        }),
      ]);
    } catch (e) {
      child.kill('SIGKILL');
      if (attempt < 2) continue;
      throw e;
    }
    return {
      url: `http://127.0.0.1:${port}`,
      port,
      data: join(dir, 'data'),
      dir,
      stop: () => stopChild(child, exited),
    };
  }
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/** A tiny HTTP server with a programmable handler, counting requests; for failure cases nginx won't do. */
export async function startStub(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ url: string; requests: string[]; stop(): Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A suite's nginx: started before its first test, stopped after its last. Returns a getter (the
 * server exists only once the suite runs).
 */
export function nginxFor(test: {
  before: (fn: () => Promise<void>) => void;
  after: (fn: () => Promise<void>) => void;
}): () => Nginx {
  let ng: Nginx | undefined;
  test.before(async () => {
    ng = await startNginx();
  });
  test.after(async () => {
    await ng?.stop();
  });
  return () => ng!;
}

/** The lines nginx has logged so far, one request each. */
export const accessLog = (ng: Nginx): string[] =>
  readFileSync(join(ng.dir, 'access.log'), 'utf8').split('\n').filter(Boolean);

export interface S3Server {
  /** The endpoint (path-style), e.g. http://127.0.0.1:4568. */
  endpoint: string;
  bucket: string;
  stop(): Promise<void>;
}

// s3rver's fixed development credentials; it checks the access key id of SigV4 requests.
export const S3RVER_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

/** s3rver (an S3-compatible server from npm) on 127.0.0.1 with one bucket; loaded only by S3 suites. */
export async function startS3rver(bucket = 'team-cache'): Promise<S3Server> {
  const { default: S3rver } = await import('s3rver');
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: tempDir('tv-s3rver-'),
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const { port } = await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, bucket, stop: () => server.close() };
}

/** A TCP server that accepts connections and never says a word: what a hung remote looks like. */
export async function startSilent(): Promise<{ url: string; stop(): Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => sockets.delete(s)); // the client giving up resets it; nothing to do
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A proxy in front of a real server that passes every request through, but cuts each successful
 * GET's body in half (keeping the server's Content-Length) and drops the connection: a transfer
 * broken on the way. `cut`: which request paths are cut (all by default).
 */
export async function startTruncatingProxy(
  target: string,
  cut: (path: string) => boolean = () => true,
): Promise<{ url: string; stop(): Promise<void> }> {
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const out = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (up) => {
        const parts: Buffer[] = [];
        up.on('data', (d: Buffer) => parts.push(d));
        up.on('end', () => {
          const body = Buffer.concat(parts);
          res.writeHead(up.statusCode ?? 502, up.headers);
          if (req.method === 'GET' && up.statusCode === 200 && body.length > 1 && cut(req.url ?? '')) {
            res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
          } else res.end(body);
        });
      },
    );
    out.on('error', () => res.socket?.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

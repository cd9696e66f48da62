#!/usr/bin/env node
// A remote hit against curl fetching the same bytes from the same nginx (WebDAV, 127.0.0.1), in the
// same run: one 500 MB output (vs `curl -o`), and 5,000 small outputs (vs one `curl` fetching them
// all, and `curl --parallel`), and against the floor of any content-addressed cache: curl, then
// `cp -r` of what it fetched (each file written twice: the blob and the project's copy). Each timed TaskVault run is a fresh machine: a fresh clone and cache
// dir, so everything comes from the remote and is restored into the project. Times are medians of
// rounds taken in turn with curl's. `--base <cli.cjs>` adds another build's remote hit to the same
// rounds, for a before/after under the same load (see bench/ab.mjs for making that build).
// Usage: node bench/remote.mjs [--big-mb 500] [--small 5000] [--rounds 3] [--base /tmp/base/dist/cli.cjs]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate } from './common.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const BIG_MB = opt('--big-mb', 500);
const SMALL = opt('--small', 5000);
const ROUNDS = opt('--rounds', 3);
const BASE = args.includes('--base') ? args[args.indexOf('--base') + 1] : undefined;
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.cjs');
const work = mkdtempSync(join(tmpdir(), 'tv-bench-remote-'));

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function startNginx() {
  const dir = join(work, 'nginx');
  for (const d of ['data', 'body']) mkdirSync(join(dir, d), { recursive: true });
  const port = await freePort();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/body; fastcgi_temp_path ${dir}/body;
  uwsgi_temp_path ${dir}/body; scgi_temp_path ${dir}/body;
  client_max_body_size 0;
  server { listen 127.0.0.1:${port}; root ${dir}/data;
    location / { dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r; } }
}
`,
  );
  const child = spawn('nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], {
    stdio: 'ignore',
  });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${port}/`]).status === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `http://127.0.0.1:${port}`, data: join(dir, 'data'), stop: () => child.kill('SIGTERM') };
}

const GEN_BIG = `import { mkdirSync, openSync, writeSync, closeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
mkdirSync('out', { recursive: true });
const fd = openSync('out/big.bin', 'w');
const chunk = Buffer.alloc(8 << 20);
for (let left = ${BIG_MB} * 1048576; left > 0; left -= chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(left, chunk.length));
closeSync(fd);
`;
const GEN_SMALL = `import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
mkdirSync('out', { recursive: true });
for (let i = 0; i < ${SMALL}; i++) writeFileSync('out/f' + i + '.bin', randomBytes(512 + (i % 1024)));
`;

function projectWith(name, gen) {
  const dir = join(work, `${name}-origin`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'gen.mjs'), gen);
  writeFileSync(
    join(dir, 'taskvault.config.json'),
    JSON.stringify({
      maxSizeGb: 4,
      tasks: {
        gen: {
          command: ['node', 'gen.mjs'],
          inputs: ['gen.mjs'],
          outputs: ['out/**'],
          policy: { maxSizeBytes: '2GB' },
        },
      },
    }),
  );
  return dir;
}

const tv = (cwd, env, cli = CLI) => {
  const r = spawnSync(process.execPath, [cli, 'run', 'gen', '--stdin=ignore'], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`taskvault: ${r.stderr}`);
  return r.stderr;
};

/** A fresh machine B: the project's files without outputs or cache. */
function clone(origin, n) {
  const dir = join(work, `clone-${n}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  for (const f of ['gen.mjs', 'taskvault.config.json']) cpSync(join(origin, f), join(dir, f));
  return dir;
}

const seconds = (fn) => {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
};

async function main() {
  const ng = await startNginx();
  let n = 0;
  try {
    for (const [name, gen] of [
      [`one ${BIG_MB} MB output`, GEN_BIG],
      [`${SMALL} small outputs`, GEN_SMALL],
    ]) {
      const prefix = name.startsWith('one') ? 'big' : 'small';
      const env = { TASKVAULT_REMOTE_URL: `${ng.url}/${prefix}` };
      const origin = projectWith(prefix, gen);
      const filled = tv(origin, env); // machine A fills the remote
      if (/warning/.test(filled)) throw new Error(`machine A did not fill the remote: ${filled}`);
      const cas = join(ng.data, prefix, 'cas');
      const keys = readdirSync(cas);
      const bytes = keys.reduce((s, k) => s + statSync(join(cas, k)).size, 0);
      const target = join(work, 'curl-out');
      const list = join(work, `${prefix}.curl`);
      writeFileSync(
        list,
        keys.map((k) => `url = "${ng.url}/${prefix}/cas/${k}"\noutput = "${target}/${k}"\n`).join(''),
      );
      const copy = join(work, 'curl-copy');
      const fresh = () => {
        for (const d of [target, copy]) rmSync(d, { recursive: true, force: true });
        mkdirSync(target);
      };
      const curlArgs =
        keys.length > 1 ? ['-sf', '--parallel', '--parallel-max', '50', '-K', list] : ['-sf', '-K', list];
      const remoteHit = (cli) => () => {
        const dir = clone(origin, ++n);
        let err = '';
        const s = seconds(() => {
          err = tv(dir, env, cli);
        });
        if (!/hit \(remote\)/.test(err)) throw new Error(`not a remote hit: ${err}`);
        return s;
      };
      const contenders = [
        { name: 'taskvault remote hit', run: remoteHit(CLI) },
        {
          name: 'curl',
          prep: fresh,
          run: () => seconds(() => execFileSync('curl', ['-sf', '-K', list], { stdio: 'ignore' })),
        },
      ];
      if (keys.length > 1)
        contenders.push({
          name: 'curl --parallel',
          prep: fresh,
          run: () =>
            seconds(() =>
              execFileSync('curl', ['-sf', '--parallel', '--parallel-max', '50', '-K', list], {
                stdio: 'ignore',
              }),
            ),
        });
      // The floor of a content-addressed cache: the bytes fetched once and written twice, as the
      // cache's blob and as the project's file (on a filesystem without copy-on-write clones).
      contenders.push({
        name: 'curl + cp -r',
        prep: fresh,
        run: () =>
          seconds(() => {
            execFileSync('curl', curlArgs, { stdio: 'ignore' });
            execFileSync('cp', ['-r', target, copy]);
          }),
      });
      if (BASE) contenders.push({ name: 'base remote hit', run: remoteHit(BASE) });
      const t = alternate(contenders, ROUNDS);
      const mbps = (s) => (bytes / 1048576 / s).toFixed(0);
      console.log(
        `\n${name}: ${keys.length} blob(s), ${(bytes / 1048576).toFixed(1)} MB on the wire, median of ${ROUNDS}`,
      );
      for (const [k, s] of Object.entries(t))
        console.log(`  ${k.padEnd(22)} ${s.toFixed(3)} s  ${mbps(s)} MB/s`);
      const tvs = t['taskvault remote hit'];
      console.log(`  ratio taskvault/curl throughput: ${(t.curl / tvs).toFixed(2)}x`);
      if (t['curl --parallel'])
        console.log(`  taskvault time / curl --parallel time: ${(tvs / t['curl --parallel']).toFixed(2)}x`);
      console.log(`  taskvault time / (curl + cp -r) time: ${(tvs / t['curl + cp -r']).toFixed(2)}x`);
      const base = t['base remote hit'];
      if (base) {
        console.log(`  base: ratio to curl throughput ${(t.curl / base).toFixed(2)}x`);
        if (t['curl --parallel'])
          console.log(`  base: time / curl --parallel time ${(base / t['curl --parallel']).toFixed(2)}x`);
        console.log(`  taskvault time / base time: ${(tvs / base).toFixed(2)}x`);
      }
    }
  } finally {
    ng.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();

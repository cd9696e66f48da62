/**
 * Runs docs/remote-servers.md as written: for each server section, its `server` block (a shell line
 * from npm's bin, or an nginx server block), its `config` and `env` blocks, with the documented
 * ports and directories swapped for free ports and temp dirs. Machine A fills the remote, machine B
 * gets a byte-identical remote hit. The Retention section's `gc` line runs on the WebDAV remote.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signAzure } from '../../src/remote/azure-auth.js';
import { readTreeSnapshot, runCli, tempDir } from '../support/helpers.js';
import { startNxServer } from '../support/nx-server.js';
import { project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { DAV_EXT_MODULE, freePort, S3RVER_KEYS, startS3rver, waitForHttp } from '../support/servers.js';
import { AZURITE_ACCOUNT, AZURITE_KEY } from '../support/team-servers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const doc = readFileSync(join(root, 'docs/remote-servers.md'), 'utf8');

interface Section {
  title: string;
  blocks: Record<string, { lang: string; text: string }>;
}

function sections(): Section[] {
  return doc
    .split(/^### /m)
    .slice(1)
    .map((part) => {
      const title = part.split('\n')[0]!.trim();
      const blocks: Section['blocks'] = {};
      for (const m of part.matchAll(/```(\w+) (server|config|env|gc)\n([\s\S]*?)```/g))
        blocks[m[2]!] = { lang: m[1]!, text: m[3]! };
      return { title, blocks };
    });
}

const retention = /```sh gc\n([\s\S]*?)```/.exec(doc)![1]!.trim();

/** `export A=b C='d e'` → { A: 'b', C: 'd e' } */
function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of text.replace(/^export /gm, '').matchAll(/([A-Z_][A-Z0-9_]*)=('([^']*)'|\S+)/g))
    env[m[1]!] = m[3] ?? m[2]!;
  return env;
}

const children: ChildProcess[] = [];

/** `VAR=x VAR2=y npx bin args…` started as written, with node on the package's bin file. */
async function startShellServer(line: string, port: number): Promise<void> {
  const words = line.trim().split(/\s+/);
  const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
  while (/^[A-Z_]+=/.test(words[0]!)) {
    const [k, ...v] = words.shift()!.split('=');
    env[k!] = v.join('=');
  }
  assert.is(words.shift(), 'npx');
  const bin = realpathSync(join(root, 'node_modules/.bin', words.shift()!));
  const dir = tempDir('tv-doc-server-');
  const child = spawn(process.execPath, [bin, ...words], {
    env: { ...env, HOME: dir },
    cwd: dir,
    stdio: 'ignore',
  });
  children.push(child);
  await waitForHttp(port, 30_000);
}

async function startNginxBlock(block: string, port: number): Promise<void> {
  const dir = tempDir('tv-doc-nginx-');
  writeFileSync(join(dir, 'htpasswd'), 'ci:{PLAIN}change-me\n');
  const server = block.replace('/etc/nginx/taskvault.htpasswd', join(dir, 'htpasswd'));
  const conf = `load_module ${DAV_EXT_MODULE};
daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off; client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
  ${server}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], {
    stdio: 'ignore',
  });
  children.push(child);
  await waitForHttp(port);
}

async function createContainer(endpoint: string, name: string): Promise<void> {
  const url = new URL(`${endpoint}/${name}?restype=container`);
  const auth = {
    kind: 'sharedKey' as const,
    account: AZURITE_ACCOUNT,
    key: Buffer.from(AZURITE_KEY, 'base64'),
  };
  const r = await fetch(url, {
    method: 'PUT',
    headers: { ...signAzure(auth, 'PUT', url, {}, 0), 'content-length': '0' },
  });
  assert.ok(r.status === 201 || r.status === 409, `container: HTTP ${r.status}`);
}

const test = suite('docs/remote-servers.md, run as written');
const stops: Array<() => Promise<void>> = [];
test.after(async () => {
  for (const c of children) c.kill('SIGTERM');
  for (const s of stops) await s();
});

test('every server section has a config and an env block', () => {
  const titles = sections().map((s) => s.title);
  assert.equal(titles, [
    'Turborepo remote cache',
    'Nx self-hosted cache',
    'nginx (WebDAV)',
    'S3, MinIO, R2',
    'Google Cloud Storage (S3 interoperability)',
    'Azure Blob Storage',
  ]);
  for (const s of sections()) assert.ok(s.blocks.config && s.blocks.env, s.title);
});

for (const section of sections()) {
  test(`${section.title}: machine A fills the remote, machine B gets a byte-identical remote hit`, async () => {
    const { config: c, env: e, server } = section.blocks;
    if (!c || !e) return assert.unreachable(`${section.title} has no config or env block`);
    const documented = /127\.0\.0\.1:(\d+)/.exec(c.text + e.text)?.[1];
    const port = await freePort();
    const local = (t: string) =>
      (documented ? t.replace(new RegExp(`\\b${documented}\\b`, 'g'), String(port)) : t).replace(
        /\/var\/cache\/[\w-]+/g,
        () => tempDir('tv-doc-data-'),
      );
    let config = JSON.parse(local(c.text));
    let env = parseEnv(local(e.text));

    if (server?.lang === 'sh') await startShellServer(local(server.text), port);
    else if (server?.lang === 'nginx') await startNginxBlock(local(server.text), port);
    else if (section.title.startsWith('Nx')) {
      // No reference server: the spec fixture, with the documented token.
      const nx = await startNxServer({ write: [env.TASKVAULT_REMOTE_TOKEN!] });
      stops.push(nx.stop);
      config = JSON.parse(c.text.replace(`http://127.0.0.1:${documented}`, nx.url));
    } else if (section.title.startsWith('Google')) {
      const s3 = await startS3rver(config.remote.url.replace(/^s3:\/\/([^/]+).*$/, '$1'));
      stops.push(s3.stop);
      assert.is(config.remote.endpoint, 'https://storage.googleapis.com');
      config.remote.endpoint = s3.endpoint;
      assert.match(env.AWS_ACCESS_KEY_ID!, /^GOOG/);
      env = { ...env, ...S3RVER_KEYS };
    }
    if (section.title.startsWith('Azure'))
      await createContainer(`http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`, config.remote.url.split('/')[3]);
    const home = tempDir('tv-doc-home-');
    env = { ...env, AWS_SHARED_CREDENTIALS_FILE: join(home, 'c'), AWS_CONFIG_FILE: join(home, 'f') };

    const a = project(config);
    const first = await runGen(a, env, ['--stdin=ignore']);
    assert.is(first.code, 0, first.err);
    assert.equal(warnings(first), []);
    const b = project(config);
    const second = await runGen(b, env, ['--stdin=ignore']);
    assert.equal(warnings(second), []);
    assert.match(second.err, /hit \(remote\)/);
    assert.is(timesRan(b), 0);
    assert.ok(second.stdout.equals(first.stdout));
    assert.equal(readTreeSnapshot(join(b, 'out')), readTreeSnapshot(join(a, 'out')));

    if (section.title.startsWith('nginx')) {
      const words = retention.split(/\s+/);
      assert.is(words.shift(), 'taskvault');
      const gc = await runCli([...words, '--dry-run'], { cwd: a, env });
      assert.is(gc.code, 0, gc.err);
      assert.match(gc.out, /would remove 0 entries and 0 blobs/);
      assert.match(gc.out, /remote afterwards: 1 entries/);
    }
  });
}

test.run();

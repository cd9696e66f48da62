/**
 * `taskvault gc --remote` on the remotes that can list: nginx WebDAV (PROPFIND), s3rver, Azurite.
 * Two entries, written two seconds apart, share a blob; age and size limits remove the older one
 * and the blobs only it named, never a blob the other still names, and a dry run removes nothing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openBackend } from '../../src/remote/open-backend.js';
import { runCli, tempDir } from '../support/helpers.js';
import { keyOf, project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { NGINX_PASSWORD, NGINX_USER, S3RVER_KEYS, startNginx, startS3rver } from '../support/servers.js';
import { AZURITE_ACCOUNT, startAzurite } from '../support/team-servers.js';

interface Target {
  name: string;
  start(): Promise<{
    cli(prefix: string): { config: Record<string, unknown>; env: Record<string, string> };
    settings(prefix: string): Parameters<typeof openBackend>[0];
    stop(): Promise<void>;
  }>;
}

const isolatedAws = () => {
  const home = tempDir('tv-aws-');
  return { AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'), AWS_CONFIG_FILE: join(home, 'config') };
};

const TARGETS: Target[] = [
  {
    name: 'WebDAV (nginx PROPFIND)',
    async start() {
      const ng = await startNginx({ listing: true });
      const url = (prefix: string) => `${ng.url}/basic/${prefix}`;
      const env = { TASKVAULT_REMOTE_USER: NGINX_USER, TASKVAULT_REMOTE_PASSWORD: NGINX_PASSWORD };
      return {
        cli: (prefix) => ({ config: {}, env: { TASKVAULT_REMOTE_URL: url(prefix), ...env } }),
        settings: (prefix) => ({
          url: url(prefix),
          readOnly: false,
          timeoutMs: 5000,
          username: NGINX_USER,
          password: NGINX_PASSWORD,
        }),
        stop: () => ng.stop(),
      };
    },
  },
  {
    name: 'S3 (s3rver)',
    async start() {
      const s3 = await startS3rver();
      const aws = { ...isolatedAws(), ...S3RVER_KEYS };
      const remote = (prefix: string) => ({ url: `s3://${s3.bucket}/${prefix}`, endpoint: s3.endpoint });
      return {
        cli: (prefix) => ({ config: { remote: remote(prefix) }, env: aws }),
        settings: (prefix) => ({ ...remote(prefix), readOnly: false, timeoutMs: 5000 }),
        stop: () => s3.stop(),
      };
    },
  },
  {
    name: 'Azure Blob (Azurite)',
    async start() {
      const az = await startAzurite();
      await az.createContainer('retention');
      const env = { AZURE_STORAGE_CONNECTION_STRING: az.connectionString };
      const url = (prefix: string) => `azure://${AZURITE_ACCOUNT}/retention/${prefix}`;
      return {
        cli: (prefix) => ({ config: { remote: { url: url(prefix) } }, env }),
        settings: (prefix) => ({ url: url(prefix), readOnly: false, timeoutMs: 5000 }),
        stop: () => az.stop(),
      };
    },
  },
];

const DAY = 86_400_000;

for (const target of TARGETS) {
  const test = suite(`gc --remote: ${target.name}`);
  let server: Awaited<ReturnType<Target['start']>>;
  test.before(async () => {
    server = await target.start();
  });
  test.after(async () => {
    await server?.stop();
  });

  /** Two entries of one task (inputs one and two), two seconds apart; their keys and blob keys. */
  async function fill(prefix: string) {
    const { config, env } = server.cli(prefix);
    const backend = await openBackend(server.settings(prefix), env);
    if (!backend.ok) throw new Error(backend.problem.message);
    const b = backend.value;
    const dir = project(config);
    const started = Date.now();
    assert.is((await runGen(dir, env)).code, 0);
    const oldKey = await keyOf(dir);
    const oldDone = Date.now();
    await new Promise((r) => setTimeout(r, 2000));
    writeFileSync(join(dir, 'src', 'input.txt'), 'a second input\n');
    const newStart = Date.now();
    const second = await runGen(dir, env);
    assert.is(second.code, 0);
    assert.equal(warnings(second), []);
    const newKey = await keyOf(dir);
    const blobsOf = async (key: string) => {
      const got = await b.getEntry(key);
      assert.ok(got.ok && got.value, `entry ${key} is on the remote`);
      const doc = JSON.parse(got.ok ? got.value!.toString() : '{}');
      return new Set(Object.values(doc.blobs as Record<string, { key: string }>).map((w) => w.key));
    };
    const oldBlobs = await blobsOf(oldKey);
    const newBlobs = await blobsOf(newKey);
    const shared = [...oldBlobs].filter((k) => newBlobs.has(k));
    assert.ok(shared.length > 0, 'the two entries share a blob (out/tool.sh)');
    assert.ok(oldDone - started < 60_000);
    return { config, env, b, oldKey, newKey, oldBlobs, newBlobs, shared, newStart };
  }

  const gc = (
    f: { config: Record<string, unknown>; env: Record<string, string> },
    args: string[],
    now?: number,
  ) =>
    runCli(['gc', '--remote', '--json', ...args], {
      cwd: project(f.config),
      env: { ...f.env, ...(now === undefined ? {} : { TASKVAULT_NOW_MS: String(now) }) },
    });

  test('--max-age: the older entry goes, then the blobs only it named; a dry run removes nothing', async () => {
    const f = await fill(`age-${process.pid}`);
    // 14 days after the second upload began, less a second and a half: the first is older than
    // that (it ended two seconds before), the second not (server times are whole seconds).
    const now = f.newStart + 14 * DAY - 1500;
    const dry = await gc(f, ['--max-age', '14d', '--grace', '0s', '--dry-run'], now);
    assert.is(dry.code, 0, dry.err);
    const planned = JSON.parse(dry.out);
    assert.is(planned.entries.aged.count, 1, dry.out);
    assert.is(planned.blobs.count, f.oldBlobs.size - f.shared.length, dry.out);
    assert.ok(
      (await f.b.getEntry(f.oldKey)).ok && ((await f.b.getEntry(f.oldKey)) as { value?: Buffer }).value,
    );

    const r = await gc(f, ['--max-age', '14d', '--grace', '0s'], now);
    assert.is(r.code, 0, r.err);
    const done = JSON.parse(r.out);
    assert.is(done.entries.aged.count, 1);
    assert.is(done.kept.entries, 1);
    assert.equal(await f.b.getEntry(f.oldKey), { ok: true, value: undefined }, 'the old entry is gone');
    for (const k of f.newBlobs)
      assert.equal(await f.b.hasBlob(k), { ok: true, value: true }, `blob ${k} kept`);
    for (const k of f.oldBlobs)
      if (!f.newBlobs.has(k))
        assert.equal(await f.b.hasBlob(k), { ok: true, value: false }, `blob ${k} removed`);

    // The kept entry still gives a byte-identical remote hit to another machine.
    const other = project(f.config);
    writeFileSync(join(other, 'src', 'input.txt'), 'a second input\n');
    const hit = await runGen(other, f.env);
    assert.match(hit.err, /hit \(remote\)/);
    assert.is(timesRan(other), 0);
  });

  test('--max-size: the oldest entries go until the remote fits; blobs younger than --grace stay', async () => {
    const f = await fill(`size-${process.pid}`);
    const all = JSON.parse((await gc(f, ['--dry-run'])).out);
    assert.is(all.kept.entries, 2);
    const limit = `${all.kept.bytes - 1}B`;
    const r = await gc(f, ['--max-size', limit]);
    assert.is(r.code, 0, r.err);
    const done = JSON.parse(r.out);
    assert.is(done.entries.size.count, 1, r.out);
    assert.is(done.blobs.count, 0, 'every blob is younger than the default grace of 1h');
    assert.equal(await f.b.getEntry(f.oldKey), { ok: true, value: undefined });
    const kept = await f.b.getEntry(f.newKey);
    assert.ok(kept.ok && kept.value);
  });

  test('bad flags and remotes that cannot list: one clear line, exit 2 or 74, nothing removed', async () => {
    const f = server.cli(`flags-${process.pid}`);
    const bad = await gc(f, ['--max-age', 'soon']);
    assert.is(bad.code, 2);
    assert.match(bad.err, /invalid --max-age "soon"/);
    const turbo = await runCli(['gc', '--remote'], {
      cwd: project({ remote: { url: 'turbo+http://127.0.0.1:9', team: 't' } }),
      env: { TASKVAULT_REMOTE_TOKEN: 'x' },
    });
    assert.not.equal(turbo.code, 0);
    assert.match(turbo.err, /Turborepo cache API cannot list its content/);
    assert.not.match(turbo.err, /\n\s+at /, 'no stack trace');
  });

  test.run();
}

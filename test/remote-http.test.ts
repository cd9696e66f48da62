/**
 * Team cache over the Bazel HTTP cache layout, against a real nginx (WebDAV PUT) started on
 * 127.0.0.1 by this suite. Each "machine" is a separate copy of the project with its own cache.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readTreeSnapshot } from './helpers.js';
import { keyOf, project, runGen, timesRan, warnings } from './remote-project.js';
import {
  NGINX_PASSWORD,
  NGINX_READ_TOKEN,
  NGINX_USER,
  NGINX_WRITE_TOKEN,
  type Nginx,
  startNginx,
} from './servers.js';

const test = suite('remote: HTTP cache on nginx');
let ng: Nginx;

test.before(async () => {
  ng = await startNginx();
});
test.after(async () => {
  await ng?.stop();
});

const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort() : []);
const accessLog = (): string[] =>
  readFileSync(join(ng.dir, 'access.log'), 'utf8').split('\n').filter(Boolean);

test('two machines share one remote: the first uploads, the second gets a remote hit with identical outputs and logs', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng.url}/team` };
  const a = project();
  const b = project();

  const first = await runGen(a, env);
  assert.is(first.code, 0, first.err);
  assert.is(timesRan(a), 1);
  assert.match(first.err, /taskvault: miss/);
  assert.equal(warnings(first), []);

  const key = await keyOf(a);
  assert.equal(files(join(ng.data, 'team', 'ac')), [key], 'the entry is uploaded under its key');
  const cas = files(join(ng.data, 'team', 'cas'));
  assert.ok(cas.length >= 5, `blobs uploaded: ${cas.join(' ')}`);
  let gzipped = 0;
  for (const name of cas) {
    const bytes = readFileSync(join(ng.data, 'team', 'cas', name));
    // What bazel-remote checks on /cas/ PUTs: the name is the SHA-256 of the bytes stored.
    assert.is(createHash('sha256').update(bytes).digest('hex'), name);
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
      gzipped++;
      assert.ok(bytes.length < 100_000, 'the 600 KB text output travels compressed');
    }
  }
  assert.is(
    gzipped,
    1,
    'only the large compressible output is gzipped (not the random bytes, not small blobs)',
  );

  const second = await runGen(b, env);
  assert.is(second.code, 0, second.err);
  assert.is(timesRan(b), 0, 'machine B did not run the command');
  assert.match(second.err, /taskvault: hit \(remote\)/);
  assert.equal(warnings(second), []);
  assert.equal(second.stdout, first.stdout, 'stdout is byte-identical');
  assert.ok(second.err.startsWith('stderr line\n'), 'stderr replayed before the summary');
  assert.equal(readTreeSnapshot(join(b, 'out')), readTreeSnapshot(join(a, 'out')), 'outputs are identical');
  assert.match(readFileSync(join(b, '.taskvault', 'cache', 'audit.log'), 'utf8'), /HIT run .*origin=remote/);

  const third = await runGen(b, env);
  assert.is(third.code, 0);
  assert.match(third.err, /taskvault: hit [0-9a-f]/, 'the pulled entry now hits locally');
  assert.not.match(third.err, /\(remote\)/);
  assert.is(timesRan(b), 0);
});

test('a blob the remote already has is not uploaded again (HEAD first); the entry goes up last', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng.url}/dedup` };
  const a = project();
  assert.is((await runGen(a, env)).code, 0);
  const before = accessLog().length;
  // --force runs again: only out/sub/random.bin changes, every other blob is already there.
  const again = await runGen(project(), env, ['--force']);
  assert.is(again.code, 0, again.err);
  const lines = accessLog().slice(before);
  const puts = lines.filter((l) => l.includes('"PUT /dedup/cas/'));
  assert.is(puts.length, 1, lines.join('\n'));
  assert.ok(lines.filter((l) => l.includes('"HEAD /dedup/cas/')).length >= 5);
  const last = lines.filter((l) => l.includes('"PUT ')).pop() ?? '';
  assert.match(last, /"PUT \/dedup\/ac\//, 'the entry is written after all its blobs');
});

test('read-only mode reads the remote but never writes to it', async () => {
  const url = `${ng.url}/ro`;
  const ro = await runGen(project(), { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_READ_ONLY: '1' });
  assert.is(ro.code, 0, ro.err);
  assert.equal(files(join(ng.data, 'ro')), [], 'nothing uploaded');

  const writer = project({ remote: { url, readOnly: false } });
  assert.is((await runGen(writer, {})).code, 0);
  assert.is(files(join(ng.data, 'ro', 'ac')).length, 1);

  const reader = project({ remote: { url, readOnly: true } });
  const hit = await runGen(reader, {});
  assert.match(hit.err, /hit \(remote\)/);
  assert.is(timesRan(reader), 0);

  const before = accessLog().length;
  const readerForce = await runGen(reader, {}, ['--force']);
  assert.is(readerForce.code, 0);
  assert.equal(
    accessLog()
      .slice(before)
      .filter((l) => /"(PUT|HEAD) /.test(l)),
    [],
    'a read-only run sends no HEAD or PUT',
  );
});

test('signed entries: the right key hits; a wrong key or a missing signature is a miss with a warning', async () => {
  const url = `${ng.url}/signed`;
  const good = 'team-secret-1';
  const up = await runGen(project(), { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_SIGNATURE_KEY: good });
  assert.is(up.code, 0);
  const doc = JSON.parse(
    readFileSync(join(ng.data, 'signed', 'ac', files(join(ng.data, 'signed', 'ac'))[0]!), 'utf8'),
  );
  assert.match(doc.signature, /^[0-9a-f]{64}$/);

  const wrong = project();
  const w = await runGen(wrong, {
    TASKVAULT_REMOTE_URL: url,
    TASKVAULT_REMOTE_SIGNATURE_KEY: 'someone-else',
    TASKVAULT_REMOTE_READ_ONLY: '1',
  });
  assert.is(w.code, 0);
  assert.is(timesRan(wrong), 1, 'a bad signature is a miss: the command runs');
  assert.match(warnings(w).join('\n'), /bad signature/);
  assert.equal(files(join(wrong, 'out', 'sub')).length, 1);

  const right = project();
  const r = await runGen(right, { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_SIGNATURE_KEY: good });
  assert.match(r.err, /hit \(remote\)/);
  assert.is(timesRan(right), 0);
  assert.equal(warnings(r), []);

  // An unsigned upload, read by a machine that requires signatures.
  const unsignedUrl = `${ng.url}/unsigned`;
  assert.is((await runGen(project(), { TASKVAULT_REMOTE_URL: unsignedUrl })).code, 0);
  const strict = project();
  const m = await runGen(strict, {
    TASKVAULT_REMOTE_URL: unsignedUrl,
    TASKVAULT_REMOTE_SIGNATURE_KEY: good,
    TASKVAULT_REMOTE_READ_ONLY: '1',
  });
  assert.is(m.code, 0);
  assert.is(timesRan(strict), 1);
  assert.match(warnings(m).join('\n'), /not signed/);

  // A signed entry whose content was altered after signing.
  const tamperedUrl = `${ng.url}/tampered`;
  assert.is(
    (await runGen(project(), { TASKVAULT_REMOTE_URL: tamperedUrl, TASKVAULT_REMOTE_SIGNATURE_KEY: good }))
      .code,
    0,
  );
  const acDir = join(ng.data, 'tampered', 'ac');
  const acFile = join(acDir, files(acDir)[0]!);
  const altered = JSON.parse(readFileSync(acFile, 'utf8'));
  altered.entry.exitCode = 7;
  writeFileSync(acFile, JSON.stringify(altered));
  const t = project();
  const tr = await runGen(t, {
    TASKVAULT_REMOTE_URL: tamperedUrl,
    TASKVAULT_REMOTE_SIGNATURE_KEY: good,
    TASKVAULT_REMOTE_READ_ONLY: '1',
  });
  assert.is(tr.code, 0);
  assert.is(timesRan(t), 1);
  assert.match(warnings(tr).join('\n'), /bad signature/);
});

test('poisoned remote entries are refused before anything is written; nothing lands outside the project', async () => {
  const url = `${ng.url}/poison`;
  assert.is((await runGen(project(), { TASKVAULT_REMOTE_URL: url })).code, 0);
  const acDir = join(ng.data, 'poison', 'ac');
  const acFile = join(acDir, files(acDir)[0]!);
  const original = readFileSync(acFile, 'utf8');
  const escapeName = `tv-escape-${process.pid}-${Date.now()}`;

  const poisons: Array<
    [
      string,
      (doc: { entry: Record<string, unknown> & { outputs: Array<Record<string, unknown>> } }) => void,
      RegExp,
    ]
  > = [
    [
      'a .. path',
      (d) => {
        d.entry.outputs[0]!.path = `../${escapeName}`;
      },
      /refused entry path/,
    ],
    [
      'an absolute path',
      (d) => {
        d.entry.outputs[0]!.path = `/tmp/${escapeName}`;
      },
      /refused entry path/,
    ],
    [
      'a symlink out of the tree',
      (d) => void d.entry.outputs.push({ path: 'out/evil', type: 'symlink', target: `../../${escapeName}` }),
      /refused symlink/,
    ],
    [
      'a file written through its own symlink',
      (d) => {
        d.entry.outputs.push({ path: 'out/up', type: 'symlink', target: '..' });
        const file = d.entry.outputs.find((o) => o.type === 'file')!;
        d.entry.outputs.push({ ...file, path: `out/up/${escapeName}` });
      },
      /written through the symlink/,
    ],
    [
      'a working directory outside the project',
      (d) => {
        d.entry.cwd = '..';
      },
      /working directory or output globs/,
    ],
  ];
  for (const [what, poison, expected] of poisons) {
    const doc = JSON.parse(original);
    poison(doc);
    writeFileSync(acFile, JSON.stringify(doc));
    const victim = project();
    const r = await runGen(victim, { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_READ_ONLY: '1' });
    assert.is(r.code, 0, `${what}: ${r.err}`);
    assert.match(warnings(r).join('\n'), expected, what);
    assert.is(timesRan(victim), 1, `${what}: the entry is a miss and the command runs`);
    assert.not.ok(existsSync(join(dirname(victim), escapeName)), `${what}: nothing next to the project`);
    assert.not.ok(existsSync(join('/tmp', escapeName)), `${what}: nothing at the absolute path`);
    assert.not.ok(existsSync(join(victim, 'out', 'evil')), `${what}: no symlink written`);
  }

  // A blob whose bytes do not match the name the entry gives it (invariant 1, remote side).
  writeFileSync(acFile, original);
  const doc = JSON.parse(original);
  const result = doc.entry.outputs.find((o: { path: string }) => o.path === 'out/result.txt');
  const casFile = join(ng.data, 'poison', 'cas', doc.blobs[result.hash].key);
  writeFileSync(casFile, 'THE QUICK BROWN FOX JUMPS OVER THE LAZY CAT\n');
  const victim = project();
  const r = await runGen(victim, { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_READ_ONLY: '1' });
  assert.is(r.code, 0);
  assert.match(warnings(r).join('\n'), /remote blob .* has SHA-256/);
  assert.is(timesRan(victim), 1);
  assert.is(
    readFileSync(join(victim, 'out', 'result.txt'), 'utf8'),
    'THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG\n',
  );
  const blobs = join(victim, '.taskvault', 'cache', 'blobs', result.hash.slice(0, 2), result.hash.slice(2));
  assert.is(
    readFileSync(blobs, 'utf8'),
    'THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG\n',
    'no bad bytes in the local cache',
  );
});

test('basic auth (URL userinfo or env), and Bearer tokens with a read-only token enforced by nginx', async () => {
  const userinfo = `${encodeURIComponent(NGINX_USER)}:${encodeURIComponent(NGINX_PASSWORD)}`;
  const basicUrl = ng.url.replace('http://', `http://${userinfo}@`);
  const up = await runGen(project(), { TASKVAULT_REMOTE_URL: `${basicUrl}/basic/team` });
  assert.is(up.code, 0);
  assert.equal(warnings(up), []);
  assert.is(files(join(ng.data, 'basic', 'team', 'ac')).length, 1);

  const viaEnv = project();
  const hit = await runGen(viaEnv, {
    TASKVAULT_REMOTE_URL: `${ng.url}/basic/team`,
    TASKVAULT_REMOTE_USER: NGINX_USER,
    TASKVAULT_REMOTE_PASSWORD: NGINX_PASSWORD,
  });
  assert.match(hit.err, /hit \(remote\)/);

  const denied = project();
  const no = await runGen(denied, {
    TASKVAULT_REMOTE_URL: `${ng.url.replace('http://', 'http://ci:wrong@')}/basic/team`,
  });
  assert.is(no.code, 0);
  assert.is(timesRan(denied), 1);
  const w = warnings(no).join('\n');
  assert.match(w, /HTTP 401/);
  assert.not.match(w, /wrong/, 'the password never appears in messages');

  // Bearer tokens, with read-only enforced by the server: the read token cannot write.
  const tokens = `${ng.url}/tokens/team`;
  const reader = await runGen(project(), {
    TASKVAULT_REMOTE_URL: tokens,
    TASKVAULT_REMOTE_TOKEN: NGINX_READ_TOKEN,
  });
  assert.is(reader.code, 0);
  assert.match(warnings(reader).join('\n'), /PUT .*HTTP 401/);
  assert.equal(files(join(ng.data, 'tokens', 'team', 'ac')), []);
  const writer = await runGen(project(), {
    TASKVAULT_REMOTE_URL: tokens,
    TASKVAULT_REMOTE_TOKEN: NGINX_WRITE_TOKEN,
  });
  assert.equal(warnings(writer), []);
  assert.is(files(join(ng.data, 'tokens', 'team', 'ac')).length, 1);
  const pr = project();
  const prRun = await runGen(pr, {
    TASKVAULT_REMOTE_URL: tokens,
    TASKVAULT_REMOTE_TOKEN: NGINX_READ_TOKEN,
    TASKVAULT_REMOTE_READ_ONLY: '1',
  });
  assert.match(prRun.err, /hit \(remote\)/);
  assert.equal(warnings(prRun), []);
  const noToken = await runGen(project(), { TASKVAULT_REMOTE_URL: tokens });
  assert.is(noToken.code, 0);
  assert.match(warnings(noToken).join('\n'), /GET .*HTTP 401/);
});

test('with hashAlgorithm sha256 the local and remote names of small blobs agree', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng.url}/sha`, TASKVAULT_HASH_ALGORITHM: 'sha256' };
  const a = project();
  assert.is((await runGen(a, env)).code, 0);
  const b = project();
  const hit = await runGen(b, env);
  assert.match(hit.err, /hit \(remote\)/);
  assert.is(timesRan(b), 0);
  const local = readFileSync(join(b, 'out', 'result.txt'));
  const name = createHash('sha256').update(local).digest('hex');
  assert.ok(files(join(ng.data, 'sha', 'cas')).includes(name));
});

test.run();

/**
 * What a team cache must not be able to do to a machine: serve unsigned or forged entries when
 * signatures are required, write outside the project, serve bytes that don't match their hash, or
 * be read and written without credentials. Against a real nginx (WebDAV PUT) on 127.0.0.1.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { listSorted } from '../support/helpers.js';
import { project, runGen, timesRan, warnings } from '../support/remote-project.js';
import {
  NGINX_PASSWORD,
  NGINX_READ_TOKEN,
  NGINX_USER,
  NGINX_WRITE_TOKEN,
  nginxFor,
} from '../support/servers.js';

const test = suite('remote: trust and auth on nginx');
const ng = nginxFor(test);

test('signed entries: the right key hits; a wrong key or a missing signature is a miss with a warning', async () => {
  const url = `${ng().url}/signed`;
  const good = 'team-secret-1';
  const up = await runGen(project(), { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_SIGNATURE_KEY: good });
  assert.is(up.code, 0);
  const doc = JSON.parse(
    readFileSync(join(ng().data, 'signed', 'ac', listSorted(join(ng().data, 'signed', 'ac'))[0]!), 'utf8'),
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
  assert.equal(listSorted(join(wrong, 'out', 'sub')).length, 1);

  const right = project();
  const r = await runGen(right, { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_SIGNATURE_KEY: good });
  assert.match(r.err, /hit \(remote\)/);
  assert.is(timesRan(right), 0);
  assert.equal(warnings(r), []);

  // An unsigned upload, read by a machine that requires signatures.
  const unsignedUrl = `${ng().url}/unsigned`;
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
  const tamperedUrl = `${ng().url}/tampered`;
  assert.is(
    (await runGen(project(), { TASKVAULT_REMOTE_URL: tamperedUrl, TASKVAULT_REMOTE_SIGNATURE_KEY: good }))
      .code,
    0,
  );
  const acDir = join(ng().data, 'tampered', 'ac');
  const acFile = join(acDir, listSorted(acDir)[0]!);
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
  const url = `${ng().url}/poison`;
  assert.is((await runGen(project(), { TASKVAULT_REMOTE_URL: url })).code, 0);
  const acDir = join(ng().data, 'poison', 'ac');
  const acFile = join(acDir, listSorted(acDir)[0]!);
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
  const casFile = join(ng().data, 'poison', 'cas', doc.blobs[result.hash].key);
  writeFileSync(casFile, 'THE QUICK BROWN FOX JUMPS OVER THE LAZY CAT\n');
  const victim = project();
  const r = await runGen(victim, { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_READ_ONLY: '1' });
  assert.is(r.code, 0);
  assert.match(warnings(r).join('\n'), /remote blob .* has content hash [0-9a-f]+ \(44 bytes\), not /);
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

  // A compressed blob that expands past the size its entry declares is cut off, not inflated.
  const bomb = JSON.parse(original);
  const big = bomb.entry.outputs.find((o: { path: string }) => o.path === 'out/big.txt');
  assert.is(bomb.blobs[big.hash].encoding, 'gzip');
  big.size = 1000;
  writeFileSync(acFile, JSON.stringify(bomb));
  const target = project();
  const b = await runGen(target, { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_READ_ONLY: '1' });
  assert.is(b.code, 0);
  assert.match(warnings(b).join('\n'), /decodes to more than the 1000 bytes its entry says/);
  assert.is(timesRan(target), 1);
  assert.equal(
    readdirSync(join(target, '.taskvault', 'cache', 'tmp')),
    [],
    'no partial download left behind',
  );
});

test('basic auth (URL userinfo or env), and Bearer tokens with a read-only token enforced by nginx', async () => {
  const userinfo = `${encodeURIComponent(NGINX_USER)}:${encodeURIComponent(NGINX_PASSWORD)}`;
  const basicUrl = ng().url.replace('http://', `http://${userinfo}@`);
  const up = await runGen(project(), { TASKVAULT_REMOTE_URL: `${basicUrl}/basic/team` });
  assert.is(up.code, 0);
  assert.equal(warnings(up), []);
  assert.is(listSorted(join(ng().data, 'basic', 'team', 'ac')).length, 1);

  const viaEnv = project();
  const hit = await runGen(viaEnv, {
    TASKVAULT_REMOTE_URL: `${ng().url}/basic/team`,
    TASKVAULT_REMOTE_USER: NGINX_USER,
    TASKVAULT_REMOTE_PASSWORD: NGINX_PASSWORD,
  });
  assert.match(hit.err, /hit \(remote\)/);

  const denied = project();
  const no = await runGen(denied, {
    TASKVAULT_REMOTE_URL: `${ng().url.replace('http://', 'http://ci:wrong@')}/basic/team`,
  });
  assert.is(no.code, 0);
  assert.is(timesRan(denied), 1);
  const w = warnings(no).join('\n');
  assert.match(w, /HTTP 401/);
  assert.not.match(w, /wrong/, 'the password never appears in messages');

  // Bearer tokens, with read-only enforced by the server: the read token cannot write.
  const tokens = `${ng().url}/tokens/team`;
  const reader = await runGen(project(), {
    TASKVAULT_REMOTE_URL: tokens,
    TASKVAULT_REMOTE_TOKEN: NGINX_READ_TOKEN,
  });
  assert.is(reader.code, 0);
  assert.match(warnings(reader).join('\n'), /PUT .*HTTP 401/);
  assert.equal(listSorted(join(ng().data, 'tokens', 'team', 'ac')), []);
  const writer = await runGen(project(), {
    TASKVAULT_REMOTE_URL: tokens,
    TASKVAULT_REMOTE_TOKEN: NGINX_WRITE_TOKEN,
  });
  assert.equal(warnings(writer), []);
  assert.is(listSorted(join(ng().data, 'tokens', 'team', 'ac')).length, 1);
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

test.run();

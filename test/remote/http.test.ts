/**
 * Team cache over the Bazel HTTP cache layout, against a real nginx (WebDAV PUT) started on
 * 127.0.0.1 by this suite. Each "machine" is a separate copy of the project with its own cache.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { listSorted, readTreeSnapshot } from '../support/helpers.js';
import { keyOf, project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { accessLog, nginxFor, startTruncatingProxy } from '../support/servers.js';

const test = suite('remote: HTTP cache on nginx');
const ng = nginxFor(test);

test('two machines share one remote: the first uploads, the second gets a remote hit with identical outputs and logs', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/team` };
  const a = project();
  const b = project();

  const first = await runGen(a, env);
  assert.is(first.code, 0, first.err);
  assert.is(timesRan(a), 1);
  assert.match(first.err, /taskvault: miss/);
  assert.equal(warnings(first), []);

  const key = await keyOf(a);
  assert.equal(listSorted(join(ng().data, 'team', 'ac')), [key], 'the entry is uploaded under its key');
  const cas = listSorted(join(ng().data, 'team', 'cas'));
  assert.ok(cas.length >= 5, `blobs uploaded: ${cas.join(' ')}`);
  let gzipped = 0;
  for (const name of cas) {
    const bytes = readFileSync(join(ng().data, 'team', 'cas', name));
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

test('a blob the remote already has is not uploaded again (HEAD first)', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/dedup` };
  assert.is((await runGen(project(), env)).code, 0);
  const before = accessLog(ng()).length;
  // Another input file: another key, and the same outputs but out/sub/random.bin.
  const other = project();
  writeFileSync(join(other, 'src', 'other.txt'), 'another input\n');
  const again = await runGen(other, env);
  assert.is(again.code, 0, again.err);
  const lines = accessLog(ng()).slice(before);
  const puts = lines.filter((l) => l.includes('"PUT /dedup/cas/'));
  assert.is(puts.length, 1, lines.join('\n'));
  assert.ok(lines.filter((l) => l.includes('"HEAD /dedup/cas/')).length >= 5);
  assert.is(lines.filter((l) => l.includes('"PUT /dedup/ac/')).length, 1, 'the new entry is uploaded');
});

test('write-once: an entry already on the remote is neither replaced nor are its blobs sent again', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/once` };
  const a = project();
  assert.is((await runGen(a, env)).code, 0);
  const acFile = join(ng().data, 'once', 'ac', await keyOf(a));
  const stored = readFileSync(acFile);
  const before = accessLog(ng()).length;
  // --force runs again under the same key (out/sub/random.bin comes out different).
  const again = await runGen(project(), env, ['--force']);
  assert.is(again.code, 0, again.err);
  assert.equal(warnings(again), []);
  const lines = accessLog(ng()).slice(before);
  assert.not.ok(
    lines.some((l) => /"PUT /.test(l)),
    `nothing is uploaded for an entry that is already there:\n${lines.join('\n')}`,
  );
  assert.ok(
    lines.some((l) => l.includes('"HEAD /once/ac/')),
    lines.join('\n'),
  );
  assert.ok(readFileSync(acFile).equals(stored), 'the trusted entry is unchanged');
});

test('read-only mode reads the remote but never writes to it', async () => {
  const url = `${ng().url}/ro`;
  const ro = await runGen(project(), { TASKVAULT_REMOTE_URL: url, TASKVAULT_REMOTE_READ_ONLY: '1' });
  assert.is(ro.code, 0, ro.err);
  assert.equal(listSorted(join(ng().data, 'ro')), [], 'nothing uploaded');

  const writer = project({ remote: { url, readOnly: false } });
  assert.is((await runGen(writer, {})).code, 0);
  assert.is(listSorted(join(ng().data, 'ro', 'ac')).length, 1);

  const reader = project({ remote: { url, readOnly: true } });
  const hit = await runGen(reader, {});
  assert.match(hit.err, /hit \(remote\)/);
  assert.is(timesRan(reader), 0);

  const before = accessLog(ng()).length;
  const readerForce = await runGen(reader, {}, ['--force']);
  assert.is(readerForce.code, 0);
  assert.equal(
    accessLog(ng())
      .slice(before)
      .filter((l) => /"(PUT|HEAD) /.test(l)),
    [],
    'a read-only run sends no HEAD or PUT',
  );
});

test('with hashAlgorithm sha256 the local and remote names of small blobs agree', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/sha`, TASKVAULT_HASH_ALGORITHM: 'sha256' };
  const a = project();
  assert.is((await runGen(a, env)).code, 0);
  const b = project();
  const hit = await runGen(b, env);
  assert.match(hit.err, /hit \(remote\)/);
  assert.is(timesRan(b), 0);
  const local = readFileSync(join(b, 'out', 'result.txt'));
  const name = createHash('sha256').update(local).digest('hex');
  assert.ok(listSorted(join(ng().data, 'sha', 'cas')).includes(name));
});

test('blob bodies cut off on the way: a miss with a warning, the command runs, nothing half-written is kept', async () => {
  // The default outputs are received in memory; a 3 MB one is written to a file as it arrives.
  const bigGen = `import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
if (process.env.RAN_MARKER) appendFileSync(process.env.RAN_MARKER, 'ran\\n');
mkdirSync('out', { recursive: true });
writeFileSync('out/big.bin', randomBytes(3 * 1024 * 1024));
`;
  for (const gen of [undefined, bigGen]) {
    const prefix = gen ? 'cut-big' : 'cut';
    const make = () => {
      const dir = project();
      if (gen) writeFileSync(join(dir, 'gen.mjs'), gen);
      return dir;
    };
    assert.is((await runGen(make(), { TASKVAULT_REMOTE_URL: `${ng().url}/${prefix}` })).code, 0);
    const proxy = await startTruncatingProxy(ng().url, (path) => path.includes('/cas/'));
    try {
      const b = make();
      const r = await runGen(b, {
        TASKVAULT_REMOTE_URL: `${proxy.url}/${prefix}`,
        TASKVAULT_REMOTE_READ_ONLY: '1',
      });
      assert.is(r.code, 0, r.err);
      assert.is(timesRan(b), 1, `${prefix}: the command ran`);
      assert.not.match(r.err, /hit \(remote\)/);
      assert.ok(warnings(r).length >= 1, `${prefix}: a warning says why`);
      assert.equal(readdirSync(join(b, '.taskvault', 'cache', 'tmp')), [], `${prefix}: no temp files left`);
      const again = await runGen(b, {});
      assert.match(again.err, /taskvault: hit [0-9a-f]/, `${prefix}: the local entry is sound`);
    } finally {
      await proxy.stop();
    }
  }
});

test.run();

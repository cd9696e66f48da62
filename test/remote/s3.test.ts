/**
 * Team cache over the S3 API, against s3rver (an S3-compatible server from npm) started on
 * 127.0.0.1 by this suite, with the endpoint override and path-style requests that MinIO and R2 use.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readTreeSnapshot, tempDir } from '../support/helpers.js';
import { project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { S3RVER_KEYS, type S3Server, startS3rver } from '../support/servers.js';

const test = suite('remote: S3 (s3rver)');
let s3: S3Server | undefined;
let endpoint: string;
const KEYS = S3RVER_KEYS;
/** No shared AWS files from the machine running the tests. */
const isolated = (): Record<string, string> => {
  const home = tempDir('tv-aws-');
  return { AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'), AWS_CONFIG_FILE: join(home, 'config') };
};

test.before(async () => {
  s3 = await startS3rver('team-cache');
  endpoint = s3.endpoint;
});
test.after(async () => {
  await s3?.stop();
});

const s3Config = (prefix: string) => ({
  remote: { url: `s3://team-cache/${prefix}`, endpoint, region: 'us-east-1' },
});

test('two machines share one bucket: upload, then a remote hit with identical outputs and stdout', async () => {
  const a = project(s3Config('ci'));
  const b = project(s3Config('ci'));
  const first = await runGen(a, { ...isolated(), ...KEYS });
  assert.is(first.code, 0, first.err);
  assert.equal(warnings(first), []);
  assert.is(timesRan(a), 1);

  const second = await runGen(b, { ...isolated(), ...KEYS });
  assert.is(second.code, 0, second.err);
  assert.equal(warnings(second), []);
  assert.match(second.err, /hit \(remote\)/);
  assert.is(timesRan(b), 0);
  assert.equal(second.stdout, first.stdout);
  assert.equal(readTreeSnapshot(join(b, 'out')), readTreeSnapshot(join(a, 'out')));
});

test('credentials from a shared credentials file and AWS_PROFILE; region and endpoint from env', async () => {
  const home = tempDir('tv-aws-');
  writeFileSync(
    join(home, 'credentials'),
    '[default]\naws_access_key_id = nope\naws_secret_access_key = nope\n\n[cache]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n',
  );
  writeFileSync(join(home, 'config'), '[profile cache]\nregion = us-east-1\n');
  const env = {
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'),
    AWS_CONFIG_FILE: join(home, 'config'),
    AWS_PROFILE: 'cache',
    AWS_ENDPOINT_URL_S3: endpoint,
    TASKVAULT_REMOTE_URL: 's3://team-cache/profile',
  };
  const up = await runGen(project(), env);
  assert.is(up.code, 0);
  assert.equal(warnings(up), []);
  const other = project();
  const hit = await runGen(other, env);
  assert.match(hit.err, /hit \(remote\)/);
  assert.is(timesRan(other), 0);
});

test('credentials the server refuses: a warning, and the run goes on locally', async () => {
  // s3rver checks the access key id (V4 signatures themselves it accepts unverified).
  const dir = project(s3Config('wrong'));
  const r = await runGen(dir, {
    ...isolated(),
    AWS_ACCESS_KEY_ID: 'SOMEONE',
    AWS_SECRET_ACCESS_KEY: 'not-the-secret',
  });
  assert.is(r.code, 0);
  assert.is(timesRan(dir), 1);
  const w = warnings(r).join('\n');
  assert.match(w, /HTTP 403 \(InvalidAccessKeyId\)/);
  assert.not.match(w, /not-the-secret/);
});

test('no credentials at all: one warning, no requests, the run goes on', async () => {
  const dir = project(s3Config('none'));
  const r = await runGen(dir, {
    ...isolated(),
    AWS_ACCESS_KEY_ID: undefined,
    AWS_SECRET_ACCESS_KEY: undefined,
    AWS_PROFILE: undefined,
  });
  assert.is(r.code, 0);
  assert.is(timesRan(dir), 1);
  const w = warnings(r);
  assert.is(w.length, 1);
  assert.match(w[0]!, /no AWS credentials/);
});

test.run();

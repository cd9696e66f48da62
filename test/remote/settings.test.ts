/** The remote cache's pure parts: settings from config and env, and the ~/.aws file reader. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { findAwsCredentials, findAwsRegion, readIni } from '../../src/remote/aws-credentials.js';
import { resolveRemote } from '../../src/remote/settings.js';
import { tempDir } from '../support/helpers.js';

const test = suite('remote: settings and credentials');

test('the environment overrides the config; an empty TASKVAULT_REMOTE_URL turns the remote off', () => {
  assert.is(resolveRemote(undefined, {}), undefined);
  const config = { url: 'https://a.example/c', readOnly: true, token: 'cfg', timeoutMs: 500 };
  assert.equal(resolveRemote(config, {}), {
    url: 'https://a.example/c',
    readOnly: true,
    token: 'cfg',
    timeoutMs: 500,
  });
  const env = {
    TASKVAULT_REMOTE_URL: 's3://b/p',
    TASKVAULT_REMOTE_READ_ONLY: '0',
    TASKVAULT_REMOTE_TOKEN: 'env',
    TASKVAULT_REMOTE_SIGNATURE_KEY: 'k',
  };
  assert.equal(resolveRemote(config, env), {
    url: 's3://b/p',
    readOnly: false,
    token: 'env',
    timeoutMs: 500,
    signatureKey: 'k',
  });
  assert.is(resolveRemote(config, { TASKVAULT_REMOTE_URL: '' }), undefined);
  assert.is(
    resolveRemote(undefined, { TASKVAULT_REMOTE_URL: 'http://x', TASKVAULT_REMOTE_READ_ONLY: '1' })?.readOnly,
    true,
  );
});

test('AWS credentials: env first, then the profile in the credentials file, then the config file', () => {
  const dir = tempDir('tv-aws-');
  const credentials = join(dir, 'credentials');
  const config = join(dir, 'config');
  writeFileSync(
    credentials,
    '# comment\n[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n\n[ci]\nAWS_ACCESS_KEY_ID=CI\naws_secret_access_key=cisecret\naws_session_token = tok\n',
  );
  writeFileSync(
    config,
    '[default]\nregion = eu-west-1\n[profile other]\nregion = ap-south-1\naws_access_key_id = OTH\naws_secret_access_key = othsecret\n',
  );
  const files = { AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: config };
  assert.is(
    findAwsCredentials({ ...files, AWS_ACCESS_KEY_ID: 'ENV', AWS_SECRET_ACCESS_KEY: 's' })?.accessKeyId,
    'ENV',
  );
  assert.is(findAwsCredentials(files)?.accessKeyId, 'DEF');
  const ci = findAwsCredentials({ ...files, AWS_PROFILE: 'ci' });
  assert.is(ci?.accessKeyId, 'CI');
  assert.is(ci?.sessionToken, 'tok');
  assert.is(findAwsCredentials({ ...files, AWS_PROFILE: 'other' })?.accessKeyId, 'OTH');
  assert.is(findAwsCredentials({ ...files, AWS_PROFILE: 'missing' }), undefined);
  assert.is(findAwsRegion(files), 'eu-west-1');
  assert.is(findAwsRegion({ ...files, AWS_PROFILE: 'other' }), 'ap-south-1');
  assert.is(findAwsRegion({ ...files, AWS_REGION: 'us-west-2' }), 'us-west-2');
  assert.equal(readIni(join(dir, 'nope')), {});
});

test.run();

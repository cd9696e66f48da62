/** The backend conformance suite against s3rver, an S3-compatible server, path-style like MinIO/R2. */
import { join } from 'node:path';
import { tempDir } from '../support/helpers.js';
import { S3RVER_KEYS, startS3rver } from '../support/servers.js';
import { conformance } from './conformance.js';

const WRONG = { AWS_ACCESS_KEY_ID: 'SOMEONE', AWS_SECRET_ACCESS_KEY: 'not-the-secret-9c1e' };
/** No shared AWS files from the machine running the tests. */
const isolated = (): Record<string, string> => {
  const home = tempDir('tv-aws-');
  return { AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'), AWS_CONFIG_FILE: join(home, 'config') };
};

conformance({
  name: 'S3 (s3rver)',
  // s3rver checks the access key id; S3 names the reason in its XML error body.
  wrongCredentials: /HTTP 403 \(InvalidAccessKeyId\)/,
  wrongSecret: WRONG.AWS_SECRET_ACCESS_KEY,
  async start() {
    const s3 = await startS3rver();
    return {
      remote: ({ prefix, base, timeoutMs, wrongCredentials }) => ({
        settings: {
          url: `s3://${s3.bucket}/${prefix}`,
          endpoint: base ?? s3.endpoint,
          region: 'us-east-1',
          readOnly: false,
          timeoutMs,
        },
        env: { ...isolated(), ...(wrongCredentials ? WRONG : S3RVER_KEYS) },
      }),
      cli: (prefix, base) => ({
        config: {
          remote: { url: `s3://${s3.bucket}/${prefix}`, endpoint: base ?? s3.endpoint, region: 'us-east-1' },
        },
        env: { ...isolated(), ...S3RVER_KEYS },
      }),
      stop: () => s3.stop(),
    };
  },
});

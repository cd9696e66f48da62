import { AwsV4Signer } from 'aws4fetch';
import { type AwsCredentials, findAwsCredentials, findAwsRegion } from './aws-credentials.js';
import { done, problem, type RemoteResult } from './backend.js';
import { type ListedObject, OUR_KEY, type RemoteListing } from './listing.js';
import type { RemoteSettings } from './settings.js';
import { discard, readAll, redact, send, statusProblem } from './transport.js';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * Listing (ListObjectsV2) and deleting for an s3:// remote, with the same addressing as ./s3.ts:
 * path-style under an endpoint override (MinIO, R2, GCS's interoperability endpoint), else AWS's.
 */
export function openS3Listing(
  url: URL,
  s: RemoteSettings,
  env: NodeJS.ProcessEnv,
): RemoteResult<RemoteListing> {
  const credentials = findAwsCredentials(env);
  if (!credentials)
    return problem({ message: 'no AWS credentials for the s3:// remote', retryable: false, stop: true });
  const region = s.region || findAwsRegion(env) || 'us-east-1';
  const endpoint = s.endpoint || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  return done(new S3Listing(url, region, endpoint, credentials, s.timeoutMs));
}

class S3Listing implements RemoteListing {
  readonly label: string;
  private readonly bucketUrl: string;
  private readonly prefix: string;

  constructor(
    url: URL,
    private readonly region: string,
    endpoint: string | undefined,
    private readonly credentials: AwsCredentials,
    private readonly timeoutMs: number,
  ) {
    const bucket = url.hostname;
    this.prefix = url.pathname.replace(/^\/+|\/+$/g, '');
    this.label = `s3://${bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    if (endpoint) this.bucketUrl = `${endpoint.replace(/\/+$/, '')}/${bucket}`;
    else if (bucket.includes('.')) this.bucketUrl = `https://s3.${region}.amazonaws.com/${bucket}`;
    else this.bucketUrl = `https://${bucket}.s3.${region}.amazonaws.com`;
  }

  private async request(method: 'GET' | 'DELETE', url: URL) {
    const init: ConstructorParameters<typeof AwsV4Signer>[0] = {
      method,
      url: url.href,
      headers: { 'x-amz-content-sha256': EMPTY_SHA256 },
      accessKeyId: this.credentials.accessKeyId,
      secretAccessKey: this.credentials.secretAccessKey,
      service: 's3',
      region: this.region,
    };
    if (this.credentials.sessionToken) init.sessionToken = this.credentials.sessionToken;
    const signed = await new AwsV4Signer(init).sign();
    const headers: Record<string, string> = {};
    signed.headers.forEach((v, k) => {
      headers[k] = v;
    });
    return send({ method, url: new URL(signed.url.toString()), headers, timeoutMs: this.timeoutMs });
  }

  async list(kind: 'ac' | 'cas'): Promise<RemoteResult<ListedObject[]>> {
    const within = `${this.prefix ? `${this.prefix}/` : ''}${kind}/`;
    const out: ListedObject[] = [];
    let token = '';
    do {
      const url = new URL(this.bucketUrl);
      url.searchParams.set('list-type', '2');
      url.searchParams.set('prefix', within);
      if (token) url.searchParams.set('continuation-token', token);
      const r = await this.request('GET', url);
      if (!r.ok) return r;
      const text = await readAll(r.value.body, 64 * 1024 * 1024).then(
        (b) => b.toString('utf8'),
        () => '',
      );
      if (r.value.status !== 200) {
        const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
        return statusProblem('GET', url, r.value.status, code ? `(${code})` : '');
      }
      for (const [, item] of text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const name = tag(item!, 'Key') ?? '';
        const key = name.slice(within.length);
        if (!name.startsWith(within) || !OUR_KEY.test(key)) continue;
        out.push({
          key,
          size: Number(tag(item!, 'Size') ?? 0),
          modifiedMs: Date.parse(tag(item!, 'LastModified') ?? '') || 0,
        });
      }
      token = tag(text, 'IsTruncated') === 'true' ? (tag(text, 'NextContinuationToken') ?? '') : '';
    } while (token);
    return done(out);
  }

  async remove(kind: 'ac' | 'cas', key: string): Promise<RemoteResult<void>> {
    const url = new URL(`${this.bucketUrl}/${this.prefix ? `${this.prefix}/` : ''}${kind}/${key}`);
    const r = await this.request('DELETE', url);
    if (!r.ok) return r;
    discard(r.value.body);
    if (r.value.status === 204 || r.value.status === 200 || r.value.status === 404) return done(undefined);
    return statusProblem('DELETE', new URL(redact(url)), r.value.status);
  }
}

const tag = (xml: string, name: string): string | undefined =>
  new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1]?.replace(/&amp;/g, '&');

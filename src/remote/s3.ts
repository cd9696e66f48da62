import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
// Why aws4fetch and not @aws-sdk/client-s3: four requests (GET/PUT/HEAD of one object) need only a
// SigV4 signer. aws4fetch is one small file with no dependencies (widely used, e.g. on Cloudflare
// Workers with R2); the SDK would add about a hundred packages and tens of MB to every install for
// code that only teams with an S3 remote run. The credential chain's static sources are read by
// ./aws-credentials.ts. This module is imported lazily, only for s3:// remotes.
import { AwsV4Signer } from 'aws4fetch';
import { type AwsCredentials, findAwsCredentials, findAwsRegion } from './aws-credentials.js';
import { done, problem, type RemoteBackend, type RemoteResult } from './backend.js';
import { blobReply, entryReply, existsReply } from './replies.js';
import type { RemoteSettings } from './settings.js';
import { discard, readAll, send, statusProblem } from './transport.js';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * s3://bucket/prefix through the S3 API: objects <prefix>/ac/<key> and <prefix>/cas/<sha256>.
 * With an endpoint override (config `endpoint`, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) requests
 * are path-style, as MinIO, R2 and GCS's interop endpoint expect. Every PUT signs the SHA-256 of its
 * body, so the server itself rejects a body damaged on the way.
 */
export function openS3Backend(
  url: URL,
  s: RemoteSettings,
  env: NodeJS.ProcessEnv,
): RemoteResult<RemoteBackend> {
  const credentials = findAwsCredentials(env);
  if (!credentials) {
    return problem({
      message:
        'no AWS credentials for the s3:// remote (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE with ~/.aws/credentials)',
      retryable: false,
      stop: true,
    });
  }
  const region = s.region || findAwsRegion(env) || 'us-east-1';
  const endpoint = s.endpoint || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  return done(new S3Backend(url, region, endpoint, credentials, s.timeoutMs));
}

class S3Backend implements RemoteBackend {
  readonly label: string;
  private readonly base: string;

  constructor(
    url: URL,
    private readonly region: string,
    endpoint: string | undefined,
    private readonly credentials: AwsCredentials,
    private readonly timeoutMs: number,
  ) {
    const bucket = url.hostname;
    const prefix = url.pathname.replace(/^\/+|\/+$/g, '');
    const tail = prefix ? `/${prefix}` : '';
    this.label = `s3://${bucket}${tail}`;
    if (endpoint) this.base = `${endpoint.replace(/\/+$/, '')}/${bucket}${tail}`;
    else if (bucket.includes('.')) this.base = `https://s3.${region}.amazonaws.com/${bucket}${tail}`;
    else this.base = `https://${bucket}.s3.${region}.amazonaws.com${tail}`;
  }

  private async request(
    method: 'GET' | 'PUT' | 'HEAD',
    kind: 'ac' | 'cas',
    key: string,
    payloadSha256: string,
    body?: { bytes: Buffer } | { file: string; size: number },
  ) {
    const url = new URL(`${this.base}/${kind}/${key}`);
    const init: ConstructorParameters<typeof AwsV4Signer>[0] = {
      method,
      url: url.href,
      headers: { 'x-amz-content-sha256': payloadSha256 },
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
    const r = await send(
      body
        ? { method, url, headers, body, timeoutMs: this.timeoutMs }
        : { method, url, headers, timeoutMs: this.timeoutMs },
    );
    return { url, r };
  }

  async getEntry(key: string): Promise<RemoteResult<Buffer | undefined>> {
    const { url, r } = await this.request('GET', 'ac', key, EMPTY_SHA256);
    return entryReply(url, r, (m, u, status, body) => this.failed(m, u, status, body));
  }

  async putEntry(key: string, bytes: Buffer): Promise<RemoteResult<void>> {
    const sha = createHash('sha256').update(bytes).digest('hex');
    const { url, r } = await this.request('PUT', 'ac', key, sha, { bytes });
    if (!r.ok) return r;
    if (r.value.status !== 200) return this.failed('PUT', url, r.value.status, r.value.body);
    discard(r.value.body);
    return done(undefined);
  }

  async hasBlob(key: string): Promise<RemoteResult<boolean>> {
    const { url, r } = await this.request('HEAD', 'cas', key, EMPTY_SHA256);
    return existsReply(url, r);
  }

  async getBlob(key: string, consume: (body: Readable) => Promise<void>): Promise<RemoteResult<boolean>> {
    const { url, r } = await this.request('GET', 'cas', key, EMPTY_SHA256);
    return blobReply(url, r, consume, (m, u, status, body) => this.failed(m, u, status, body));
  }

  async putBlob(key: string, file: string, size: number): Promise<RemoteResult<void>> {
    // The CAS key is the SHA-256 of the uploaded bytes: exactly the payload hash SigV4 signs.
    const { url, r } = await this.request('PUT', 'cas', key, key, { file, size });
    if (!r.ok) return r;
    if (r.value.status !== 200) return this.failed('PUT', url, r.value.status, r.value.body);
    discard(r.value.body);
    return done(undefined);
  }

  /** S3 explains errors in an XML body: keep its <Code> (e.g. SignatureDoesNotMatch) for the warning. */
  private async failed(method: string, url: URL, status: number, body: import('node:http').IncomingMessage) {
    // The error body only adds detail to the message: unreadable, the status alone says it.
    const text = (await readAll(body, 16 * 1024).catch(() => Buffer.alloc(0))).toString();
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
    return statusProblem(method, url, status, code ? `(${code})` : '');
  }
}

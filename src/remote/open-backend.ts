import { done, problem, type RemoteBackend, type RemoteResult } from './backend.js';
import type { RemoteSettings } from './settings.js';

/** Picks the backend for a URL; S3 code (and its signer) loads only when an s3:// remote is used. */
export async function openBackend(
  s: RemoteSettings,
  env: NodeJS.ProcessEnv,
): Promise<RemoteResult<RemoteBackend>> {
  let url: URL;
  try {
    url = new URL(s.url);
  } catch {
    // Not a URL: said as a problem that turns the remote off for this run.
    return problem({
      message: `remote url ${JSON.stringify(s.url)} is not a URL`,
      retryable: false,
      stop: true,
    });
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    const { HttpBackend } = await import('./http.js');
    return done(new HttpBackend(url, s));
  }
  if (url.protocol === 's3:') {
    const { openS3Backend } = await import('./s3.js');
    return openS3Backend(url, s, env);
  }
  return problem({
    message: `remote url ${url.protocol}//… is not supported (use http(s):// or s3://)`,
    retryable: false,
    stop: true,
  });
}

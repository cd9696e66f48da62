import { done, problem, type RemoteBackend, type RemoteResult } from './backend.js';
import type { RemoteSettings } from './settings.js';

/**
 * Picks the backend for a URL; each backend's code (and S3's signer) loads only when used. Every
 * backend comes back write-once (./write-once.ts): an entry already on the remote is never replaced.
 */
export async function openBackend(
  s: RemoteSettings,
  env: NodeJS.ProcessEnv,
): Promise<RemoteResult<RemoteBackend>> {
  const opened = await pickBackend(s, env);
  if (!opened.ok) return opened;
  const { writeOnce } = await import('./write-once.js');
  return done(writeOnce(opened.value));
}

async function pickBackend(s: RemoteSettings, env: NodeJS.ProcessEnv): Promise<RemoteResult<RemoteBackend>> {
  const api = /^(turbo|nx)\+/i.exec(s.url)?.[1]?.toLowerCase() ?? s.protocol ?? 'bazel';
  let url: URL;
  try {
    url = new URL(s.url.replace(/^(turbo|nx)\+/i, ''));
  } catch {
    return problem({
      message: `remote url ${JSON.stringify(s.url)} is not a URL`,
      retryable: false,
      stop: true,
    });
  }
  if ((url.protocol === 'http:' || url.protocol === 'https:') && api === 'turbo') {
    const { openTurboBackend } = await import('./turbo.js');
    return openTurboBackend(url, s);
  }
  if ((url.protocol === 'http:' || url.protocol === 'https:') && api === 'nx') {
    const { NxBackend } = await import('./nx.js');
    return done(new NxBackend(url, s));
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    const { HttpBackend } = await import('./http.js');
    return done(new HttpBackend(url, s));
  }
  if (url.protocol === 's3:') {
    const { openS3Backend } = await import('./s3.js');
    return openS3Backend(url, s, env);
  }
  if (url.protocol === 'azure:') {
    const { openAzureBackend } = await import('./azure.js');
    return openAzureBackend(url, s, env);
  }
  return problem({
    message: `remote url ${url.protocol}//… is not supported (use http(s)://, s3://, azure://, turbo+http(s):// or nx+http(s)://)`,
    retryable: false,
    stop: true,
  });
}

import { createHmac } from 'node:crypto';

/**
 * Azure Storage credentials and endpoint, from a connection string or the variables Azure's own
 * tools read (AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN).
 */
export type AzureAuth = { kind: 'sharedKey'; account: string; key: Buffer } | { kind: 'sas'; token: string };

/** Azurite's and the storage emulator's well-known development account (public, in Azure's docs). */
export const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzureAccess {
  auth: AzureAuth;
  /** Where the account's blob service is, e.g. https://acct.blob.core.windows.net (no slash at the end). */
  endpoint: string;
}

export type AzureFound = { ok: true; value: AzureAccess } | { ok: false; message: string };

/** Parses `Name=value;Name=value` (values may contain '=', e.g. base64 keys and SAS tokens). */
export function parseConnectionString(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim().toLowerCase()] = part.slice(i + 1).trim();
  }
  return out;
}

export function findAzureAccess(
  account: string,
  endpoint: string | undefined,
  env: NodeJS.ProcessEnv,
): AzureFound {
  const cs = env.AZURE_STORAGE_CONNECTION_STRING
    ? parseConnectionString(env.AZURE_STORAGE_CONNECTION_STRING)
    : undefined;
  if (cs && cs.usedevelopmentstorage === 'true') {
    cs.accountname ??= DEV_ACCOUNT;
    cs.accountkey ??= DEV_KEY;
    cs.blobendpoint ??= `http://127.0.0.1:10000/${DEV_ACCOUNT}`;
  }
  if (cs?.accountname && cs.accountname !== account)
    return {
      ok: false,
      message: `AZURE_STORAGE_CONNECTION_STRING is for account ${cs.accountname}, the remote url names ${account}`,
    };
  const suffix = cs?.endpointsuffix ?? 'core.windows.net';
  const protocol = cs?.defaultendpointsprotocol ?? 'https';
  const base = (endpoint ?? cs?.blobendpoint ?? `${protocol}://${account}.blob.${suffix}`).replace(
    /\/+$/,
    '',
  );
  const sas = env.AZURE_STORAGE_SAS_TOKEN || cs?.sharedaccesssignature;
  const key = env.AZURE_STORAGE_KEY || cs?.accountkey;
  if (key)
    return {
      ok: true,
      value: { endpoint: base, auth: { kind: 'sharedKey', account, key: Buffer.from(key, 'base64') } },
    };
  if (sas)
    return { ok: true, value: { endpoint: base, auth: { kind: 'sas', token: sas.replace(/^\?/, '') } } };
  return {
    ok: false,
    message:
      'no Azure credentials for the azure:// remote (set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN)',
  };
}

export const AZURE_API_VERSION = '2021-08-06';

/**
 * Headers for one request: x-ms-date and x-ms-version, and with a shared key the Authorization of
 * Azure's SharedKey scheme (an HMAC-SHA256 over the method, standard headers, x-ms-* headers and
 * the resource). A SAS token goes in the URL instead (see `authorizedUrl`).
 */
export function signAzure(
  auth: AzureAuth,
  method: string,
  url: URL,
  headers: Record<string, string>,
  contentLength: number,
): Record<string, string> {
  const out: Record<string, string> = {
    ...headers,
    'x-ms-date': new Date().toUTCString(),
    'x-ms-version': AZURE_API_VERSION,
  };
  if (auth.kind !== 'sharedKey') return out;
  const h = (name: string) => out[name] ?? '';
  const canonicalHeaders = Object.keys(out)
    .filter((k) => k.startsWith('x-ms-'))
    .sort()
    .map((k) => `${k}:${out[k]!.trim()}\n`)
    .join('');
  const params = [...url.searchParams.keys()].filter((k, i, a) => a.indexOf(k) === i).sort();
  const canonicalResource =
    `/${auth.account}${url.pathname}` +
    params.map((k) => `\n${k.toLowerCase()}:${url.searchParams.getAll(k).sort().join(',')}`).join('');
  const toSign = [
    method,
    h('content-encoding'),
    h('content-language'),
    contentLength > 0 ? String(contentLength) : '',
    h('content-md5'),
    h('content-type'),
    '', // Date: x-ms-date is used instead
    h('if-modified-since'),
    h('if-match'),
    h('if-none-match'),
    h('if-unmodified-since'),
    h('range'),
    canonicalHeaders + canonicalResource,
  ].join('\n');
  const signature = createHmac('sha256', auth.key).update(toSign, 'utf8').digest('base64');
  out.authorization = `SharedKey ${auth.account}:${signature}`;
  return out;
}

/** The URL a request goes to: with a SAS token, the token's parameters appended. */
export function authorizedUrl(auth: AzureAuth, url: URL): URL {
  if (auth.kind !== 'sas') return url;
  const u = new URL(url.href);
  for (const [k, v] of new URLSearchParams(auth.token)) u.searchParams.append(k, v);
  return u;
}

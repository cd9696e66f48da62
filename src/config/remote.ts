import type { RemoteConfig } from './types.js';

/** The remote cache as configured: the config file's `remote` block with the environment on top. */
export interface RemoteSettings {
  url: string;
  /** The API of an http(s):// url (turbo+/nx+ url prefixes say the same). */
  protocol?: 'bazel' | 'turbo' | 'nx';
  /** Turborepo team (TASKVAULT_REMOTE_TEAM or config). */
  team?: string;
  readOnly: boolean;
  token?: string;
  endpoint?: string;
  region?: string;
  timeoutMs: number;
  /** HMAC key for signing entries; only ever from the environment, never from a committed file. */
  signatureKey?: string;
  /** HTTP basic auth from the environment (the URL's userinfo works too). */
  username?: string;
  password?: string;
}

// Idle time per request; a hung server stops the remote for the run, so this bounds what it adds.
export const DEFAULT_REMOTE_TIMEOUT_MS = 5_000;

const truthy = (v: string | undefined): boolean => v !== undefined && v !== '' && v !== '0' && v !== 'false';

/**
 * Merges config and env. TASKVAULT_REMOTE_URL overrides the config's url; set to '' it turns the
 * configured remote off (e.g. on a laptop without network). Kept free of imports so that resolving
 * settings never loads the remote code.
 */
export function resolveRemote(
  config: RemoteConfig | undefined,
  env: NodeJS.ProcessEnv,
): RemoteSettings | undefined {
  const url = env.TASKVAULT_REMOTE_URL ?? config?.url;
  if (!url) return undefined;
  const s: RemoteSettings = {
    url,
    readOnly:
      env.TASKVAULT_REMOTE_READ_ONLY !== undefined
        ? truthy(env.TASKVAULT_REMOTE_READ_ONLY)
        : config?.readOnly === true,
    timeoutMs: config?.timeoutMs ?? DEFAULT_REMOTE_TIMEOUT_MS,
  };
  const token = env.TASKVAULT_REMOTE_TOKEN || config?.token;
  if (token) s.token = token;
  if (config?.protocol) s.protocol = config.protocol;
  const team = env.TASKVAULT_REMOTE_TEAM || config?.team;
  if (team) s.team = team;
  if (config?.endpoint) s.endpoint = config.endpoint;
  if (config?.region) s.region = config.region;
  if (env.TASKVAULT_REMOTE_SIGNATURE_KEY) s.signatureKey = env.TASKVAULT_REMOTE_SIGNATURE_KEY;
  if (env.TASKVAULT_REMOTE_USER) s.username = env.TASKVAULT_REMOTE_USER;
  if (env.TASKVAULT_REMOTE_PASSWORD) s.password = env.TASKVAULT_REMOTE_PASSWORD;
  return s;
}

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Where they came from, for messages (never the secret itself). */
  source: string;
}

/**
 * The static part of the standard AWS credential chain, in the SDK's order: AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, then the profile (AWS_PROFILE, else `default`) in the
 * shared credentials file, then in the config file. Not covered: SSO, instance metadata, container
 * and web-identity providers; `aws configure export-credentials --format env` turns those into env
 * vars, and GitHub's configure-aws-credentials action already exports them.
 */
export function findAwsCredentials(env: NodeJS.ProcessEnv): AwsCredentials | undefined {
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    const c: AwsCredentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      source: 'AWS_ACCESS_KEY_ID',
    };
    if (env.AWS_SESSION_TOKEN) c.sessionToken = env.AWS_SESSION_TOKEN;
    return c;
  }
  const profile = env.AWS_PROFILE || env.AWS_DEFAULT_PROFILE || 'default';
  const files: Array<[string, string]> = [
    [env.AWS_SHARED_CREDENTIALS_FILE || join(homedir(), '.aws', 'credentials'), profile],
    [
      env.AWS_CONFIG_FILE || join(homedir(), '.aws', 'config'),
      profile === 'default' ? 'default' : `profile ${profile}`,
    ],
  ];
  for (const [file, section] of files) {
    const values = readIni(file)[section];
    if (values?.aws_access_key_id && values.aws_secret_access_key) {
      const c: AwsCredentials = {
        accessKeyId: values.aws_access_key_id,
        secretAccessKey: values.aws_secret_access_key,
        source: `${file} [${section}]`,
      };
      if (values.aws_session_token) c.sessionToken = values.aws_session_token;
      return c;
    }
  }
  return undefined;
}

/** Region as the SDK finds it: AWS_REGION, AWS_DEFAULT_REGION, then the profile in the config file. */
export function findAwsRegion(env: NodeJS.ProcessEnv): string | undefined {
  if (env.AWS_REGION) return env.AWS_REGION;
  if (env.AWS_DEFAULT_REGION) return env.AWS_DEFAULT_REGION;
  const profile = env.AWS_PROFILE || env.AWS_DEFAULT_PROFILE || 'default';
  const file = env.AWS_CONFIG_FILE || join(homedir(), '.aws', 'config');
  return readIni(file)[profile === 'default' ? 'default' : `profile ${profile}`]?.region;
}

/** The INI dialect of ~/.aws/*: [section], key = value, # and ; comments. */
export function readIni(file: string): Record<string, Record<string, string>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // No such file (the usual case) or unreadable: no credentials from it; the caller says so.
    return {};
  }
  const out: Record<string, Record<string, string>> = {};
  let current: Record<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (section) {
      current = out[section[1]!] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (current && eq > 0) current[line.slice(0, eq).trim().toLowerCase()] = line.slice(eq + 1).trim();
  }
  return out;
}

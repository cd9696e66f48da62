import { parseDuration, parseSize } from '../util/format.js';
import { err, failure, ok, type Result } from '../util/result.js';
import type { PolicyConfig, TaskVaultConfig } from './types.js';

type Check = (value: unknown, field: string) => string | undefined;

const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'string' ? JSON.stringify(v) : typeof v;

const isString: Check = (v) => (typeof v === 'string' ? undefined : `must be a string (got ${describe(v)})`);
const isBool: Check = (v) =>
  typeof v === 'boolean' ? undefined : `must be true or false (got ${describe(v)})`;
const isPositive: Check = (v) =>
  typeof v === 'number' && Number.isFinite(v) && v > 0
    ? undefined
    : `must be a positive number (got ${describe(v)})`;
const isFraction: Check = (v) =>
  typeof v === 'number' && v > 0 && v <= 1 ? undefined : `must be a number in (0, 1] (got ${describe(v)})`;
const oneOf =
  (...allowed: string[]): Check =>
  (v) =>
    typeof v === 'string' && allowed.includes(v)
      ? undefined
      : `must be one of ${allowed.map((a) => `'${a}'`).join(', ')} (got ${describe(v)})`;
const stringArray: Check = (v) =>
  Array.isArray(v) && v.every((s) => typeof s === 'string')
    ? undefined
    : `must be an array of strings (got ${describe(v)})`;
const durationLike: Check = (v) =>
  (typeof v === 'number' && v > 0) || (typeof v === 'string' && parseDuration(v) !== undefined)
    ? undefined
    : `must be seconds or a duration like '7d' (got ${describe(v)})`;
const sizeLike: Check = (v) =>
  (typeof v === 'number' && v > 0) || (typeof v === 'string' && parseSize(v) !== undefined)
    ? undefined
    : `must be bytes or a size like '500MB' (got ${describe(v)})`;
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function checkFields(
  obj: Record<string, unknown>,
  prefix: string,
  schema: Record<string, Check>,
  required: string[] = [],
): string | undefined {
  for (const key of required) if (!(key in obj)) return `${prefix}${key} is required`;
  for (const [key, value] of Object.entries(obj)) {
    const check = schema[key];
    if (!check) return `${prefix}${key} is not a known field (known: ${Object.keys(schema).join(', ')})`;
    if (value === undefined) continue;
    const problem = check(value, `${prefix}${key}`);
    if (problem) return problem.startsWith(`${prefix}${key}`) ? problem : `${prefix}${key} ${problem}`;
  }
  return undefined;
}

const policySchema: Record<string, Check> = {
  ttlSeconds: durationLike,
  maxSizeBytes: sizeLike,
  strategy: oneOf('lru'),
};

const policy: Check = (v, field) =>
  isObject(v) ? checkFields(v, `${field}.`, policySchema) : `must be an object (got ${describe(v)})`;

const taskSchema: Record<string, Check> = {
  command: (v) =>
    typeof v === 'string' || (Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string'))
      ? undefined
      : `must be a string or a non-empty array of strings (got ${describe(v)})`,
  inputs: stringArray,
  outputs: stringArray,
  env: stringArray,
  cacheFailures: isBool,
  cwd: isString,
  policy,
};

const recordOf =
  (inner: (v: Record<string, unknown>, field: string) => string | undefined): Check =>
  (v, field) => {
    if (!isObject(v)) return `must be an object (got ${describe(v)})`;
    for (const [name, value] of Object.entries(v)) {
      if (!isObject(value)) return `${field}.${name} must be an object (got ${describe(value)})`;
      const problem = inner(value, `${field}.${name}`);
      if (problem) return problem;
    }
    return undefined;
  };

const remoteSchema: Record<string, Check> = {
  url: isString,
  readOnly: isBool,
  token: isString,
  endpoint: isString,
  region: isString,
  timeoutMs: isPositive,
};

const configSchema: Record<string, Check> = {
  cacheDir: isString,
  maxSizeGb: isPositive,
  lowWaterMark: isFraction,
  hashAlgorithm: oneOf('blake3', 'sha256'),
  logLevel: oneOf('silent', 'error', 'warn', 'info', 'debug'),
  salt: isString,
  policies: recordOf((v, f) => checkFields(v, `${f}.`, policySchema)),
  tasks: recordOf((v, f) => checkFields(v, `${f}.`, taskSchema, ['command'])),
  remote: (v, f) =>
    isObject(v) ? checkFields(v, `${f}.`, remoteSchema, ['url']) : `must be an object (got ${describe(v)})`,
};

/** Checks a loaded config value; the failure names the file and the field. */
export function validateConfig(raw: unknown, file: string): Result<TaskVaultConfig> {
  if (!isObject(raw)) {
    return err(
      failure(
        'config',
        `${file}: the default export must be an object (got ${describe(raw)})`,
        'export defineConfig({...})',
      ),
    );
  }
  const problem = checkFields(raw, '', configSchema);
  if (problem) return err(failure('config', `${file}: ${problem}`, 'fix the field and retry'));
  return ok(raw as TaskVaultConfig);
}

export type { PolicyConfig };

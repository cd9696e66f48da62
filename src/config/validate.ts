import { parseDuration, parseSize } from '../util/format.js';
import { err, failure, ok, type Result } from '../util/result.js';
import type { PolicyConfig, TaskVaultConfig } from './types.js';

/** What is wrong with a field (naming it), and optionally what to do instead of the default hint. */
interface Problem {
  message: string;
  hint?: string;
}

/** A field's check: undefined when fine, else what is wrong (without the field, unless it names a part). */
type Check = (value: unknown, field: string) => string | Problem | undefined;

/** A value as the user wrote it: numbers and booleans themselves, strings quoted, others by kind. */
const describe = (v: unknown): string => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return typeof v;
};

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
/** An array of strings, each passing `each` (which says what is wrong with one element). */
const stringArray =
  (each?: (s: string) => string | undefined): Check =>
  (v, field) => {
    if (!Array.isArray(v)) return `must be an array of strings (got ${describe(v)})`;
    for (const [i, s] of v.entries()) {
      if (typeof s !== 'string') return `${field}[${i}] must be a string (got ${describe(s)})`;
      const problem = each?.(s);
      if (problem) return `${field}[${i}] ${problem}`;
    }
    return undefined;
  };
const nonEmptyGlob = (s: string): string | undefined =>
  s.trim() === '' || s.trim() === '!' ? `must not be empty (got ${describe(s)})` : undefined;
/** No '=' (it ends a name in the environment), no whitespace or control characters, not empty. */
export const isEnvName = (s: string): boolean => /^[^\s=\p{Cc}]+$/u.test(s);
const envName = (s: string): string | undefined =>
  isEnvName(s) ? undefined : `must be an environment variable name (got ${describe(s)})`;
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

/**
 * Checks one object against its schema: unknown fields first (a misspelt field would otherwise
 * show up as a missing required one), then required fields, then each value.
 */
function checkFields(
  obj: Record<string, unknown>,
  prefix: string,
  schema: Record<string, Check>,
  required: string[] = [],
): Problem | undefined {
  const known = Object.keys(schema);
  for (const key of Object.keys(obj)) {
    if (Object.hasOwn(schema, key)) continue;
    const near = nearest(key, known);
    return {
      message: `${prefix}${key} is not a known field`,
      hint: near ? `did you mean ${near}?` : `known fields: ${known.join(', ')}`,
    };
  }
  for (const key of required) if (!(key in obj)) return { message: `${prefix}${key} is required` };
  for (const [key, value] of Object.entries(obj)) {
    if (value === undefined) continue;
    const problem = schema[key]!(value, `${prefix}${key}`);
    if (problem === undefined) continue;
    if (typeof problem !== 'string') return problem;
    return { message: problem.startsWith(`${prefix}${key}`) ? problem : `${prefix}${key} ${problem}` };
  }
  return undefined;
}

/** The known name `word` is most likely a misspelling of, if any is close enough. */
function nearest(word: string, known: string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const lower = k.toLowerCase();
    const d = lower === w ? 0 : w.length >= 3 && lower.startsWith(w) ? 1 : editDistance(w, lower);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  const allowed = w.length >= 6 ? 3 : w.length >= 4 ? 2 : 1;
  return bestDistance <= allowed ? best : undefined;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

const policySchema: Record<string, Check> = {
  ttlSeconds: durationLike,
  maxSizeBytes: sizeLike,
  strategy: oneOf('lru'),
};

const policy: Check = (v, field) =>
  isObject(v) ? checkFields(v, `${field}.`, policySchema) : `must be an object (got ${describe(v)})`;

const taskSchema: Record<string, Check> = {
  command: (v, field) => {
    if (typeof v === 'string') return v.trim() === '' ? 'must not be empty' : undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
      return `must be a string or a non-empty array of strings (got ${describe(v)})`;
    if (v.length === 0) return 'must not be empty';
    return v[0]!.trim() === '' ? `${field}[0] (the program to run) must not be empty` : undefined;
  },
  inputs: stringArray(nonEmptyGlob),
  outputs: stringArray(nonEmptyGlob),
  env: stringArray(envName),
  cacheFailures: isBool,
  cwd: isString,
  policy,
  stdin: oneOf('auto', 'key', 'ignore'),
  durability: oneOf('strict', 'fast'),
};

const recordOf =
  (inner: (v: Record<string, unknown>, field: string) => Problem | undefined): Check =>
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
  protocol: oneOf('bazel', 'turbo', 'nx'),
  team: isString,
  readOnly: isBool,
  token: isString,
  endpoint: isString,
  region: isString,
  timeoutMs: isPositive,
};

const costSchema: Record<string, Check> = {
  currency: (v) =>
    typeof v === 'string' && /^[A-Za-z]{3}$/.test(v)
      ? undefined
      : `must be a 3-letter currency code like 'EUR' (got ${describe(v)})`,
  perHour: (v, field) => {
    if (!isObject(v)) return `must be an object of prices by task name (got ${describe(v)})`;
    for (const [name, price] of Object.entries(v))
      if (typeof price !== 'number' || !Number.isFinite(price) || price < 0)
        return `${field}.${name} must be a price of zero or more (got ${describe(price)})`;
    return undefined;
  },
};

const metricsSchema: Record<string, Check> = {
  textfile: (v) =>
    typeof v === 'boolean' || (typeof v === 'string' && v.trim() !== '')
      ? undefined
      : `must be true, false or a file path (got ${describe(v)})`,
};

const teamSchema: Record<string, Check> = {
  database: (v) =>
    typeof v === 'string' && /^postgres(ql)?:\/\//.test(v)
      ? undefined
      : `must be a postgres:// connection URL (got ${describe(v)})`,
};

const configSchema: Record<string, Check> = {
  cacheDir: isString,
  maxSizeGb: isPositive,
  lowWaterMark: isFraction,
  hashAlgorithm: oneOf('blake3', 'sha256'),
  logLevel: oneOf('silent', 'error', 'warn', 'info', 'debug'),
  salt: isString,
  stdin: oneOf('auto', 'key', 'ignore'),
  policies: recordOf((v, f) => checkFields(v, `${f}.`, policySchema)),
  tasks: recordOf((v, f) => checkFields(v, `${f}.`, taskSchema, ['command'])),
  remote: (v, f) =>
    isObject(v) ? checkFields(v, `${f}.`, remoteSchema, ['url']) : `must be an object (got ${describe(v)})`,
  servicePort: (v) =>
    Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535
      ? undefined
      : `must be a port number from 1 to 65535 (got ${describe(v)})`,
  cost: (v, f) =>
    isObject(v) ? checkFields(v, `${f}.`, costSchema, ['perHour']) : `must be an object (got ${describe(v)})`,
  metrics: (v, f) =>
    isObject(v) ? checkFields(v, `${f}.`, metricsSchema) : `must be an object (got ${describe(v)})`,
  team: (v, f) =>
    isObject(v)
      ? checkFields(v, `${f}.`, teamSchema, ['database'])
      : `must be an object (got ${describe(v)})`,
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
  if (problem) {
    return err(failure('config', `${file}: ${problem.message}`, problem.hint ?? 'fix the field and retry'));
  }
  return ok(raw as TaskVaultConfig);
}

export type { PolicyConfig };

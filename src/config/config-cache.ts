import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { blake3Hex } from '../util/blake3.js';
import { mkdirsSync } from '../util/mkdirs.js';
import { VERSION } from '../version.js';

/**
 * Evaluating a TypeScript config costs a TS compiler load (jiti) on every run, which is most of a
 * cache hit's time. A config that is plain data, with no imports besides `taskvault` and no access
 * to the environment, evaluates to the same value for the same source text, so its value is kept
 * as JSON keyed by a hash of that text. Anything dynamic is simply evaluated every time.
 */

/** Where the evaluated value of `configPath` is kept (beside the default cache directory). */
export function configCachePath(configPath: string): string {
  return join(dirname(configPath), '.taskvault', `${basename(configPath)}.evaluated.json`);
}

const ALLOWED_IMPORT =
  /^\s*import\s+(?:type\s+)?(?:\{[^}]*\}|\w+|\*\s+as\s+\w+)\s+from\s+['"]taskvault['"];?\s*$/gm;
/** Words that make a config's value depend on more than its own text. */
const DYNAMIC =
  /\b(?:import|require|process|Date|Math|globalThis|global|fetch|eval|Function|Bun|Deno|Symbol|WeakRef|crypto|performance|setTimeout|setInterval|queueMicrotask|__dirname|__filename|await)\b/;

/**
 * Comments and string literals, matched left to right as a lexer would, so a quote inside a comment
 * or `//` inside a string does not hide code. Template literals with `${` are not matched (and so
 * leave a backtick behind, which counts as dynamic).
 */
const COMMENT_OR_STRING =
  /\/\/[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\$]|\\.|\$(?!\{))*`/g;

/** True when the config's source cannot produce different values on different runs. */
export function isStaticConfigSource(source: string): boolean {
  const code = source.replace(ALLOWED_IMPORT, '').replace(COMMENT_OR_STRING, '""');
  return !DYNAMIC.test(code) && !code.includes('`');
}

/** Only JSON-representable values are cached: anything else (a function, a class) is re-evaluated. */
function isPlainData(v: unknown, depth = 0): boolean {
  if (depth > 64) return false;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every((x) => isPlainData(x, depth + 1));
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return false;
    return Object.values(v as Record<string, unknown>).every(
      (x) => x === undefined || isPlainData(x, depth + 1),
    );
  }
  return false;
}

/** `value 2`: values kept before a module without a default export was an error are not reused. */
const keyOf = (source: string): string => blake3Hex(`taskvault ${VERSION} value 2\0${source}`);

interface CachedConfig {
  key: string;
  value: unknown;
}

/** The cached value for this exact source text, or undefined (absent, stale, unreadable). */
export function readCachedConfig(configPath: string, source: string): unknown {
  try {
    const c = JSON.parse(readFileSync(configCachePath(configPath), 'utf8')) as CachedConfig;
    return c.key === keyOf(source) ? c.value : undefined;
  } catch {
    // Absent, unreadable or damaged: the config is evaluated instead (and the cache rewritten).
    return undefined;
  }
}

/** Keeps the value if the source is static and the value plain data; never fails the caller. */
export function writeCachedConfig(configPath: string, source: string, value: unknown): void {
  if (!isStaticConfigSource(source) || !isPlainData(value)) return;
  const file = configCachePath(configPath);
  try {
    mkdirsSync(dirname(file));
    // Written to a temp name and renamed so a concurrent reader never sees half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ key: keyOf(source), value } satisfies CachedConfig));
    renameSync(tmp, file);
  } catch {
    // A read-only project only loses the speed-up.
  }
}

import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { besideCode } from '../package-dir.js';
import { importModule } from '../util/import-module.js';
import { err, errorMessage, failure, type Result } from '../util/result.js';
import { readCachedConfig, writeCachedConfig } from './config-cache.js';
import type { TaskVaultConfig } from './types.js';
import { validateConfig } from './validate.js';

/** What a module without a default export evaluates to (never cached, never validated). */
const NO_DEFAULT: unique symbol = Symbol('no default export');

/**
 * Loads and validates a config file. TypeScript configs go through jiti (a maintained,
 * dependency-free TS/ESM loader with an on-disk transpile cache), so users need no build step.
 * A static config's value is cached (config-cache.ts), so an unchanged config skips jiti entirely.
 */
export async function loadConfig(path: string): Promise<Result<TaskVaultConfig>> {
  const name = basename(path);
  let raw: unknown;
  try {
    const ext = extname(path);
    const source = readFileSync(path, 'utf8');
    if (ext === '.json') {
      try {
        raw = JSON.parse(source);
      } catch (e) {
        // Loaded only for a broken file: it is not needed on the way to a hit.
        const { jsonSyntaxError } = await import('./json-error.js');
        const syntax = jsonSyntaxError(source, errorMessage(e));
        return err(
          failure(
            'config',
            `${name}:${syntax.line}:${syntax.column}: invalid JSON: ${syntax.message}`,
            'fix the file and retry',
          ),
        );
      }
      return validateConfig(raw, name);
    }
    const cached = readCachedConfig(path, source);
    if (cached !== undefined) {
      raw = cached;
    } else if (ext === '.ts' || ext === '.mts') {
      raw = await importWithJiti(path, source);
    } else {
      raw = await importJs(path, source);
    }
    if (raw === NO_DEFAULT) {
      return err(
        failure(
          'config',
          `${name}: no default export: export default { tasks: {...} }`,
          'or defineConfig(...)',
        ),
      );
    }
    if (cached === undefined) writeCachedConfig(path, source, raw);
  } catch (e) {
    const message = errorMessage(e);
    // Parse errors carry "<path>:<line>:<col>" on a later line: keep the position in the one line.
    const at = new RegExp(`${escapeRe(path)}:(\\d+):(\\d+)`).exec(message);
    const where = at ? ` at line ${at[1]}, column ${at[2]}` : '';
    return err(
      failure(
        'config',
        `${name}: cannot load: ${firstLine(message).trim()}${where}`,
        'fix the file and retry',
      ),
    );
  }
  return validateConfig(raw, name);
}

/** This package's public entry (dist/index.js), what a config's `from 'taskvault'` resolves to. */
const SELF = fileURLToPath(besideCode('index.js'));

/** Native import; a .js/.mjs config importing 'taskvault' without a local install goes through jiti. */
async function importJs(path: string, source: string): Promise<unknown> {
  try {
    // A namespace has `default` for every CommonJS module, and for ES modules that export one.
    const mod = await importModule<{ default?: unknown }>(`${pathToFileURL(path).href}?t=${Date.now()}`);
    return 'default' in mod ? mod.default : NO_DEFAULT;
  } catch (e) {
    const missingSelf =
      (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && /'taskvault'/.test(errorMessage(e));
    if (!missingSelf) throw e;
    return await importWithJiti(path, source);
  }
}

/**
 * The default export through jiti, which gives a CommonJS module's exports object as the module
 * itself and an ES module's exports as an object with `default` only if there is one (marking
 * either `__esModule` inconsistently), so which one the file is is read from its source.
 */
async function importWithJiti(path: string, source: string): Promise<unknown> {
  const { createJiti } = await importModule<typeof import('jiti')>('jiti');
  // `import { defineConfig } from 'taskvault'` must work in a project that has no local install
  // (a global or npx taskvault, or right after `taskvault init`): it means this TaskVault.
  const jiti = createJiti(import.meta.url, { moduleCache: false, alias: { taskvault: SELF } });
  const mod = await jiti.import<unknown>(path);
  if (typeof mod !== 'object' || mod === null) return mod;
  const record = mod as Record<string, unknown>;
  if ('default' in record) return record.default;
  return /\bmodule\.exports\b|\bexports\.[\w$]+\s*=|\bexport\s*=/.test(source) ? mod : NO_DEFAULT;
}

const firstLine = (s: string): string => s.split('\n').find((l) => l.trim() !== '') ?? s;

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

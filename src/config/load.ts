import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { besideCode } from '../package-dir.js';
import { err, errorMessage, failure, type Result } from '../util/result.js';
import { readCachedConfig, writeCachedConfig } from './config-cache.js';
import type { TaskVaultConfig } from './types.js';
import { validateConfig } from './validate.js';

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
    const source = ext === '.json' ? '' : readFileSync(path, 'utf8');
    const cached = ext === '.json' ? undefined : readCachedConfig(path, source);
    if (ext === '.json') {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } else if (cached !== undefined) {
      raw = cached;
    } else if (ext === '.ts' || ext === '.mts') {
      const { createJiti } = await import('jiti');
      // `import { defineConfig } from 'taskvault'` must work in a project that has no local install
      // (a global or npx taskvault, or right after `taskvault init`): it means this TaskVault.
      const jiti = createJiti(import.meta.url, { moduleCache: false, alias: { taskvault: SELF } });
      raw = await jiti.import(path, { default: true });
    } else {
      raw = await importJs(path);
    }
    if (ext !== '.json' && cached === undefined) writeCachedConfig(path, source, raw);
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
async function importJs(path: string): Promise<unknown> {
  try {
    const mod = (await import(`${pathToFileURL(path).href}?t=${Date.now()}`)) as { default?: unknown };
    return mod.default;
  } catch (e) {
    const missingSelf =
      (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && /'taskvault'/.test(errorMessage(e));
    if (!missingSelf) throw e;
    const { createJiti } = await import('jiti');
    const jiti = createJiti(import.meta.url, { moduleCache: false, alias: { taskvault: SELF } });
    return await jiti.import(path, { default: true });
  }
}

const firstLine = (s: string): string => s.split('\n').find((l) => l.trim() !== '') ?? s;

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

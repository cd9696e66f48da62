import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { pathToFileURL } from 'node:url';
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
      const jiti = createJiti(import.meta.url, { moduleCache: false });
      raw = await jiti.import(path, { default: true });
    } else {
      const mod = (await import(`${pathToFileURL(path).href}?t=${Date.now()}`)) as { default?: unknown };
      raw = mod.default;
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

const firstLine = (s: string): string => s.split('\n').find((l) => l.trim() !== '') ?? s;

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

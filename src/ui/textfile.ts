import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Settings } from '../config/resolve.js';
import { mkdirsSync } from '../util/mkdirs.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { tempSuffix } from '../util/temp-name.js';
import { DashboardData } from './data.js';
import { renderMetrics } from './prometheus.js';

/** Where node_exporter's textfile collector is pointed by default (docs/dashboard.md). */
export const DEFAULT_TEXTFILE = join('.taskvault', 'metrics', 'prometheus.txt');

/** The textfile path: `given` (relative to the cwd), the config's, or the default under the root. */
export function textfilePath(settings: Settings, given?: string): string {
  if (given !== undefined) return resolve(given);
  const configured = settings.config.metrics?.textfile;
  if (typeof configured === 'string')
    return isAbsolute(configured) ? configured : join(settings.root, configured);
  return join(settings.root, DEFAULT_TEXTFILE);
}

/** The exposition text of the cache at `settings.cacheDir`. */
export async function metricsText(settings: Settings): Promise<Result<string>> {
  const opened = DashboardData.open(settings);
  if (!opened.ok) return opened;
  try {
    return ok(renderMetrics(opened.value.stats(), opened.value.allTime()));
  } finally {
    await opened.value.close();
  }
}

/**
 * Writes the text beside its final name and renames it into place: the collector, which may read
 * at any moment, sees the previous file or the new one, never a part.
 */
export function writeAtomically(path: string, text: string): Result<void> {
  const temp = join(dirname(path), `.${process.pid}-${tempSuffix()}.prom.tmp`);
  try {
    mkdirsSync(dirname(path));
    writeFileSync(temp, text, { flag: 'wx' });
    renameSync(temp, path);
    return ok(undefined);
  } catch (e) {
    try {
      rmSync(temp, { force: true });
    } catch {
      // the directory itself is unusable: there is no temp file to remove
    }
    return err(
      failure(
        'input',
        `cannot write the metrics file ${path}: ${errorMessage(e)}`,
        'pass --textfile with a writable path',
      ),
    );
  }
}

/** After a run, when the config asks for it (`metrics.textfile`); failures only warn. */
export async function refreshTextfile(settings: Settings, warn: (message: string) => void): Promise<void> {
  const text = await metricsText(settings);
  if (!text.ok) return warn(`metrics file not refreshed: ${text.error.message}`);
  const written = writeAtomically(textfilePath(settings), text.value);
  if (!written.ok) warn(`metrics file not refreshed: ${written.error.message}`);
}

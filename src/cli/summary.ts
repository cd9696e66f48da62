import type { RunOutcome } from '../runner/types.js';
import { formatBytes, formatDuration } from '../util/format.js';
import { color } from '../util/term.js';

/** A run that happened (with or without the cache): what the summary line and --json describe. */
export type Ran = Exclude<RunOutcome, { kind: 'failed' } | { kind: 'dry-run' }>;

/** The --json form of the summary line. */
export function summaryJson(o: Ran, task: string, forced: boolean): Record<string, unknown> {
  return forced ? { task, forced, ...o } : { task, ...o };
}

const files = (n: number, bytes: number): string => `${n} file${n === 1 ? '' : 's'} (${formatBytes(bytes)})`;

/**
 * The one line a run leaves on stderr. Why nothing was cached is left out when a warning has just
 * said it (the outcome is `warned`), so each cause is printed once. A --force run says `forced`.
 */
export function summaryLine(o: Ran, task: string, forced = false): string {
  const tag = color.dim('taskvault:');
  const key = (k: string) => color.cyan(k.slice(0, 10));
  switch (o.kind) {
    case 'hit':
      return `${tag} ${color.green('hit')}${o.origin === 'remote' ? ' (remote)' : ''} ${key(o.key)} ${task} · ${o.files === 0 ? 'replayed the logs' : `restored ${files(o.files, o.bytes)}`} in ${formatDuration(o.restoreMs)} · saved ${formatDuration(o.savedMs)}`;
    case 'miss':
      // --force ran the command whether or not it was cached: not a miss.
      return `${tag} ${color.yellow(forced ? 'forced' : 'miss')} ${key(o.key)} ${task} · ran in ${formatDuration(o.durationMs)} · ${
        o.stored
          ? o.files === 0
            ? 'cached its logs and exit code'
            : `cached ${files(o.files, o.bytes)}`
          : o.warned
            ? 'not cached'
            : `not cached: ${o.notStored}`
      }`;
    case 'uncached':
      return `${tag} ran uncached ${task} in ${formatDuration(o.durationMs)}${o.warned ? '' : ` (${o.reason})`}`;
  }
}

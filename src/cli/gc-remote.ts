import type { Tally } from '../remote/retention.js';
import { formatBytes, parseDuration, parseSize } from '../util/format.js';
import { type Failure, failure } from '../util/result.js';
import { warn } from '../util/term.js';
import { clockFromEnv } from './clock.js';
import { type CommonFlags, settingsFor, writeJson } from './shared.js';

export interface GcRemoteFlags extends CommonFlags {
  dryRun?: boolean;
  grace?: string;
  maxAge?: string;
  maxSize?: string;
}

const HOUR = 3600_000;

/**
 * `taskvault gc --remote`: retention for the team cache (see src/remote/retention.ts). Meant for a
 * cron or CI job with write access; it never touches the local cache.
 */
export async function gcRemote(flags: GcRemoteFlags): Promise<number | Failure> {
  const maxAgeMs = flags.maxAge === undefined ? undefined : parseDuration(String(flags.maxAge));
  if (flags.maxAge !== undefined && maxAgeMs === undefined)
    return failure('usage', `invalid --max-age ${JSON.stringify(flags.maxAge)}`, "use a duration like '14d'");
  const maxBytes = flags.maxSize === undefined ? undefined : parseSize(String(flags.maxSize));
  if (flags.maxSize !== undefined && maxBytes === undefined)
    return failure('usage', `invalid --max-size ${JSON.stringify(flags.maxSize)}`, "use a size like '200GB'");
  const graceMs = flags.grace === undefined ? HOUR : parseDuration(String(flags.grace));
  if (graceMs === undefined)
    return failure('usage', `invalid --grace ${JSON.stringify(flags.grace)}`, "use a duration like '1h'");
  const settings = await settingsFor(flags);
  if (!settings.remote)
    return failure(
      'usage',
      'gc --remote: no remote cache is configured',
      'set remote.url in taskvault.config.* or TASKVAULT_REMOTE_URL',
    );
  const { collectRemoteGarbage, openRetention } = await import('../remote/retention.js');
  const opened = await openRetention(settings.remote, process.env);
  if (!opened.ok) return failure('cache', `gc --remote: ${opened.problem.message}`);
  const options: Parameters<typeof collectRemoteGarbage>[2] = {
    now: clockFromEnv()(),
    graceMs,
    dryRun: flags.dryRun === true,
  };
  if (maxAgeMs !== undefined) options.maxAgeMs = maxAgeMs;
  if (maxBytes !== undefined) options.maxBytes = maxBytes;
  const team = settings.team;
  if (team)
    options.lastUsed = async (keys) => {
      const { lastHitsFrom } = await import('../store/team/read.js');
      const r = await lastHitsFrom(team, keys);
      if (r.ok) return new Map([...r.value].map(([k, t]) => [k, t.getTime()]));
      warn(`${r.error.message}: gc --remote ages every entry by its upload time instead of its last hit`);
      return new Map();
    };
  const r = await collectRemoteGarbage(opened.value.backend, opened.value.listing, options);
  if (!r.ok) return failure('cache', `gc --remote stopped, nothing more removed: ${r.problem.message}`);
  const x = r.value;
  if (flags.json) {
    writeJson(x);
    return 0;
  }
  const entries = x.entries.aged.count + x.entries.size.count + x.entries.broken.count;
  const why = (
    [
      ['age', x.entries.aged],
      ['size', x.entries.size],
      ['missing blobs', x.entries.broken],
    ] as Array<[string, Tally]>
  )
    .filter(([, t]) => t.count > 0)
    .map(([w, t]) => `${w} ${t.count}`);
  const bytes = x.entries.aged.bytes + x.entries.size.bytes + x.entries.broken.bytes + x.blobs.bytes;
  process.stdout.write(
    `${x.remote}: ${x.dryRun ? 'would remove' : 'removed'} ${entries} entr${entries === 1 ? 'y' : 'ies'}${why.length ? ` (${why.join(', ')})` : ''} and ${x.blobs.count} blob${x.blobs.count === 1 ? '' : 's'}; ${x.dryRun ? 'would reclaim' : 'reclaimed'} ${formatBytes(bytes)}\n` +
      `remote${x.dryRun ? ' afterwards' : ''}: ${x.kept.entries} entries, ${x.kept.blobs} blobs, ${formatBytes(x.kept.bytes)}\n` +
      (options.lastUsed
        ? `ages: ${x.agedBy.lastUse} entr${x.agedBy.lastUse === 1 ? 'y' : 'ies'} by last hit (team index), ${x.agedBy.mtime} by upload time\n`
        : ''),
  );
  return 0;
}

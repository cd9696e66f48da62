import type { CAC } from 'cac';
import type { Settings } from '../config/resolve.js';
import { getResult, saveResult } from '../store/results.js';
import { type CacheStats, cacheStats } from '../store/stats.js';
import { Store } from '../store/store.js';
import { formatBytes, formatDuration, parseDuration } from '../util/format.js';
import { type Failure, failure } from '../util/result.js';
import { warn } from '../util/term.js';
import {
  action,
  type CommonFlags,
  settingsFor,
  withCommonOptions,
  withQuietOption,
  writeJson,
} from './shared.js';

interface CacheFlags extends CommonFlags {
  duration?: string;
}

const USAGE = {
  save: 'usage: taskvault cache save <task> <input-file> <output-file>',
  get: 'usage: taskvault cache get <task> <input-file> <output-file>',
};

/**
 * `taskvault cache save|get|stats` (cac has no multi-word commands, so `cache` takes the action as
 * its first argument) and the `taskvault stats` alias.
 */
export function registerCache(cli: CAC): void {
  withQuietOption(
    withCommonOptions(
      cli.command('cache <action> [...args]', 'Store or fetch a result by task + input file'),
    ),
  )
    .usage('cache save|get <task> <input-file> <output-file>  |  cache stats')
    .option('--duration <time>', 'save: how long producing the output took (for "time saved"), e.g. 90s')
    .example('taskvault cache save train_model data.csv model.bin')
    .example('taskvault cache get train_model data.csv model.bin || python train.py')
    .action(
      action(async (act: string, args: string[], flags: CacheFlags) => {
        if (act === 'stats')
          return args.length ? failure('usage', 'cache stats takes no arguments') : stats(flags);
        if (act !== 'save' && act !== 'get')
          return failure('usage', `unknown cache action '${act}'`, 'use save, get or stats');
        if (args.length !== 3)
          return failure('usage', `cache ${act} needs 3 arguments, got ${args.length}`, USAGE[act]);
        const [task, input, output] = args as [string, string, string];
        if (task === '') return failure('usage', 'the task name is empty', USAGE[act]);
        return act === 'save' ? save(task, input, output, flags) : get(task, input, output, flags);
      }),
    );
  withCommonOptions(cli.command('stats', 'Cache statistics (same as cache stats)')).action(action(stats));
}

async function save(
  task: string,
  input: string,
  output: string,
  flags: CacheFlags,
): Promise<number | Failure> {
  let durationMs: number | undefined;
  if (flags.duration !== undefined) {
    durationMs = parseDuration(String(flags.duration));
    if (durationMs === undefined)
      return failure(
        'usage',
        `invalid duration '${flags.duration}'`,
        "use seconds or a duration like '90s', '2h'",
      );
  }
  const settings = await settingsFor(flags);
  const opened = Store.open(settings.cacheDir);
  if (!opened.ok) return opened.error;
  const store = opened.value;
  try {
    const saved = await saveResult(
      store,
      settings,
      task,
      { path: input },
      { path: output },
      {
        source: 'save',
        ...(durationMs !== undefined ? { durationMs } : {}),
      },
    );
    if (!saved.ok) return saved.error;
    const { key, size } = saved.value;
    if (flags.json) writeJson({ task, key, size, saved: true });
    else if (!flags.quiet)
      process.stdout.write(`✓ Cached ${task} (hash: ${key.slice(0, 8)}..., size: ${size} bytes)\n`);
    return 0;
  } finally {
    // The work is done and reported; what is left to write is bookkeeping (access times, counters).
    await store.flush().catch(() => {});
    await store.close().catch(() => {});
  }
}

async function get(
  task: string,
  input: string,
  output: string,
  flags: CacheFlags,
): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  const missLine = (detail: string) => {
    if (flags.json) writeJson({ task, hit: false, ...(detail ? { reason: detail } : {}) });
    process.stderr.write(`✗ Cache miss for ${task}${detail ? ` (${detail})` : ''}\n`);
    return 1;
  };
  // A cache that cannot be opened is a miss: the wrapper then does the work itself.
  const opened = Store.open(settings.cacheDir);
  if (!opened.ok) {
    warn(`cache skipped: ${opened.error.message}`);
    return missLine('cache unavailable');
  }
  const store = opened.value;
  try {
    const got = await getResult(
      store,
      settings,
      task,
      { path: input },
      { kind: 'file', path: output },
      {
        source: 'get',
      },
    );
    if (!got.ok) return got.error;
    const g = got.value;
    if (!g.hit) {
      const why =
        g.why === 'absent'
          ? ''
          : `, ${g.why === 'corrupt' ? 'stored blob was corrupt and was removed' : 'expired'}`;
      return missLine(`hash: ${g.key.slice(0, 8)}...${why}`);
    }
    if (flags.json) writeJson({ task, key: g.key, size: g.size, hit: true });
    else if (!flags.quiet) process.stdout.write(`✓ Cache hit for ${task} (size: ${g.size} bytes)\n`);
    return 0;
  } finally {
    // The work is done and reported; what is left to write is bookkeeping (access times, counters).
    await store.flush().catch(() => {});
    await store.close().catch(() => {});
  }
}

async function stats(flags: CommonFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  const s = await readStats(settings);
  if ('reason' in s) return s;
  if (flags.json) writeJson(s);
  else process.stdout.write(statsTable(s));
  return 0;
}

/** Stats without creating a cache directory where there is none yet. */
async function readStats(settings: Settings): Promise<CacheStats | Failure> {
  const empty: CacheStats = {
    entries: 0,
    totalBytes: 0,
    limitBytes: settings.maxSizeBytes,
    usagePercent: 0,
    hits: 0,
    remoteHits: 0,
    misses: 0,
    hitRate: null,
    savedMs: 0,
  };
  if (!Store.exists(settings.cacheDir)) return empty;
  const opened = Store.open(settings.cacheDir);
  // Zeros would read as an empty cache; a cache that cannot be opened is an error.
  if (!opened.ok) return opened.error;
  try {
    return cacheStats(opened.value, settings.maxSizeBytes);
  } finally {
    // Closing a read-only use of the index: nothing to lose if it fails.
    await opened.value.close().catch(() => {});
  }
}

const percent = (p: number): string => (p > 0 && p < 0.01 ? '<0.01%' : `${p.toFixed(p < 10 ? 2 : 1)}%`);

export function statsTable(s: CacheStats): string {
  const rows: Array<[string, string]> = [
    ['Entries', String(s.entries)],
    ['Total size', `${formatBytes(s.totalBytes)}${s.totalBytes >= 1000 ? ` (${s.totalBytes} bytes)` : ''}`],
    ['Cache limit', formatBytes(s.limitBytes)],
    ['Usage', percent(s.usagePercent)],
    ['Hits', `${s.hits}${s.remoteHits > 0 ? ` (${s.remoteHits} from the remote)` : ''}`],
    ['Misses', String(s.misses)],
    ['Hit rate', s.hitRate === null ? '-' : `${(s.hitRate * 100).toFixed(1)}%`],
    ['Time saved', formatDuration(s.savedMs)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const heading = 'TaskVault Cache Statistics';
  return `${heading}\n${'─'.repeat(heading.length)}\n${rows.map(([k, v]) => `${k.padEnd(width)}${v}`).join('\n')}\n`;
}

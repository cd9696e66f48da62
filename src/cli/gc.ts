import { createInterface } from 'node:readline/promises';
import type { CAC } from 'cac';
import type { Settings } from '../config/resolve.js';
import { policyLookup, removeMatching, type Tally } from '../store/evict.js';
import { collectGarbage, DEFAULT_GRACE_MS, type GcReport, type SweepTally, sweep } from '../store/gc.js';
import { Store } from '../store/store.js';
import { formatBytes, parseDuration } from '../util/format.js';
import { type Failure, failure } from '../util/result.js';
import { clockFromEnv } from './clock.js';
import { action, type CommonFlags, settingsFor, withCommonOptions, writeJson } from './shared.js';

interface GcFlags extends CommonFlags {
  dryRun?: boolean;
  grace?: string;
  remote?: boolean;
  maxAge?: string;
  maxSize?: string;
}

interface CleanFlags extends CommonFlags {
  task?: string;
  yes?: boolean;
}

export function registerGc(cli: CAC): void {
  withCommonOptions(
    cli.command(
      'gc',
      'Expire old entries, evict to the size limit, delete orphan blobs and stale temp files',
    ),
  )
    .option('--dry-run', 'Report what would be removed; remove nothing')
    .option('--grace <duration>', 'Keep unreferenced blobs and temp files younger than this (default 1h)')
    .option('--remote', 'Collect the team cache instead of the local one (S3, Azure, WebDAV)')
    .option('--max-age <duration>', 'With --remote: remove entries older than this, e.g. 14d')
    .option('--max-size <size>', 'With --remote: remove the oldest entries until the remote fits, e.g. 200GB')
    .action(action(gc));

  withCommonOptions(cli.command('clean', 'Remove every cached entry, or those of one task'))
    .option('--task <name>', 'Only entries of this task')
    .option('--yes', 'Do not ask for confirmation (required when stdin is not a terminal)')
    .action(action(clean));
}

async function gc(flags: GcFlags): Promise<number | Failure> {
  if (flags.remote) return (await import('./gc-remote.js')).gcRemote(flags);
  if (flags.maxAge !== undefined || flags.maxSize !== undefined)
    return failure('usage', '--max-age and --max-size apply to gc --remote', 'add --remote');
  const settings = await settingsFor(flags);
  const graceMs = flags.grace === undefined ? DEFAULT_GRACE_MS : parseDuration(String(flags.grace));
  if (graceMs === undefined)
    return failure(
      'usage',
      `invalid --grace ${JSON.stringify(flags.grace)}`,
      "use a duration like '1h', '30m'",
    );
  const opened = openExisting(settings);
  if (!opened.ok) return opened.result;
  const store = opened.store;
  try {
    const report = await collectGarbage(store, {
      now: clockFromEnv()(),
      maxBytes: settings.maxSizeBytes,
      lowWaterBytes: Math.floor(settings.maxSizeBytes * settings.lowWaterMark),
      policyFor: policyLookup(settings),
      graceMs,
      dryRun: flags.dryRun === true,
      source: 'gc',
    });
    if (flags.json) writeJson(gcJson(report, settings));
    else process.stdout.write(gcText(report, settings));
    return 0;
  } finally {
    // Its transactions are committed (and reported) already: closing has nothing left to lose.
    await store.close().catch(() => {});
  }
}

async function clean(flags: CleanFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  const task = flags.task === undefined ? undefined : String(flags.task);
  if (!flags.yes && !process.stdin.isTTY) {
    return failure(
      'usage',
      `clean removes cached results${task === undefined ? '' : ` of task '${task}'`} and needs confirmation`,
      'stdin is not a terminal: pass --yes to confirm',
    );
  }
  const opened = openExisting(settings);
  if (!opened.ok) return opened.result;
  const store = opened.store;
  try {
    const match = task === undefined ? () => true : (e: { task: string }) => e.task === task;
    if (!flags.yes) {
      const preview = await removeMatching(store, match, { dryRun: true, source: 'clean' });
      if (preview.entries === 0) {
        process.stdout.write(`nothing to clean${task === undefined ? '' : ` for task '${task}'`}\n`);
        return 0;
      }
      if (!(await confirm(`remove ${describe(preview)}${task === undefined ? '' : ` of task '${task}'`}?`))) {
        process.stderr.write('taskvault: nothing removed\n');
        return 1;
      }
    }
    const removed = await removeMatching(store, match, { source: 'clean' });
    // Removing everything also sweeps leftovers of crashed runs (past the grace period, as in gc).
    const swept =
      task === undefined
        ? await sweep(store, clockFromEnv()() - DEFAULT_GRACE_MS, false)
        : { orphanBlobs: none(), staleTmp: none(), staleHot: none() };
    const bytes = removed.bytes + swept.orphanBlobs.bytes + swept.staleTmp.bytes + swept.staleHot.bytes;
    if (flags.json) {
      writeJson({ task: task ?? null, entries: removed.entries, bytes, ...swept, usage: store.usage() });
    } else {
      const extra = sweptText(swept);
      process.stdout.write(
        `removed ${entriesText(removed.entries)}${task === undefined ? '' : ` of task '${task}'`}${extra}; reclaimed ${formatBytes(bytes)}\n`,
      );
    }
    return 0;
  } finally {
    // Its transactions are committed (and reported) already: closing has nothing left to lose.
    await store.close().catch(() => {});
  }
}

type Opened = { ok: true; store: Store } | { ok: false; result: number | Failure };

/** gc and clean on a cache that does not exist yet have nothing to do; that is not an error. */
function openExisting(settings: Settings): Opened {
  if (!Store.exists(settings.cacheDir)) {
    process.stdout.write(`nothing to do: no cache at ${settings.cacheDir}\n`);
    return { ok: false, result: 0 };
  }
  const opened = Store.open(settings.cacheDir);
  if (!opened.ok) return { ok: false, result: opened.error };
  return { ok: true, store: opened.value };
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`taskvault: ${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

const none = (): SweepTally => ({ files: 0, bytes: 0 });
const entriesText = (n: number) => `${n} entr${n === 1 ? 'y' : 'ies'}`;
const describe = (t: Tally) => `${entriesText(t.entries)} (${formatBytes(t.bytes)})`;

function sweptText(s: { orphanBlobs: SweepTally; staleTmp: SweepTally; staleHot: SweepTally }): string {
  const parts: string[] = [];
  const n = (t: SweepTally, what: string) =>
    t.files && parts.push(`${t.files} ${what}${t.files === 1 ? '' : 's'}`);
  n(s.orphanBlobs, 'orphan blob');
  n(s.staleTmp, 'stale temp file');
  n(s.staleHot, 'stale hot-path file');
  return parts.length ? `, ${parts.join(', ')}` : '';
}

function gcText(r: GcReport, settings: Settings): string {
  const e = r.evicted;
  const reasons = (['ttl', 'size', 'lru'] as const)
    .filter((k) => e.byReason[k].entries > 0)
    .map((k) => `${k} ${e.byReason[k].entries}`);
  const bytes = e.bytes + r.orphanBlobs.bytes + r.staleTmp.bytes + r.staleHot.bytes;
  const lines = [
    `${r.dryRun ? 'would remove' : 'removed'} ${entriesText(e.entries)}${reasons.length ? ` (${reasons.join(', ')})` : ''}${sweptText(r)}; ${r.dryRun ? 'would reclaim' : 'reclaimed'} ${formatBytes(bytes)}`,
    `cache${r.dryRun ? ' afterwards' : ''}: ${formatBytes(e.usageAfter)} of ${formatBytes(settings.maxSizeBytes)}${e.complete ? '' : ' (still over the limit)'}`,
  ];
  if (r.refsRepaired) lines.push(`repaired ${r.refsRepaired} blob reference count(s)`);
  if (r.missingBlobs) lines.push(`${r.missingBlobs} referenced blob(s) missing: those entries will miss`);
  return `${lines.join('\n')}\n`;
}

function gcJson(r: GcReport, settings: Settings) {
  return {
    dryRun: r.dryRun,
    entries: r.evicted.entries,
    bytes: r.evicted.bytes + r.orphanBlobs.bytes + r.staleTmp.bytes + r.staleHot.bytes,
    byReason: r.evicted.byReason,
    orphanBlobs: r.orphanBlobs,
    staleTmp: r.staleTmp,
    staleHot: r.staleHot,
    refsRepaired: r.refsRepaired,
    missingBlobs: r.missingBlobs,
    usageBefore: r.evicted.usageBefore,
    usage: r.evicted.usageAfter,
    limit: settings.maxSizeBytes,
    complete: r.evicted.complete,
  };
}

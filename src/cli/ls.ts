import type { CAC } from 'cac';
import type { Entry, Provenance } from '../store/entry.js';
import { Store } from '../store/store.js';
import { formatBytes, formatDuration } from '../util/format.js';
import type { Failure } from '../util/result.js';
import { ago } from './explain.js';
import { action, type CommonFlags, settingsFor, withCommonOptions, writeJson } from './shared.js';

export interface Listed {
  key: string;
  /** Task name; the command line for anonymous runs. */
  task: string;
  kind: 'run' | 'result';
  bytes: number;
  files: number;
  exitCode: number;
  durationMs: number;
  createdAt: number;
  /** undefined until the first hit. */
  lastHit?: number;
  hits: number;
  provenance: Provenance;
}

export function registerLs(cli: CAC): void {
  withCommonOptions(cli.command('ls', 'List cache entries, newest first'))
    .example('taskvault ls --json')
    .action(action(ls));
}

async function ls(flags: CommonFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  let rows: Listed[] = [];
  if (Store.exists(settings.cacheDir)) {
    const opened = Store.open(settings.cacheDir);
    if (!opened.ok) return opened.error;
    try {
      rows = listEntries(opened.value);
    } finally {
      // Closing a read-only use of the index: nothing to lose if it fails.
      await opened.value.close().catch(() => {});
    }
  }
  if (flags.json) writeJson(rows);
  else process.stdout.write(lsTable(rows));
  return 0;
}

export function listEntries(store: Store): Listed[] {
  const rows: Listed[] = [];
  for (const e of store.allEntries()) rows.push(listed(store, e));
  return rows.sort((a, b) => b.createdAt - a.createdAt || (a.key < b.key ? -1 : 1));
}

function listed(store: Store, e: Entry): Listed {
  const hits = store.hitCount(e.key);
  const row: Listed = {
    key: e.key,
    task: e.task || store.getFingerprint(e.key)?.argv.join(' ') || '?',
    kind: e.result ? 'result' : 'run',
    bytes: e.bytes,
    files: e.outputs.filter((o) => o.type === 'file').length,
    exitCode: e.exitCode,
    durationMs: e.durationMs,
    createdAt: e.createdAt,
    hits,
    provenance: e.provenance,
  };
  const last = store.lastAccess(e.key);
  if (hits > 0 && last !== undefined) row.lastHit = last;
  return row;
}

export function lsTable(rows: Listed[], now = Date.now()): string {
  if (rows.length === 0) return 'No entries in the cache.\n';
  const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 3)}...` : s);
  const table = [
    ['TASK', 'KIND', 'KEY', 'SIZE', 'AGE', 'LAST HIT', 'HITS', 'TOOK'],
    ...rows.map((r) => [
      cut(r.task, 40),
      r.kind,
      r.key.slice(0, 12),
      formatBytes(r.bytes),
      ago(r.createdAt, now),
      r.lastHit === undefined ? 'never' : ago(r.lastHit, now),
      String(r.hits),
      formatDuration(r.durationMs),
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const right = new Set([3, 6, 7]);
  const lines = table.map((row) =>
    row
      .map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}

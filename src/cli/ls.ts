import type { CAC } from 'cac';
import type { Entry, Provenance } from '../store/entry.js';
import { Store } from '../store/store.js';
import { formatBytes, formatDuration } from '../util/format.js';
import type { Failure } from '../util/result.js';
import { writeOut } from './closed-stdout.js';
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
  if (!Store.exists(settings.cacheDir)) {
    if (flags.json) writeJson([]);
    else process.stdout.write(layOut([], Date.now()).text);
    return 0;
  }
  const opened = Store.open(settings.cacheDir);
  if (!opened.ok) return opened.error;
  try {
    if (flags.json) writeJson([...listEntries(opened.value)]);
    else await printTable(listEntries(opened.value));
  } finally {
    // Closing a read-only use of the index: nothing to lose if it fails.
    await opened.value.close().catch(() => {});
  }
  return 0;
}

/** Rows laid out as the first page's widths allow, a page at a time, until the reader goes. */
async function printTable(rows: Iterable<Listed>): Promise<void> {
  let page: Listed[] = [];
  let widths: number[] | undefined;
  const now = Date.now();
  for (const row of rows) {
    page.push(row);
    if (page.length < PAGE) continue;
    const laid = layOut(page, now, widths);
    widths = laid.widths;
    if (!(await writeOut(laid.text))) return;
    page = [];
  }
  if (widths === undefined || page.length > 0) await writeOut(layOut(page, now, widths).text);
}

/** Rows per write: `ls | head` decodes about this many entries, however many the cache holds. */
const PAGE = 100;

/** Entries newest first (ties: key order), decoded one at a time as they are read. */
export function* listEntries(store: Store): Iterable<Listed> {
  for (const key of store.newestKeys()) {
    const e = store.getEntry(key);
    if (e) yield listed(store, e);
  }
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

const HEADER = ['TASK', 'KIND', 'KEY', 'SIZE', 'AGE', 'LAST HIT', 'HITS', 'TOOK'];
const RIGHT = new Set([3, 6, 7]);

function cells(r: Listed, now: number): string[] {
  const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 3)}...` : s);
  return [
    cut(r.task, 40),
    r.kind,
    r.key.slice(0, 12),
    formatBytes(r.bytes),
    ago(r.createdAt, now),
    r.lastHit === undefined ? 'never' : ago(r.lastHit, now),
    String(r.hits),
    formatDuration(r.durationMs),
  ];
}

/**
 * One page of the table, and the column widths it used: the first page's (with the header) are
 * computed from it, later pages reuse them. An empty cache says so.
 */
function layOut(rows: Listed[], now: number, widths?: number[]): { text: string; widths: number[] } {
  const table = rows.map((r) => cells(r, now));
  if (widths === undefined) table.unshift(HEADER);
  const w = widths ?? HEADER.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  if (rows.length === 0) return { text: widths === undefined ? 'No entries in the cache.\n' : '', widths: w };
  const lines = table.map((row) =>
    row
      .map((cell, i) => (RIGHT.has(i) ? cell.padStart(w[i]!) : cell.padEnd(w[i]!)))
      .join('  ')
      .trimEnd(),
  );
  return { text: `${lines.join('\n')}\n`, widths: w };
}

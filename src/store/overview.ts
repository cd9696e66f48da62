import type { Store } from './store.js';

/*
 * Cache-wide figures read from the index's small records (summaries, last access, counters), never
 * by decoding whole entries: what the dashboard and `taskvault metrics` show for 100,000 entries
 * within a request. The numbers are those of `taskvault stats` (stats.ts), which decodes every entry.
 */

/** One row of the entries table. */
export interface EntryRow {
  key: string;
  task: string;
  createdAt: number;
  lastAccess: number;
  bytes: number;
  ttlMs: number;
}

/** Every entry's row, in key order (summaries and last-access times are both kept by key). */
export function entryRows(store: Store): EntryRow[] {
  const rows: EntryRow[] = [];
  for (const s of store.summariesOf())
    rows.push({
      key: s.key,
      task: s.task,
      createdAt: s.createdAt,
      lastAccess: s.createdAt,
      bytes: s.bytes,
      ttlMs: s.ttlMs,
    });
  // Merge join on the key: both ranges are sorted the same way.
  let i = 0;
  for (const { key, at } of store.accessTimes()) {
    while (i < rows.length && rows[i]!.key < key) i++;
    if (i < rows.length && rows[i]!.key === key) rows[i]!.lastAccess = at;
  }
  return rows;
}

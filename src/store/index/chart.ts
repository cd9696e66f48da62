import type { Happening } from '../timeseries.js';
import type { IndexDbs } from './dbs.js';
import { background } from './writes.js';

/*
 * The time series' share of a counter or entry change (timeseries.ts), booked inside the same write
 * transaction as the change, so that its hourly buckets always add up to what the counters say.
 */

export function chart(dbs: IndexDbs, at: number, happening: Happening): void {
  chartAll(dbs, [{ at, happening }]);
}

/** Several changes in one pass: each bucket they touch is read and written once. */
export function chartAll(dbs: IndexDbs, items: Array<{ at: number; happening: Happening }>): void {
  for (const p of dbs.series.record(items)) background(p);
}

/** The task an entry belongs to, from its summary ('' when unknown or anonymous). */
export const taskOf = (dbs: IndexDbs, key: string): string => dbs.summaries.get(key)?.[3] ?? '';

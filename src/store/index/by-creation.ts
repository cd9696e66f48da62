import type { IndexDbs } from './dbs.js';

/*
 * The byCreation db: every entry's key in creation order, kept in the same write transactions as
 * the entries (entries.ts), checked by gc's recount, rebuilt when an older TaskVault left it short.
 */

/**
 * Every entry's key, newest first (ties: key order), read lazily from byCreation: `ls | head` stops
 * after a page. byCreation is checked against the entries first (two O(1) counts): an index written
 * by an older TaskVault lacks some records, and is then rebuilt (or, read-only, sorted in memory).
 */
export function* newestKeys(dbs: IndexDbs): Iterable<string> {
  if (!inStep(dbs) && !(rebuildByCreation(dbs) && inStep(dbs))) {
    const all = [...dbs.summaries.getRange()].map(({ key, value }) => ({ key, createdAt: value[0] }));
    all.sort((a, b) => b.createdAt - a.createdAt || (a.key < b.key ? -1 : 1));
    for (const s of all) yield s.key;
    return;
  }
  // Ties in createdAt come out in reverse key order: gathered per millisecond and put back in order.
  let tied: string[] = [];
  let at: number | undefined;
  for (const [createdAt, key] of dbs.byCreation.getKeys({ reverse: true })) {
    if (createdAt !== at) {
      yield* tied.reverse();
      tied = [];
      at = createdAt;
    }
    tied.push(key);
  }
  yield* tied.reverse();
}

/** Whether byCreation has one record per entry (lmdb's page statistics: O(1)). */
const inStep = (dbs: IndexDbs): boolean =>
  (dbs.byCreation.getStats() as Stats).entryCount === (dbs.entries.getStats() as Stats).entryCount;

type Stats = { entryCount: number };

/** Rewrites byCreation from the summaries; false if the index cannot be written (read-only). */
function rebuildByCreation(dbs: IndexDbs): boolean {
  try {
    dbs.env.transactionSync(() => syncByCreation(dbs));
    return true;
  } catch {
    return false; // read-only file system or full disk: the caller sorts in memory instead
  }
}

/**
 * Inside a write transaction: makes byCreation hold exactly one record per summary; returns how
 * many records it changed. Summaries must be right first (recount fixes them before calling this).
 */
export function syncByCreation(
  dbs: IndexDbs,
  /** Each summary's creation time by key, when the caller has them (recount): no reads then. */
  known?: ReadonlyMap<string, number>,
): number {
  const created = known ?? new Map([...dbs.summaries.getRange()].map(({ key, value }) => [key, value[0]]));
  // One pass over each side, no lookup per record: at 100,000 entries the lookups were most of it.
  const inStep = new Set<string>();
  let changed = 0;
  for (const [createdAt, key] of dbs.byCreation.getKeys()) {
    if (created.get(key) === createdAt) inStep.add(key);
    else {
      dbs.byCreation.remove([createdAt, key]);
      changed++;
    }
  }
  for (const [key, createdAt] of created) {
    if (!inStep.has(key)) {
      dbs.byCreation.put([createdAt, key], 1);
      changed++;
    }
  }
  return changed;
}

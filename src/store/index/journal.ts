import { readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { type JournalHit, parseJournal } from '../hot.js';
import type { IndexDbs } from './dbs.js';

/*
 * Folding hits.journal (hits served from hot/ without the index, see hot.ts) into the index:
 * counters, and each entry's hit count and last access, which eviction orders by.
 */

/** Bytes of hits.journal already added to the index (meta db). */
const JOURNAL_OFFSET = 'journalOffset';
/** The journal starts over once this much of it has been folded. */
const JOURNAL_ROTATE_BYTES = 1024 * 1024;

/**
 * Runs when the store opens, so stats, ls and eviction see the journal's hits; inside one write
 * transaction, so that two processes opening at once fold each line once.
 */
export function foldHits(dbs: IndexDbs, journal: string): void {
  try {
    foldHitsOrThrow(dbs, journal);
  } catch {
    // Counts only: a journal that cannot be read or renamed must not cost the cache.
  }
}

function foldHitsOrThrow(dbs: IndexDbs, path: string): void {
  const size = statSync(path, { throwIfNoEntry: false })?.size;
  if (size === undefined || size === (dbs.meta.get(JOURNAL_OFFSET) ?? 0)) return;
  dbs.env.transactionSync(() => {
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch {
      return; // renamed away by a process that folded it first
    }
    let from = dbs.meta.get(JOURNAL_OFFSET) ?? 0;
    if (from > buf.length) from = 0; // the journal was replaced: start over
    const end = buf.lastIndexOf(0x0a) + 1; // complete lines only
    if (end <= from) return;
    const hits = parseJournal(buf.toString('utf8', from, end));
    if (end < JOURNAL_ROTATE_BYTES) {
      applyHits(dbs, hits);
      dbs.meta.put(JOURNAL_OFFSET, end);
      return;
    }
    // Start a new journal; lines appended to the old one after it was read are folded too.
    const folding = `${path}.${process.pid}.folding`;
    renameSync(path, folding);
    const rest = readFileSync(folding);
    hits.push(...parseJournal(rest.toString('utf8', end, rest.lastIndexOf(0x0a) + 1)));
    rmSync(folding, { force: true });
    applyHits(dbs, hits);
    dbs.meta.put(JOURNAL_OFFSET, 0);
  });
}

function applyHits(dbs: IndexDbs, hits: JournalHit[]): void {
  if (hits.length === 0) return;
  let saved = 0;
  for (const h of hits) {
    saved += h.savedMs;
    if (!dbs.entries.doesExist(h.key)) continue;
    dbs.access.put(h.key, Math.max(dbs.access.get(h.key) ?? 0, h.at));
    dbs.hits.put(h.key, (dbs.hits.get(h.key) ?? 0) + 1);
  }
  dbs.counters.put('hits', (dbs.counters.get('hits') ?? 0) + hits.length);
  dbs.counters.put('savedMs', (dbs.counters.get('savedMs') ?? 0) + saved);
}

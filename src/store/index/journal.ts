import { readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tempSuffix } from '../../util/temp-name.js';
import { type JournalHit, parseJournal } from '../hot.js';
import type { Happening } from '../timeseries.js';
import { taskOf } from './chart.js';
import type { IndexDbs } from './dbs.js';

/*
 * Folding hits.journal (hits served from hot/ without the index, see hot.ts) into the index:
 * counters, and each entry's hit count and last access, which eviction orders by.
 *
 * Exactly once: every line is counted once, whatever process folds, fails or dies when. What is
 * folded is recorded in the same write transaction as the counts it adds: the journal's offset
 * (with its inode, so that a replaced journal is read from its start), and for a rotated segment
 * its own offset. A full journal is rotated by renaming it to a segment, named with the offset
 * already folded before this fold, so a fold that never commits leaves the segment to be read
 * from there. A segment is deleted only after its offset is committed and once it is older than
 * SEGMENT_GRACE_MS: a hit whose process opened the journal just before it was renamed still
 * writes into the segment, and is counted by the next fold. The one bound: a process that stalls
 * for longer than that between opening the journal and writing its line (one write call) loses
 * that one hit.
 */

/** Bytes of hits.journal already added to the index (meta db). */
const JOURNAL_OFFSET = 'journalOffset';
/** The inode of hits.journal that JOURNAL_OFFSET is about (-1 after a rotation: none yet). */
const JOURNAL_INO = 'journalIno';
/** The journal starts over once this much of it has been folded. */
const JOURNAL_ROTATE_BYTES = 1024 * 1024;
/** A rotated segment is kept this long, so late writers into it are still counted. */
export const SEGMENT_GRACE_MS = 60_000;
/** hits.journal.<rotated at ms>-<pid>-<rand>-<offset folded before>.rotated */
const SEGMENT = /^hits\.journal\.(\d+)-\d+-[0-9a-z]+-(\d+)\.rotated$/;
/** meta db key of a segment's folded offset. */
const segmentKey = (name: string) => `segment:${name}`;

/**
 * Runs when the store opens, so stats, ls and eviction see the journal's hits; inside one write
 * transaction, so that two processes opening at once fold each line once.
 */
export function foldHits(dbs: IndexDbs, journal: string): void {
  try {
    const spent = foldHitsOrThrow(dbs, journal);
    for (const path of spent) rmSync(path, { force: true });
  } catch {
    // Counts only: a journal that cannot be read or renamed must not cost the cache. Nothing
    // folded is lost: the offsets committed say where the next fold starts.
  }
}

/** Folds what is new; returns the segments that are fully counted and past their grace. */
function foldHitsOrThrow(dbs: IndexDbs, path: string): string[] {
  const dir = dirname(path);
  if (!needsFold(dbs, dir, path)) return [];
  return dbs.env.transactionSync(() => {
    const hits: JournalHit[] = [];
    const spent: string[] = [];
    foldJournal(dbs, path, hits);
    // After the journal: the lines written into a segment rotated just now are read at once.
    const now = Date.now();
    const live = new Set<string>();
    for (const name of readdirSync(dir)) {
      const m = SEGMENT.exec(name);
      if (!m) continue;
      live.add(segmentKey(name));
      const from = dbs.meta.get(segmentKey(name)) ?? Number(m[2]);
      const buf = readFileSync(join(dir, name));
      const end = Math.max(from, buf.lastIndexOf(0x0a) + 1);
      hits.push(...parseJournal(buf.toString('utf8', from, end)));
      dbs.meta.put(segmentKey(name), end);
      if (now - Number(m[1]) > SEGMENT_GRACE_MS) spent.push(join(dir, name));
    }
    // Records of segments deleted after an earlier fold committed (names are never reused).
    const records = [...dbs.meta.getKeys({ start: 'segment:', end: 'segment;' })];
    for (const key of records) if (!live.has(key)) dbs.meta.remove(key);
    applyHits(dbs, hits);
    return spent;
  });
}

/** Inside the fold's transaction: the journal's new complete lines, rotating it when large. */
function foldJournal(dbs: IndexDbs, path: string, hits: JournalHit[]): void {
  let buf: Buffer;
  let ino: number;
  try {
    buf = readFileSync(path);
    ino = statSync(path).ino;
  } catch {
    return; // no journal (none yet, or just rotated by another version)
  }
  const knownIno = dbs.meta.get(JOURNAL_INO);
  let from = knownIno === undefined || knownIno === ino ? (dbs.meta.get(JOURNAL_OFFSET) ?? 0) : 0;
  if (from > buf.length) from = 0; // replaced (by an older version's rotation): start over
  const end = buf.lastIndexOf(0x0a) + 1; // complete lines only
  if (end > from) hits.push(...parseJournal(buf.toString('utf8', from, end)));
  if (end < JOURNAL_ROTATE_BYTES) {
    dbs.meta.put(JOURNAL_OFFSET, Math.max(from, end));
    dbs.meta.put(JOURNAL_INO, ino);
    return;
  }
  // Start a new journal. The segment's name carries `from`: if this transaction never commits,
  // the next fold reads it from there; if it does, from the offset recorded for it here.
  const name = `${basename(path)}.${Date.now()}-${process.pid}-${tempSuffix()}-${from}.rotated`;
  renameSync(path, join(dirname(path), name));
  dbs.meta.put(segmentKey(name), end);
  dbs.meta.put(JOURNAL_OFFSET, 0);
  dbs.meta.put(JOURNAL_INO, -1);
}

/**
 * Whether there is anything to fold: checked without a write transaction, since every miss opens
 * the store. A few stats of files in the cache dir.
 */
function needsFold(dbs: IndexDbs, dir: string, path: string): boolean {
  const size = statSync(path, { throwIfNoEntry: false })?.size;
  if (size !== undefined && size !== (dbs.meta.get(JOURNAL_OFFSET) ?? 0)) return true;
  const now = Date.now();
  for (const name of readdirSync(dir)) {
    const m = SEGMENT.exec(name);
    if (!m) continue;
    if (now - Number(m[1]) > SEGMENT_GRACE_MS) return true; // to be deleted
    const folded = dbs.meta.get(segmentKey(name));
    const grown = (statSync(join(dir, name), { throwIfNoEntry: false })?.size ?? 0) > (folded ?? -1);
    if (grown) return true;
  }
  return false;
}

function applyHits(dbs: IndexDbs, hits: JournalHit[]): void {
  if (hits.length === 0) return;
  let saved = 0;
  const charted: Array<{ at: number; happening: Happening }> = [];
  for (const h of hits) {
    saved += h.savedMs;
    charted.push({
      at: h.at,
      happening: { kind: 'hit', task: taskOf(dbs, h.key), savedMs: h.savedMs, remote: false },
    });
    if (!dbs.entries.doesExist(h.key)) continue;
    dbs.access.put(h.key, Math.max(dbs.access.get(h.key) ?? 0, h.at));
    dbs.hits.put(h.key, (dbs.hits.get(h.key) ?? 0) + 1);
  }
  dbs.counters.put('hits', (dbs.counters.get('hits') ?? 0) + hits.length);
  dbs.counters.put('savedMs', (dbs.counters.get('savedMs') ?? 0) + saved);
  dbs.series.record(charted);
}

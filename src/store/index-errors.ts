/*
 * Telling an index that lmdb found damaged from other failures (disk full, permissions), by the
 * messages lmdb and msgpackr give. Apart from the page check (index-check.ts) because the CLI and
 * the runner need only this, and the page check stays off the hit path.
 */
import { type Failure, failure } from '../util/result.js';

/**
 * What lmdb reports on a damaged page. (Not MDB_BAD_TXN: it follows any failed operation, a full
 * disk too, and must not get a sound index moved aside.)
 */
const LMDB_DAMAGE = /MDB_(CORRUPTED|PAGE_NOTFOUND|INVALID|PANIC)|index points to a/;
/** What msgpackr (which decodes every value lmdb-js reads) reports on a damaged record. */
const RECORD_DAMAGE =
  /Unknown (extension|MessagePack token)|Unexpected end of (buffer|MessagePack data)|end of buffer not reached|Invalid property type for record|Record id is not defined|Could not find typed array/;

/** Errors by which lmdb says the data it read is damaged (as opposed to disk full, permissions…). */
export function isIndexCorruption(e: unknown): boolean {
  const m = e instanceof Error ? e.message : String(e);
  return LMDB_DAMAGE.test(m) || RECORD_DAMAGE.test(m);
}

/** The error as one short line: msgpackr appends the whole half-decoded record to its message. */
export function corruptionText(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m
    .split('\n')[0]!
    .replace(/ [{[].*$/, '')
    .slice(0, 200);
}

/** The one way a damaged index is reported (Store.open without repair, the CLI, the runner). */
export function corruptIndex(where: string | undefined, damage: string): Failure {
  return failure(
    'cache',
    `the cache index${where ? ` at ${where}` : ''} is corrupt: ${damage}`,
    "run 'taskvault verify --repair' to rebuild it from hot/",
  );
}

import type { Database, RootDatabase } from 'lmdb';
import type { Entry } from '../entry.js';
import { TimeSeries } from '../timeseries.js';
import { Fingerprints } from './fingerprints.js';

/**
 * How the index is opened, here and by the probe in a child process (open.ts, lmdbReads). Without
 * `eventTurnBatching: false`, lmdb-js also rejects a promise of its own (the batch it opens per
 * event turn) when a commit fails, which no caller can handle: an unhandled rejection in whatever
 * program uses the store. Atomic groups of writes use explicit transactions either way.
 */
export const ENV_OPTIONS = { maxDbs: 24, compression: false, noMemInit: true, eventTurnBatching: false };

/** What eviction needs to know about an entry, small enough to scan 100k of quickly. */
export type SummaryRecord = [createdAt: number, ttlMs: number, bytes: number, task: string];

export const summaryOf = (e: Entry): SummaryRecord => [e.createdAt, e.ttlMs, e.bytes, e.task];

/** A key of the byCreation db; lmdb-js orders array keys element by element. */
export type CreationKey = [createdAt: number, key: string];

/** The databases of one LMDB environment: the index. Each name is part of the on-disk format. */
export interface IndexDbs {
  env: RootDatabase;
  entries: Database<Entry, string>;
  fingerprints: Fingerprints;
  access: Database<number, string>;
  /** Task label → the key most recently stored for it. */
  latest: Database<string, string>;
  counters: Database<number, string>;
  /** Per-entry hit counts (for `ls`). */
  hits: Database<number, string>;
  /** When a `cache get` / SDK lookup last missed a key, so a later save can tell how long the work took. */
  pending: Database<number, string>;
  /** Blob hash → number of entries referencing it (refs.ts). */
  refs: Database<number, string>;
  /** Blob hash → its bytes: small results kept inside the index instead of as files (small-blobs.ts). */
  smallBlobs: Database<Buffer, string>;
  /** Entry key → its SummaryRecord. */
  summaries: Database<SummaryRecord, string>;
  /** [createdAt, key] → 1: every entry in creation order, so `ls` reads the newest first in O(rows shown). */
  byCreation: Database<1, CreationKey>;
  /** Schema version, migration flags, the journal offset. */
  meta: Database<number, string>;
  /** Key → when its fingerprint was staged by a run not yet committed (entries.ts, stageFingerprint). */
  staged: Database<number, string>;
  /** Hourly and daily buckets of what happened (timeseries.ts), for the dashboard and metrics. */
  series: TimeSeries;
  /** The generation file (store/generation.ts), bumped after each commit that changes entries. */
  generation: string;
}

export function indexDbs(env: RootDatabase, meta: Database<number, string>, generation: string): IndexDbs {
  return {
    env,
    entries: env.openDB({ name: 'entries' }),
    fingerprints: new Fingerprints(
      env.openDB({ name: 'fingerprintText' }),
      env.openDB({ name: 'fingerprints' }),
    ),
    access: env.openDB({ name: 'access' }),
    latest: env.openDB({ name: 'latest' }),
    counters: env.openDB({ name: 'counters' }),
    hits: env.openDB({ name: 'hits' }),
    pending: env.openDB({ name: 'pending' }),
    refs: env.openDB({ name: 'refs' }),
    smallBlobs: env.openDB({ name: 'smallBlobs', encoding: 'binary' }),
    summaries: env.openDB({ name: 'summary' }),
    byCreation: env.openDB({ name: 'byCreation' }),
    meta,
    staged: env.openDB({ name: 'staged' }),
    series: new TimeSeries(env.openDB({ name: 'series' }), env.openDB({ name: 'seriesDays' })),
    generation,
  };
}

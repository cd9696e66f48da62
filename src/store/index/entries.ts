import { readdirSync } from 'node:fs';
import type { Fingerprint } from '../../fingerprint/fingerprint.js';
import { err, failure, ok, type Result } from '../../util/result.js';
import type { BlobStore } from '../blobs.js';
import { type Entry, entryBlobs } from '../entry.js';
import { bumpGeneration } from '../generation.js';
import type { HotIndex } from '../hot.js';
import type { Happening } from '../timeseries.js';
import { chart, chartAll } from './chart.js';
import { type IndexDbs, summaryOf } from './dbs.js';
import { Fingerprints } from './fingerprints.js';
import { addRefs, bookUsage, dropRefs, usage } from './refs.js';
import { blobInPlace, putSmallBlob } from './small-blobs.js';
import { background, noteWriteFailed, transact, writeErrorMessage } from './writes.js';

/*
 * Entries in the index: committing one (with its references, summary and fingerprint), removing
 * them, and staging a fingerprint ahead of its entry.
 */

/** A staged fingerprint older than this whose run never committed is dropped by the next commit. */
const STAGED_STALE_MS = 60 * 60_000;

export interface EntrySummary {
  key: string;
  createdAt: number;
  ttlMs: number;
  bytes: number;
  task: string;
}

/** What removing one entry freed: its blobs that no other entry referenced. */
export interface Removed {
  key: string;
  entry: Entry;
  blobs: number;
  bytes: number;
}

/** Inside a write transaction: the entry and what eviction reads about it. */
function putEntry(dbs: IndexDbs, entry: Entry): void {
  // Each put inside the transaction returns its own promise, rejected too if the commit fails.
  background(dbs.entries.put(entry.key, entry));
  background(dbs.access.put(entry.key, entry.createdAt));
  background(dbs.summaries.put(entry.key, summaryOf(entry)));
  background(dbs.byCreation.put([entry.createdAt, entry.key], 1));
}

/**
 * Inside a write transaction: commits an entry after checking that every blob it references is in
 * place (invariant 2); returns the hash of a missing blob instead. The check runs inside the write
 * transaction: eviction deletes a blob only inside its own write transaction, after its reference
 * count reached zero, so a blob seen here cannot disappear before this entry's references are
 * counted.
 */
function applyCommit(dbs: IndexDbs, blobs: BlobStore, c: Commit, charted: Charted): string | undefined {
  const { entry, fingerprint, label, data } = c;
  const out = entry.outputs[0];
  if (data && out?.type === 'file') putSmallBlob(dbs, out.hash, data);
  for (const ref of entryBlobs(entry)) if (!blobInPlace(dbs, blobs, entry, ref)) return ref.hash;
  const previous = dbs.entries.get(entry.key);
  // Reference the new blobs before releasing the old entry's, so shared ones never hit zero.
  addRefs(dbs, entry);
  if (previous) {
    bookUsage(dbs, -dropRefs(dbs, blobs, previous).bytes);
    dbs.byCreation.remove([previous.createdAt, previous.key]);
  }
  putEntry(dbs, entry);
  // Usually staged while the command ran (stageFingerprint); the key is its hash, so one
  // found under it is this one.
  if (!dbs.fingerprints.has(entry.key)) background(dbs.fingerprints.put(entry.key, fingerprint));
  background(dbs.staged.remove(entry.key));
  dropStaleStaged(dbs, entry.createdAt);
  background(dbs.latest.put(label, entry.key));
  if (entry.provenance.origin === 'remote')
    charted.push({ at: Date.now(), happening: { kind: 'remote', direction: 'down', bytes: entry.bytes } });
  charted.push({
    at: entry.createdAt,
    happening: { kind: 'save', task: entry.task, durationMs: entry.durationMs, usage: usage(dbs) },
  });
  return undefined;
}

type Charted = Array<{ at: number; happening: Happening }>;

/**
 * Inside a write transaction: applyCommit for each, in order (the hash of a missing blob, or
 * undefined, per commit); their time-series records go in one pass, each bucket written once for
 * the whole group instead of once per entry.
 */
function applyCommits(dbs: IndexDbs, blobs: BlobStore, commits: Commit[]): Array<string | undefined> {
  const charted: Charted = [];
  const missing = commits.map((c) => applyCommit(dbs, blobs, c, charted));
  chartAll(dbs, charted);
  markJournals(dbs, commits, missing);
  return missing;
}

/** One entry to commit, with its fingerprint and task label. */
export interface Commit {
  entry: Entry;
  fingerprint: Fingerprint;
  label: string;
  /** A small result's bytes, under its one output's hash: kept in the index (small-blobs.ts). */
  data?: Uint8Array;
  /** A fast save's line in its process's pending journal (store/pending.ts). */
  journaled?: Journaled;
}

/** Where a save's line is: the journal's file name and the line's number. */
export interface Journaled {
  journal: string;
  seq: number;
}

/** The meta record of the journal `name`: every line of it up to this number is committed. */
export const journalMark = (name: string): string => `journal:${name}`;

/**
 * Inside a write transaction: moves each journal's mark past the lines of `commits` that were
 * applied (`missing` undefined) and follow on from it without a gap. A line that failed, or one
 * whose group failed before, stops its journal's mark there: folding the journal later commits
 * it, and what follows it, again.
 */
function markJournals(dbs: IndexDbs, commits: Commit[], missing: Array<string | undefined>): void {
  const lines = commits
    .map((c, i) => ({ at: c.journaled, applied: missing[i] === undefined }))
    .filter((l): l is { at: Journaled; applied: boolean } => l.at !== undefined)
    .sort((a, b) => a.at.seq - b.at.seq);
  const marks = new Map<string, number>();
  for (const { at, applied } of lines) {
    const mark = marks.get(at.journal) ?? dbs.meta.get(journalMark(at.journal)) ?? 0;
    marks.set(at.journal, applied && at.seq === mark + 1 ? at.seq : Number.NaN);
  }
  for (const [journal, mark] of marks)
    if (!Number.isNaN(mark)) background(dbs.meta.put(journalMark(journal), mark));
}

/**
 * Commits entries in one write transaction (each checked as applyCommit says); one result per
 * entry, in order. A failed transaction commits none of them.
 */
export async function commitEntries(
  dbs: IndexDbs,
  blobs: BlobStore,
  commits: Commit[],
): Promise<Array<Result<void>>> {
  let missing: Array<string | undefined>;
  try {
    missing = await transact(dbs.env, () => applyCommits(dbs, blobs, commits));
    if (missing.some((m) => m === undefined)) bumpGeneration(dbs.generation);
  } catch (e) {
    noteWriteFailed();
    const failed = err(failure('cache', `index commit failed: ${await writeErrorMessage(e)}`));
    return commits.map(() => failed);
  }
  return missing.map((m) =>
    m ? err(failure('cache', `blob ${m.slice(0, 12)} vanished before commit`)) : ok(undefined),
  );
}

/**
 * Group commit: entries committed while a commit is in flight wait for it and then go together,
 * in one write transaction. Each commit is one LMDB transaction whose flush to disk the next must
 * wait for, so concurrent saves share it instead of queueing one flush each.
 */
export class CommitQueue {
  private waiting: Array<Commit & { done: (r: Result<void>) => void }> = [];
  private busy = false;

  constructor(
    private readonly dbs: IndexDbs,
    private readonly blobs: BlobStore,
  ) {}

  commit(c: Commit): Promise<Result<void>> {
    return new Promise((done) => {
      this.waiting.push({ ...c, done });
      if (!this.busy) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0);
        const results = await commitEntries(this.dbs, this.blobs, batch);
        for (const [i, c] of batch.entries()) c.done(results[i]!);
      }
    } finally {
      this.busy = false;
    }
  }
}

/**
 * Removes entries in one write transaction and deletes, inside it, the blobs whose reference
 * count reaches zero. `at` guards against a hit that happened after eviction planned: an entry
 * whose last access changed is kept. `stopAtUsage` ends the batch once usage is down to it.
 */
export function removeEntries(
  dbs: IndexDbs,
  blobs: BlobStore,
  items: Array<{ key: string; at?: number }>,
  o: { stopAtUsage?: number; keep?: (entry: Entry) => boolean; reason?: string },
): Promise<Removed[]> {
  const removing = transact(dbs.env, () => {
    const removed: Removed[] = [];
    // Kept here and booked once at the end: a counter write per entry was a tenth of a gc.
    const before = usage(dbs);
    let now = before;
    for (const { key, at } of items) {
      if (o.stopAtUsage !== undefined && now <= o.stopAtUsage) break;
      const entry = dbs.entries.get(key);
      if (!entry) continue;
      if (at !== undefined && dbs.access.get(key) !== at) continue;
      if (o.keep?.(entry)) continue;
      dbs.entries.remove(key);
      dbs.fingerprints.remove(key);
      dbs.access.remove(key);
      dbs.hits.remove(key);
      dbs.summaries.remove(key);
      dbs.byCreation.remove([entry.createdAt, key]);
      const dropped = dropRefs(dbs, blobs, entry);
      now = Math.max(0, now - dropped.bytes);
      removed.push({ key, entry, ...dropped });
    }
    if (removed.length > 0) {
      bookUsage(dbs, now - before);
      chart(dbs, Date.now(), {
        kind: 'evict',
        reason: o.reason ?? 'removed',
        entries: removed.length,
        bytes: removed.reduce((n, r) => n + r.bytes, 0),
        usage: now,
      });
    }
    return removed;
  });
  return removing.then((removed) => {
    if (removed.length > 0) bumpGeneration(dbs.generation);
    return removed;
  });
}

/**
 * Re-adds every entry of hot/ whose blobs all exist, as a commit would (reference counts, usage,
 * summaries), in one write transaction. Their fingerprints (for `explain`) are not in hot/.
 */
export function restoreFromHot(dbs: IndexDbs, hot: HotIndex, blobs: BlobStore): number {
  let names: string[];
  try {
    names = readdirSync(hot.layout.hot);
  } catch {
    return 0; // no hot/ (a cache from before it existed): nothing to restore from
  }
  const usable: Entry[] = [];
  for (const name of names) {
    const e = hot.getEntry(name);
    if (e && e !== 'damaged' && entryBlobs(e).every((ref) => blobs.has(ref.hash))) usable.push(e);
  }
  const restored = dbs.env.transactionSync(() => {
    let n = 0;
    for (const e of usable) {
      if (dbs.entries.doesExist(e.key)) continue;
      addRefs(dbs, e);
      putEntry(dbs, e);
      n++;
    }
    return n;
  });
  if (restored > 0) bumpGeneration(dbs.generation);
  return restored;
}

/** Every entry's key, task, creation time, TTL and size, without decoding whole entries. */
export function* summariesOf(dbs: IndexDbs): Iterable<EntrySummary> {
  for (const { key, value } of dbs.summaries.getRange()) {
    const [createdAt, ttlMs, bytes, task] = value;
    yield { key, createdAt, ttlMs, bytes, task };
  }
}

/**
 * Writes an entry's fingerprint ahead of the entry: a miss does it while its command runs, since
 * for thousands of inputs it is most of the bytes a commit writes (2,000 inputs: ~170 KB, and ~7
 * ms taken off the time after the command). Stored under the key it hashes to, so a staged
 * fingerprint is never wrong, only unused if the entry is not committed: `dropStaged` removes it
 * then, and one left by a killed run goes with a later commit (dropStaleStaged) or gc.
 *
 * Serialised here, when called: lmdb runs the transaction's body on this thread later, while the
 * command runs, and a miss must not block this thread then (runner/miss.ts runCommand).
 */
export async function stageFingerprint(
  dbs: IndexDbs,
  key: string,
  fingerprint: Fingerprint,
  now: number,
): Promise<void> {
  const text = Fingerprints.text(fingerprint);
  await transact(dbs.env, () => {
    background(dbs.fingerprints.putText(key, text));
    background(dbs.staged.put(key, now));
  });
}

/** Inside a write transaction: a staged fingerprint whose entry was not committed. */
export function dropStaged(dbs: IndexDbs, key: string): void {
  if (!dbs.entries.doesExist(key)) dbs.fingerprints.remove(key);
  background(dbs.staged.remove(key));
}

/**
 * Inside a write transaction: staged fingerprints of runs that never committed and are older than
 * any run still likely to be going. Harmless if one is still going: its commit writes the
 * fingerprint again when it finds none. The staged db holds only uncommitted runs: a short scan.
 */
function dropStaleStaged(dbs: IndexDbs, now: number): void {
  for (const { key, value } of dbs.staged.getRange()) if (now - value > STAGED_STALE_MS) dropStaged(dbs, key);
}

/**
 * Commits, in one write transaction, saves acknowledged before their commit by a process that
 * died before it got there (store/pending.ts). Committing one twice changes nothing; an entry
 * already newer in the index is kept, and one whose blob is gone is skipped (a miss).
 */
export function commitPending(dbs: IndexDbs, blobs: BlobStore, commits: Commit[], journals: string[]): void {
  const applied = dbs.env.transactionSync(() => {
    const charted: Charted = [];
    let n = 0;
    for (const c of commits) {
      const current = dbs.entries.get(c.entry.key);
      if (current && current.createdAt >= c.entry.createdAt) continue;
      if (applyCommit(dbs, blobs, c, charted) === undefined) n++;
    }
    chartAll(dbs, charted);
    for (const journal of journals) background(dbs.meta.remove(journalMark(journal)));
    return n;
  });
  if (applied > 0) bumpGeneration(dbs.generation);
}

/** The journals that have a mark in the index (`journal:<name>`), each with its mark. */
export function journalMarks(dbs: IndexDbs): Map<string, number> {
  const marks = new Map<string, number>();
  for (const { key, value } of dbs.meta.getRange({ start: 'journal:', end: 'journal;' }))
    marks.set(key.slice('journal:'.length), value);
  return marks;
}

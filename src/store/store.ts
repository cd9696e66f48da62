import { statSync } from 'node:fs';
import type { Durability } from '../config/types.js';
import type { Fingerprint, ManifestStore } from '../fingerprint/fingerprint.js';
import { hashBytes } from '../fingerprint/hash.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { warn as warnLine } from '../util/term.js';
import { mark } from '../util/trace.js';
import { type AuditEvent, AuditLog } from './audit.js';
import { BlobStore } from './blobs.js';
import { type Entry, entryBlobs } from './entry.js';
import { HotIndex } from './hot.js';
import { newestKeys } from './index/by-creation.js';
import { chart } from './index/chart.js';
import {
  type Counters,
  count,
  drainHits,
  MISS_WINDOW_MS,
  markMiss,
  readCounters,
  recordHit,
  takeMiss,
} from './index/counters.js';
import type { IndexDbs } from './index/dbs.js';
import {
  type Commit,
  CommitQueue,
  commitPending,
  dropStaged,
  type EntrySummary,
  journalMarks,
  type Removed,
  removeEntries,
  stageFingerprint,
  summariesOf,
} from './index/entries.js';
import { foldHits } from './index/journal.js';
import { indexFileId, openIndex, rebuildIndex, type StoreFiles } from './index/open.js';
import { type Recount, recount, removeOrphanBlobs, usage } from './index/refs.js';
import { keptInIndex } from './index/small-blobs.js';
import { background, bounded, hasWriteFailed, transact } from './index/writes.js';
import { type CacheLayout, cacheLayout, makeCacheDirs } from './layout.js';
import { PendingResults, remove as removeFile } from './pending.js';
import { lowSpace } from './space.js';
import type { TimeSeries } from './timeseries.js';

export type { Counters } from './index/counters.js';
export type { EntrySummary, Removed } from './index/entries.js';
export { LOW_SPACE_BYTES } from './space.js';

export interface OpenOptions {
  /** Move a corrupt index aside and rebuild it from hot/ (default); false: fail, saying so. */
  repair?: boolean;
  /** Where the one line about a rebuilt index goes (default: a warning on stderr). */
  warn?: (message: string) => void;
  /**
   * Hold hits' bookkeeping up to this long and book them together (index/counters.ts): for
   * long-lived SDK clients. Default 0: each hit is booked at once.
   */
  hitBatchMs?: number;
}

/**
 * The local cache: an LMDB index (entries, fingerprints, last access, counters; see index/) plus
 * content-addressed blobs. LMDB gives multi-process readers and serialised writers with crash-safe
 * commits; entries are committed only after every blob they name exists. This class is the one
 * door to it: what each method does lives in the module named beside it.
 */
export interface CommitOptions {
  /** Default 'strict' (see Store.commit). */
  durability?: Durability;
  /**
   * The bytes of the entry's one output, whose blob is not written yet: a small result's go in the
   * index with the commit (index/small-blobs.ts), others are written as a blob file. Not hashed
   * again here: every read checks bytes against their name, so a wrong caller costs a miss.
   */
  data?: Uint8Array;
  /** Blobs their writer already flushed to disk (a download). */
  flushed?: ReadonlySet<string>;
}

/** How often a long-lived client looks whether its index was replaced on disk (replacedOnDisk). */
export const REPLACED_CHECK_MS = 100;

export class Store {
  readonly layout: CacheLayout;
  readonly blobs: BlobStore;
  /** What hits read without the index: entry copies, input manifests, the hits journal. */
  readonly hot: HotIndex;
  readonly audit: AuditLog;
  /** Why this store does not write (disk nearly full), or undefined. Checked once, at open. */
  readonly noWrites: string | undefined;

  /** Commits in flight and those waiting to go with the next (index/entries.ts). */
  private readonly commits: CommitQueue;
  /** Results acknowledged before their commit (pending.ts), and those commits, still going. */
  private readonly pending: PendingResults;
  private readonly unsettled = new Set<Promise<void>>();
  /** The background commit of each key saved fast, while it is going. */
  private readonly settling = new Map<string, Promise<void>>();

  /** See OpenOptions.hitBatchMs. */
  private hitBatchMs = 0;
  /** data.mdb's identity when this store opened it (indexFileId), and when that was last compared. */
  private openedIndexId: string | undefined;
  private replacedCheckedAt = 0;

  private constructor(
    private readonly files: StoreFiles,
    private readonly dbs: IndexDbs,
  ) {
    this.commits = new CommitQueue(dbs, files.blobs);
    this.pending = new PendingResults(files.layout.pending);
    this.layout = files.layout;
    this.blobs = files.blobs;
    this.hot = files.hot;
    this.audit = files.audit;
    this.noWrites = files.noWrites;
    files.blobs.useIndex(dbs.smallBlobs);
    // Hits served from hot/ since the last open: counted now, so stats, ls and eviction see them.
    if (this.noWrites === undefined) {
      foldHits(dbs, this.layout.hitsJournal);
      this.foldPending();
    }
  }

  /**
   * Commits the saves other processes acknowledged but did not commit (killed, or not yet): the
   * lines of their journals past each one's mark (pending.ts). Drops the marks of journals that
   * are gone (their writer closed them).
   */
  private foldPending(): void {
    try {
      const marks = journalMarks(this.dbs);
      const orphans = this.pending.orphans();
      const gone = [...marks.keys()].filter((j) => !this.pending.exists(j));
      if (orphans.length === 0 && gone.length === 0) return;
      const commits: Commit[] = [];
      for (const o of orphans) {
        const mark = marks.get(o.journal) ?? 0;
        for (const { data, seq, ...c } of o.commits) {
          if (seq !== undefined && seq <= mark) continue; // committed, perhaps removed since
          // Bytes that waited in the journal: kept with the commit if they are what the entry names.
          const out = c.entry.outputs[0];
          if (data !== undefined && out?.type === 'file') {
            const bytes = Buffer.from(data, 'base64');
            if (hashBytes(c.entry.algorithm, bytes) !== out.hash) continue;
            commits.push(this.withBytes(c, bytes));
          } else commits.push(c);
        }
      }
      commitPending(this.dbs, this.blobs, commits, [...orphans.map((o) => o.journal), ...gone]);
      for (const o of orphans) removeFile(o.path);
    } catch {
      // A failed commit (disk full) leaves the files for the next open; the store works without them.
    }
  }

  static open(cacheDir: string, o: OpenOptions = {}): Result<Store> {
    const layout = cacheLayout(cacheDir);
    try {
      makeCacheDirs(layout);
    } catch (e) {
      return err(failure('cache', `cannot open the cache at ${cacheDir}: ${errorMessage(e)}`));
    }
    const files: StoreFiles = {
      layout,
      blobs: new BlobStore(layout.blobs, layout.tmp),
      hot: new HotIndex(layout),
      audit: new AuditLog(layout.audit),
      noWrites: lowSpace(layout.root),
    };
    const opened = openIndex(files, { repair: o.repair, warn: o.warn ?? warnLine });
    if (!opened.ok) return opened;
    const store = new Store(files, opened.value);
    store.openedIndexId = indexFileId(layout);
    store.replacedCheckedAt = Date.now();
    store.hitBatchMs = o.hitBatchMs ?? 0;
    // A client that batches hits lives long and serves the same results again and again: its log
    // stays open, and the small results it verified are kept in memory.
    if (store.hitBatchMs > 0) {
      files.audit.keepOpen();
      files.blobs.rememberVerified();
    }
    return ok(store);
  }

  /**
   * Whether the index on disk is no longer the one this store opened, as seen at most
   * REPLACED_CHECK_MS ago: the cache directory was removed (by hand, say) or another process
   * rebuilt a corrupt index. A long-lived client then opens the one there now (sdk/client.ts);
   * this store's reads and writes would go to a file no other process sees.
   */
  replacedOnDisk(now = Date.now()): boolean {
    // A stat per call would cost a hit in a long-lived client a third of its time: looked at most
    // every REPLACED_CHECK_MS.
    if (now - this.replacedCheckedAt < REPLACED_CHECK_MS) return false;
    this.replacedCheckedAt = now;
    return indexFileId(this.layout) !== this.openedIndexId;
  }

  /**
   * Rebuilds the index of an open store that lmdb reported damaged after it opened (verify
   * --repair); the store is closed first.
   */
  static async rebuildIndex(store: Store, damage: string): Promise<Result<Store>> {
    const seen = indexFileId(store.layout);
    // Closing a damaged environment may fail; it is moved aside next whatever happened.
    await store.close().catch(() => {});
    const rebuilt = rebuildIndex(store.files, damage, seen, warnLine);
    return rebuilt.ok ? ok(new Store(store.files, rebuilt.value)) : rebuilt;
  }

  /**
   * Whether there is an index to open. Only a path that plainly is not there says no: a cache that
   * cannot be read (EACCES) or a cache dir that is a file (ENOTDIR) says yes, so that opening it
   * reports the problem instead of a command showing an empty cache.
   */
  static exists(cacheDir: string): boolean {
    try {
      statSync(cacheLayout(cacheDir).index);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code !== 'ENOENT';
    }
  }

  get dir(): string {
    return this.layout.root;
  }

  /** Drops the cached read snapshot so that commits by other processes become visible. */
  refresh(): void {
    this.dbs.env.resetReadTxn();
  }

  // --- Entries (index/entries.ts) --------------------------------------------------------------

  /** The entry for `key`: this process's save not yet committed, else the index's. */
  getEntry(key: string): Entry | undefined {
    return this.pending.get(key) ?? this.dbs.entries.get(key);
  }

  /** Whether there is an entry for `key`, without decoding it. */
  hasEntry(key: string): boolean {
    return this.pending.get(key) !== undefined || this.dbs.entries.doesExist(key);
  }

  getFingerprint(key: string): Fingerprint | undefined {
    return this.dbs.fingerprints.get(key);
  }

  /** The key most recently stored for a task label (task name, or argv for anonymous runs). */
  latestKey(label: string): string | undefined {
    return this.dbs.latest.get(label);
  }

  lastAccess(key: string): number | undefined {
    return this.dbs.access.get(key);
  }

  /** How many entries the index holds: LMDB's record count, without reading them. */
  entryCount(): number {
    // lmdb's types declare getStats() as {}; it returns mdb_stat's fields (ms_entries: entryCount).
    return (this.dbs.entries.getStats() as { entryCount: number }).entryCount;
  }

  *allEntries(): Iterable<Entry> {
    for (const { value } of this.dbs.entries.getRange()) yield value;
  }

  /**
   * Commits an entry once every blob it references exists (invariant 2). `strict` (the default
   * here): the blobs are on stable storage first (BlobStore.syncAll), so that after a power loss
   * no entry points at an empty blob. `fast`: they are only written, which a crash of this process
   * cannot undo; after a power loss such an entry may find its blob damaged, which the hit's
   * verification turns into a miss (never wrong bytes). Either way the index commit is LMDB's,
   * whose flush to disk follows it (lmdb-js's overlapping sync). Then writes the hot/ copy.
   * `flushed`: blobs their writer already flushed (a download), whose directories alone are flushed.
   */
  async commit(
    entry: Entry,
    fingerprint: Fingerprint,
    label: string,
    o: CommitOptions = {},
  ): Promise<Result<void>> {
    const { durability = 'strict', data, flushed } = o;
    if (this.noWrites) return err(failure('cache', this.noWrites));
    if (durability === 'fast' && entry.result && this.commitLater({ entry, fingerprint, label }, data))
      return ok(undefined);
    // Throws as writing the blob before the save would have (ENOSPC): the caller says so.
    const c = data ? this.withBytes({ entry, fingerprint, label }, data) : { entry, fingerprint, label };
    if (durability === 'strict') {
      try {
        // A small result's bytes go in the index: as durable as its entry, by the same commit.
        const files = c.data ? [] : entryBlobs(entry);
        await this.blobs.syncAll(files, flushed);
        mark('fsync blobs');
      } catch (e) {
        const gone = (e as NodeJS.ErrnoException).code === 'ENOENT';
        return err(
          failure(
            'cache',
            gone ? 'a blob vanished before commit' : `cannot flush blobs to disk: ${errorMessage(e)}`,
          ),
        );
      }
    }
    const committed = await this.commits.commit(c);
    // Results of `cache save` / the SDK are looked up through the index only.
    if (committed.ok && !entry.result) this.hot.putEntry(entry);
    return committed;
  }

  /**
   * The commit of an entry whose one output's bytes are `data`: a small result's go in the index
   * with it (index/small-blobs.ts), anything else is written as a blob file now (blocking: small).
   */
  private withBytes(c: Commit, data: Uint8Array): Commit {
    if (keptInIndex(c.entry, data.byteLength)) return { ...c, data };
    this.blobs.putBytesSync(c.entry.algorithm, data);
    return c;
  }

  /**
   * A fast save of a result: acknowledged once it is in this process's pending journal (pending.ts), the
   * commit following in the background with whatever other saves are waiting. False if the file
   * cannot be written: the caller then waits for the commit.
   */
  private commitLater(c: Commit, data?: Uint8Array): boolean {
    let journaled: Commit['journaled'];
    try {
      journaled = this.pending.write(c, data);
    } catch {
      return false;
    }
    const commit = async (): Promise<Result<void>> => {
      let withData: Commit = { ...c, journaled };
      if (data) {
        try {
          withData = this.withBytes(withData, data);
        } catch (e) {
          return err(failure('cache', `cannot write the result to the cache: ${errorMessage(e)}`));
        }
      }
      return this.commits.commit(withData);
    };
    const settled: Promise<void> = commit().then((r) => {
      this.unsettled.delete(settled);
      if (this.settling.get(c.entry.key) === settled) this.settling.delete(c.entry.key);
      this.pending.done(c.entry, r.ok);
      // Acknowledged but not committed (a failed index write, the disk full; or its blob removed
      // since): said in the audit log. The journal still has it for a later open to retry.
      if (!r.ok)
        this.audit.write('ERROR', 'save', { hash: c.entry.key.slice(0, 12), error: r.error.message });
    });
    this.unsettled.add(settled);
    this.settling.set(c.entry.key, settled);
    return true;
  }

  /**
   * Runs `then` once the save of `key` is in the index: now if it is, else after its background
   * commit (and close() waits for it). What a save does next, such as eviction, must see it counted.
   */
  async afterCommit(key: string, then: () => Promise<unknown>): Promise<void> {
    const committing = this.settling.get(key);
    if (!committing) {
      await then();
      return;
    }
    // Failures of `then` are its own to report: a save has succeeded whatever happens after it.
    const after: Promise<void> = committing.then(then).then(
      () => {},
      () => {},
    );
    const tracked = after.then(() => {
      this.unsettled.delete(tracked);
    });
    this.unsettled.add(tracked);
  }

  /** Whether `key` is a save of this process still to be committed (its blob may not exist yet). */
  isPending(key: string): boolean {
    return this.pending.get(key) !== undefined;
  }

  /** Waits until every save acknowledged before its commit (commitLater) has been committed. */
  async settle(): Promise<void> {
    while (this.unsettled.size > 0) await Promise.all([...this.unsettled]);
  }

  /** Writes an entry's fingerprint while its command runs (see index/entries.ts). */
  async stageFingerprint(key: string, fingerprint: Fingerprint, now = Date.now()): Promise<void> {
    if (!this.noWrites) await stageFingerprint(this.dbs, key, fingerprint, now);
  }

  /** Removes a staged fingerprint whose entry was not committed (one committed meanwhile keeps it). */
  async dropStagedFingerprint(key: string): Promise<void> {
    if (!this.noWrites) await transact(this.dbs.env, () => dropStaged(this.dbs, key));
  }

  /**
   * Removes an entry from the index and deletes the blobs no other entry references; with
   * `createdAt`, only the entry created then (not one saved again since).
   */
  async remove(key: string, reason = 'removed', createdAt?: number): Promise<boolean> {
    // A save of this key still to be committed would bring it back: it goes first.
    if (this.pending.get(key)) await this.settle();
    const keep = createdAt === undefined ? undefined : (e: Entry) => e.createdAt !== createdAt;
    // Allowed on a nearly full disk too: removing is how space comes back.
    try {
      const removed = await this.removeEntries([{ key }], keep ? { reason, keep } : { reason });
      return removed.length > 0;
    } catch (e) {
      background(Promise.reject(e)); // a failed commit (disk full): the entry simply stays
      return false;
    }
  }

  /**
   * Removes entries in one write transaction, with the blobs nobody references any more, then
   * their hot/ copies. `at` keeps an entry hit since eviction planned; `stopAtUsage` ends early.
   */
  async removeEntries(
    items: Array<{ key: string; at?: number }>,
    o: { stopAtUsage?: number; keep?: (entry: Entry) => boolean; reason?: string } = {},
  ): Promise<Removed[]> {
    const removed = await removeEntries(this.dbs, this.blobs, items, o);
    // Results never have a hot/ copy (Store.commit): nothing to look for.
    const hot = removed.filter((r) => !r.entry.result).map((r) => r.key);
    if (hot.length === 1) this.hot.removeEntry(hot[0]!);
    else if (hot.length > 1) await this.hot.removeEntries(hot);
    return removed;
  }

  // --- Hits, counters, misses (index/counters.ts) ----------------------------------------------

  touch(key: string, now = Date.now()): void {
    if (!this.noWrites) background(this.dbs.access.put(key, now));
  }

  /** A served hit: the entry's last access and hit count, and the cache-wide counters. */
  recordHit(key: string, o: { now: number; savedMs: number; remote?: boolean }): void {
    if (!this.noWrites) recordHit(this.dbs, key, o, this.hitBatchMs);
  }

  hitCount(key: string): number {
    return this.dbs.hits.get(key) ?? 0;
  }

  /** Remembers when a lookup of `key` missed; takeMiss() hands it to the save that follows. */
  markMiss(key: string, now = Date.now()): void {
    if (!this.noWrites) markMiss(this.dbs, key, now);
  }

  /** When `key` last missed, if within `windowMs` of `now`; forgets it. */
  takeMiss(key: string, now: number, windowMs = MISS_WINDOW_MS): number | undefined {
    return takeMiss(this.dbs, key, now, windowMs, !this.noWrites);
  }

  /** Adds to a counter; `task` (the run's task name, '' if none) books a miss in the time series. */
  count(name: keyof Counters, by = 1, task?: string): void {
    if (!this.noWrites) count(this.dbs, name, by, task);
  }

  /** Books bytes sent to the team cache (remote/sync.ts) in the time series. */
  recordUpload(bytes: number): void {
    if (this.noWrites || bytes <= 0) return;
    background(
      this.dbs.env.transaction(() => chart(this.dbs, Date.now(), { kind: 'remote', direction: 'up', bytes })),
    );
  }

  /** The hourly time series (timeseries.ts), for the dashboard and metrics. */
  get series(): TimeSeries {
    return this.dbs.series;
  }

  getCounters(): Counters {
    return readCounters(this.dbs);
  }

  log(event: AuditEvent, source: string, fields: Record<string, string | number | undefined>): void {
    this.audit.write(event, source, fields);
    if (event === 'ERROR' && !this.noWrites)
      background(
        this.dbs.env.transaction(() => chart(this.dbs, Date.now(), { kind: 'error', errorKind: source })),
      );
  }

  /** Input manifests, as the fingerprinter's ManifestStore (files: see hot.ts). */
  manifestStore(): ManifestStore {
    return this.hot.manifests();
  }

  // --- Reference counts and eviction support (index/refs.ts) -----------------------------------

  /** Bytes of the unique blobs referenced by entries: what `maxSizeGb` limits. */
  usage(): number {
    return usage(this.dbs);
  }

  refCount(hash: string): number {
    return this.dbs.refs.get(hash) ?? 0;
  }

  /** Every entry's key, newest first, read lazily (`ls | head` reads one page). */
  newestKeys(): Iterable<string> {
    return newestKeys(this.dbs);
  }

  /** Every entry's key, task, creation time, TTL and size, without decoding whole entries. */
  summariesOf(): Iterable<EntrySummary> {
    return summariesOf(this.dbs);
  }

  /** Every (key, last access) pair, in key order. */
  *accessTimes(): Iterable<{ key: string; at: number }> {
    for (const { key, value } of this.dbs.access.getRange()) yield { key, at: value };
  }

  /** Deletes unreferenced blob files older than `olderThan`, re-checked in a write transaction. */
  async removeOrphanBlobs(hashes: string[], olderThan: number): Promise<{ blobs: number; bytes: number }> {
    return removeOrphanBlobs(this.dbs, this.blobs, hashes, olderThan);
  }

  /**
   * Recomputes every reference count and the usage total from the entries (the "mark" of gc), in
   * one write transaction so no commit interleaves; returns how many counts were wrong and which
   * referenced blobs are missing. Normally both are zero.
   */
  async recountRefs(): Promise<Recount> {
    return transact(this.dbs.env, () => recount(this.dbs, this.blobs));
  }

  /** Waits for pending writes (access times, counters) to be committed. */
  async flush(): Promise<void> {
    // After a failed commit lmdb-js never settles `flushed`: don't wait for it (bounded either way).
    await this.settle();
    drainHits(this.dbs);
    if (hasWriteFailed()) return;
    await bounded(this.dbs.env.flushed, 10_000);
  }

  async close(): Promise<void> {
    await bounded(this.settle(), 10_000);
    drainHits(this.dbs);
    this.pending.close();
    this.audit.close();
    await bounded(this.dbs.env.close(), hasWriteFailed() ? 1_000 : 10_000);
  }
}

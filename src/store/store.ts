import { readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Database, RootDatabase } from 'lmdb';
import type { Fingerprint, ManifestStore } from '../fingerprint/fingerprint.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { warn as warnLine } from '../util/term.js';
import { noteUnfinishedWrites } from '../util/unfinished.js';
import { type AuditEvent, AuditLog } from './audit.js';
import { BlobStore } from './blobs.js';
import { type BlobRef, type Entry, entryBlobs, STORE_SCHEMA } from './entry.js';
import { HotIndex, type JournalHit, parseJournal } from './hot.js';
import { indexDamage } from './index-check.js';
import { openIndexEnv } from './index-env.js';
import { corruptIndex, corruptionText, isIndexCorruption } from './index-errors.js';
import { type CacheLayout, cacheLayout, makeCacheDirs } from './layout.js';
import { tryLock } from './lock.js';
import { lowSpace } from './space.js';

const require = createRequire(import.meta.url);
/** How the index is opened, here and by the probe in a child process (lmdbReads). */
const ENV_OPTIONS = { maxDbs: 16, compression: false, noMemInit: true };

export { LOW_SPACE_BYTES } from './space.js';

/**
 * Fingerprints (what `explain` compares against, and `ls`'s name for anonymous entries), kept as
 * JSON text in `fingerprintText`: msgpack-packing 2,000 input tuples costs a fresh process ~5 ms
 * (its packer not yet optimised) while the command starts, JSON.stringify ~0.5 ms. Versions before
 * kept msgpack objects in `fingerprints`, which is still read and cleaned up but no longer written:
 * an older TaskVault sharing the cache dir reads only that one, and so finds no fingerprint for a
 * newer entry rather than a string it would fail on.
 */
class Fingerprints {
  constructor(
    private readonly text: Database<string, string>,
    private readonly legacy: Database<Fingerprint, string>,
  ) {}

  get(key: string): Fingerprint | undefined {
    const text = this.text.get(key);
    return text === undefined ? this.legacy.get(key) : (JSON.parse(text) as Fingerprint);
  }

  has(key: string): boolean {
    return this.text.doesExist(key) || this.legacy.doesExist(key);
  }

  put(key: string, fingerprint: Fingerprint): Promise<boolean> {
    return this.text.put(key, JSON.stringify(fingerprint));
  }

  remove(key: string): void {
    background(this.text.remove(key));
    background(this.legacy.remove(key));
  }

  *keys(): Iterable<string> {
    yield* this.text.getKeys();
    yield* this.legacy.getKeys();
  }
}

/** Counter holding the bytes of unique referenced blobs, kept in step by commit and removal. */
const USAGE_KEY = 'blobBytes';
/** Set in the meta db once the refs db has been built for this index. */
const REFS_FLAG = 'refs';
/** Set in the meta db once every entry has its copy in hot/ (indexes from before hot/ existed). */
const HOT_FLAG = 'hot';
/** A staged fingerprint older than this whose run never committed is dropped by the next commit. */
const STAGED_STALE_MS = 60 * 60_000;
/** Bytes of hits.journal already added to the index (meta db). */
const JOURNAL_OFFSET = 'journalOffset';
/** The journal starts over once this much of it has been folded. */
const JOURNAL_ROTATE_BYTES = 1024 * 1024;

type SummaryRecord = [createdAt: number, ttlMs: number, bytes: number, task: string];

export interface EntrySummary {
  key: string;
  createdAt: number;
  ttlMs: number;
  bytes: number;
  task: string;
}

const summaryOf = (e: Entry): SummaryRecord => [e.createdAt, e.ttlMs, e.bytes, e.task];

/** What removing one entry freed: its blobs that no other entry referenced. */
export interface Removed {
  key: string;
  entry: Entry;
  blobs: number;
  bytes: number;
}

/** An entry's blobs, each once (two identical outputs share one blob and one reference). */
function uniqueRefs(entry: Entry): BlobRef[] {
  const seen = new Map<string, BlobRef>();
  for (const ref of entryBlobs(entry)) seen.set(ref.hash, ref);
  return [...seen.values()];
}

export interface OpenOptions {
  /** Move a corrupt index aside and rebuild it from hot/ (default); false: fail, saying so. */
  repair?: boolean;
  /** Where the one line about a rebuilt index goes (default: a warning on stderr). */
  warn?: (message: string) => void;
}

/**
 * Whether lmdb, in a child process (a crash there costs nothing here), opens the environment in
 * `dir` and reads the first record of every database. Asked before a JS verdict of damage is acted
 * on: the check above reads the newest meta page, while lmdb-js may legitimately roll back to an
 * older, synced one (its previous-snapshot mode after a reboot), which the check cannot judge.
 */
function lmdbReads(dir: string): boolean {
  const probe = `
    const { open } = require(process.argv[1]);
    const env = open({ path: process.argv[2], ...JSON.parse(process.argv[3]) });
    for (const key of env.getKeys({ limit: 64 })) {
      if (typeof key !== 'string') continue;
      for (const _ of env.openDB({ name: key }).getRange({ limit: 1 })) break;
    }
    env.close();
    process.exit(0);`;
  // ELECTRON_RUN_AS_NODE: inside an Electron app (the SDK) execPath is Electron, not Node.
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  // The installed lmdb, which the bundled copy's native addon comes from.
  const r = spawnSync(
    process.execPath,
    ['-e', probe, require.resolve('lmdb'), dir, JSON.stringify(ENV_OPTIONS)],
    {
      stdio: 'ignore',
      timeout: 15_000,
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    },
  );
  return r.status === 0;
}

/** locks/<this>: held while one process moves a corrupt index aside and rebuilds it. */
const REBUILD_LOCK = 'index.rebuild';

/** data.mdb's identity (device and inode), to tell a rebuilt index from the one judged corrupt. */
function indexFileId(layout: CacheLayout): string | undefined {
  try {
    const s = statSync(join(layout.index, 'data.mdb'), { throwIfNoEntry: false });
    return s && `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

export interface Counters {
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
}

/**
 * The local cache: an LMDB index (entries, fingerprints, last access, counters) plus
 * content-addressed blobs. LMDB gives multi-process readers and serialised writers with crash-safe
 * commits; entries are committed only after every blob they name exists.
 */
export class Store {
  readonly blobs: BlobStore;
  /** What hits read without the index: entry copies, input manifests, the hits journal. */
  readonly hot: HotIndex;
  readonly audit: AuditLog;
  /** Why this store does not write (disk nearly full), or undefined. Checked once, at open. */
  readonly noWrites: string | undefined;
  private constructor(
    readonly layout: CacheLayout,
    private readonly db: RootDatabase,
    private readonly entries: Database<Entry, string>,
    private readonly fingerprints: Fingerprints,
    private readonly access: Database<number, string>,
    private readonly latest: Database<string, string>,
    private readonly counters: Database<number, string>,
    /** Per-entry hit counts (for `ls`). */
    private readonly hits: Database<number, string>,
    /** When a `cache get` / SDK lookup last missed a key, so a later save can tell how long the work took. */
    private readonly pending: Database<number, string>,
    /** Blob hash → number of entries referencing it (see addRefs/dropRefs). */
    private readonly refs: Database<number, string>,
    /** Entry key → what eviction needs to know about it, small enough to scan 100k of quickly. */
    private readonly summaries: Database<SummaryRecord, string>,
    private readonly meta: Database<number, string>,
    /** Key → when its fingerprint was staged by a run not yet committed (stageFingerprint). */
    private readonly staged: Database<number, string>,
  ) {
    this.blobs = new BlobStore(layout.blobs, layout.tmp);
    this.hot = new HotIndex(layout);
    this.audit = new AuditLog(layout.audit);
    this.noWrites = lowSpace(layout.root);
  }

  static open(cacheDir: string, o: OpenOptions = {}): Result<Store> {
    guardLmdbWriteFailures();
    const layout = cacheLayout(cacheDir);
    try {
      makeCacheDirs(layout);
    } catch (e) {
      return err(failure('cache', `cannot open the cache at ${cacheDir}: ${errorMessage(e)}`));
    }
    const seen = indexFileId(layout);
    let damage = indexDamage(layout.index);
    // Acted on only if lmdb cannot read it either (a sound index is never moved aside on the JS
    // check alone); asking costs a child process, and only when the check found something.
    if (damage !== undefined && lmdbReads(layout.index)) damage = undefined;
    if (damage === undefined) {
      const opened = Store.openIndex(layout);
      if (!('corrupt' in opened)) return opened;
      damage = opened.corrupt;
    }
    if (o.repair === false) return err(corruptIndex(layout.index, damage));
    return Store.rebuild(layout, damage, seen, o.warn ?? warnLine);
  }

  /** Opens the LMDB environment; `corrupt` when lmdb reports its data damaged. */
  private static openIndex(layout: CacheLayout): Result<Store> | { corrupt: string } {
    const cacheDir = layout.root;
    let db: RootDatabase | undefined;
    try {
      // Never `open()` of lmdb itself: a failed open can crash it (index-env.ts).
      db = openIndexEnv(layout.index, ENV_OPTIONS);
      const meta = db.openDB<number, string>({ name: 'meta' });
      const schema = meta.get('schema');
      if (schema === undefined) meta.putSync('schema', STORE_SCHEMA);
      else if (schema > STORE_SCHEMA) {
        db.close();
        return err(
          failure(
            'cache',
            `the cache at ${cacheDir} was written by a newer TaskVault (index schema ${schema}, this one reads ${STORE_SCHEMA})`,
            'upgrade taskvault or use another --cache-dir',
          ),
        );
      }
      const store = new Store(
        layout,
        db,
        db.openDB({ name: 'entries' }),
        new Fingerprints(db.openDB({ name: 'fingerprintText' }), db.openDB({ name: 'fingerprints' })),
        db.openDB({ name: 'access' }),
        db.openDB({ name: 'latest' }),
        db.openDB({ name: 'counters' }),
        db.openDB({ name: 'hits' }),
        db.openDB({ name: 'pending' }),
        db.openDB({ name: 'refs' }),
        db.openDB({ name: 'summary' }),
        meta,
        db.openDB({ name: 'staged' }),
      );
      // An index written before blob reference counts existed gets them once, from its entries:
      // removal must never take a shared blob's missing count for "last reference".
      if (meta.get(REFS_FLAG) === undefined) {
        db.transactionSync(() => {
          if (meta.get(REFS_FLAG) !== undefined) return;
          store.recount();
          meta.put(REFS_FLAG, 1);
        });
      }
      // A run without a hot copy of its key runs the command before reading the index (run-task.ts):
      // entries committed before hot/ existed get their copies once, or they would all run again.
      if (meta.get(HOT_FLAG) === undefined && store.noWrites === undefined) {
        for (const e of store.allEntries()) if (!e.result) store.hot.putEntry(e);
        meta.putSync(HOT_FLAG, 1);
      }
      store.foldHits();
      return ok(store);
    } catch (e) {
      if (isIndexCorruption(e)) {
        try {
          db?.close();
        } catch {
          // it is being moved aside anyway
        }
        return { corrupt: corruptionText(e) };
      }
      return err(failure('cache', `cannot open the cache at ${cacheDir}: ${errorMessage(e)}`));
    }
  }

  /**
   * Rebuilds the index of an open store that lmdb reported damaged after it opened (verify
   * --repair); the store is closed first.
   */
  static async rebuildIndex(store: Store, damage: string): Promise<Result<Store>> {
    const seen = indexFileId(store.layout);
    await store.close().catch(() => {});
    return Store.rebuild(store.layout, damage, seen, warnLine);
  }

  /**
   * A corrupt index is moved aside (kept for a bug report, never deleted) and a fresh one built
   * from hot/, which holds a copy of every committed entry. One process does it, under a lock;
   * `seen` (data.mdb's inode when we judged it) tells whether another one already has.
   */
  private static rebuild(
    layout: CacheLayout,
    damage: string,
    seen: string | undefined,
    warn: (message: string) => void,
  ): Result<Store> {
    const corrupt = (why: string) =>
      err(failure('cache', `the cache index at ${layout.index} is corrupt (${damage}): ${why}`));
    // Taken without waiting: a rebuild takes milliseconds, and whoever finds it held runs uncached once.
    const release = tryLock(layout.locks, REBUILD_LOCK);
    if (!release) return corrupt('another process is rebuilding it');
    try {
      if (indexFileId(layout) !== seen) {
        // Rebuilt by another process since we looked: use theirs (once; no loop).
        if (indexDamage(layout.index) !== undefined) return corrupt('it was rebuilt and is corrupt again');
        const opened = Store.openIndex(layout);
        return 'corrupt' in opened ? corrupt(opened.corrupt) : opened;
      }
      const aside = `${layout.index}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
      try {
        renameSync(layout.index, aside);
        makeCacheDirs(layout);
      } catch (e) {
        return corrupt(`cannot move it aside: ${errorMessage(e)}`);
      }
      const opened = Store.openIndex(layout);
      if ('corrupt' in opened) return corrupt(opened.corrupt);
      if (!opened.ok) return opened;
      let rebuilt: string;
      try {
        const n = opened.value.restoreFromHot();
        rebuilt = `rebuilt ${n} entr${n === 1 ? 'y' : 'ies'} from hot/`;
      } catch (e) {
        // E.g. a full disk: the fresh index is empty but sound; hot/ still serves hits.
        rebuilt = `rebuilding it from hot/ failed: ${errorMessage(e)}`;
      }
      opened.value.log('ERROR', 'index', { error: `corrupt index moved to ${aside}: ${damage}`, rebuilt });
      warn(`the cache index was corrupt (${damage}): moved to ${aside}; ${rebuilt}`);
      return opened;
    } finally {
      release();
    }
  }

  /**
   * Re-adds every entry of hot/ whose blobs all exist, as commit() would (reference counts, usage,
   * summaries), in one write transaction. Their fingerprints (for `explain`) are not in hot/.
   */
  private restoreFromHot(): number {
    let names: string[];
    try {
      names = readdirSync(this.layout.hot);
    } catch {
      return 0;
    }
    const usable: Entry[] = [];
    for (const name of names) {
      const e = this.hot.getEntry(name);
      if (e && e !== 'damaged' && entryBlobs(e).every((ref) => this.blobs.has(ref.hash))) usable.push(e);
    }
    return this.db.transactionSync(() => {
      let n = 0;
      for (const e of usable) {
        if (this.entries.doesExist(e.key)) continue;
        this.addRefs(e);
        this.putEntry(e);
        n++;
      }
      return n;
    });
  }

  get dir(): string {
    return this.layout.root;
  }

  /** Drops the cached read snapshot so that commits by other processes become visible. */
  refresh(): void {
    this.db.resetReadTxn();
  }

  getEntry(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  getFingerprint(key: string): Fingerprint | undefined {
    return this.fingerprints.get(key);
  }

  /** The key most recently stored for a task label (task name, or argv for anonymous runs). */
  latestKey(label: string): string | undefined {
    return this.latest.get(label);
  }

  lastAccess(key: string): number | undefined {
    return this.access.get(key);
  }

  *allEntries(): Iterable<Entry> {
    for (const { value } of this.entries.getRange()) yield value;
  }

  /**
   * Commits an entry after checking that every blob it references is in place (invariant 2). The
   * check runs inside the write transaction: eviction deletes a blob only inside its own write
   * transaction, after its reference count reached zero, so a blob seen here cannot disappear
   * before this entry's references are counted.
   */
  async commit(entry: Entry, fingerprint: Fingerprint, label: string): Promise<Result<void>> {
    if (this.noWrites) return err(failure('cache', this.noWrites));
    let missing: string | undefined;
    try {
      missing = await this.db.transaction(() => {
        for (const ref of entryBlobs(entry)) if (!this.blobs.has(ref.hash)) return ref.hash;
        const previous = this.entries.get(entry.key);
        // Reference the new blobs before releasing the old entry's, so shared ones never hit zero.
        this.addRefs(entry);
        if (previous) this.dropRefs(previous);
        this.putEntry(entry);
        // Usually staged while the command ran (stageFingerprint); the key is its hash, so one
        // found under it is this one.
        if (!this.fingerprints.has(entry.key)) background(this.fingerprints.put(entry.key, fingerprint));
        background(this.staged.remove(entry.key));
        this.dropStaleStaged(entry.createdAt);
        background(this.latest.put(label, entry.key));
        return undefined;
      });
    } catch (e) {
      writeFailed = true;
      return err(failure('cache', `index commit failed: ${await writeErrorMessage(e)}`));
    }
    if (missing) return err(failure('cache', `blob ${missing.slice(0, 12)} vanished before commit`));
    // Results of `cache save` / the SDK are looked up through the index only.
    if (!entry.result) this.hot.putEntry(entry);
    return ok(undefined);
  }

  /**
   * Writes an entry's fingerprint ahead of the entry: a miss does it while its command runs, since
   * for thousands of inputs it is most of the bytes a commit writes (2,000 inputs: ~170 KB, and ~7
   * ms taken off the time after the command). Stored under the key it hashes to, so a staged
   * fingerprint is never wrong, only unused if the entry is not committed: `dropStagedFingerprint`
   * removes it then, and one left by a killed run goes with a later commit (dropStaleStaged) or gc.
   */
  async stageFingerprint(key: string, fingerprint: Fingerprint, now = Date.now()): Promise<void> {
    if (this.noWrites) return;
    await this.db.transaction(() => {
      background(this.fingerprints.put(key, fingerprint));
      background(this.staged.put(key, now));
    });
  }

  /** Removes a staged fingerprint whose entry was not committed (one committed meanwhile keeps it). */
  async dropStagedFingerprint(key: string): Promise<void> {
    if (this.noWrites) return;
    await this.db.transaction(() => this.dropStaged(key));
  }

  /**
   * Inside a write transaction: staged fingerprints of runs that never committed and are older than
   * any run still likely to be going. Harmless if one is still going: its commit writes the
   * fingerprint again when it finds none. The staged db holds only uncommitted runs: a short scan.
   */
  private dropStaleStaged(now: number): void {
    for (const { key, value } of this.staged.getRange())
      if (now - value > STAGED_STALE_MS) this.dropStaged(key);
  }

  private dropStaged(key: string): void {
    if (!this.entries.doesExist(key)) this.fingerprints.remove(key);
    background(this.staged.remove(key));
  }

  /** Inside a write transaction: the entry and what eviction reads about it. */
  private putEntry(entry: Entry): void {
    // Each put inside the transaction returns its own promise, rejected too if the commit fails.
    background(this.entries.put(entry.key, entry));
    background(this.access.put(entry.key, entry.createdAt));
    background(this.summaries.put(entry.key, summaryOf(entry)));
  }

  /** Removes an entry from the index and deletes the blobs no other entry references. */
  async remove(key: string): Promise<boolean> {
    // Allowed on a nearly full disk too: removing is how space comes back.
    try {
      const removed = await this.removeEntries([{ key }]);
      return removed.length > 0;
    } catch (e) {
      background(Promise.reject(e)); // a failed commit (disk full): the entry simply stays
      return false;
    }
  }

  touch(key: string, now = Date.now()): void {
    if (!this.noWrites) background(this.access.put(key, now));
  }

  /**
   * A served hit, booked in one write transaction (the hit path pays one commit): the entry's last
   * access and hit count, and the cache-wide counters.
   */
  recordHit(key: string, o: { now: number; savedMs: number; remote?: boolean }): void {
    if (this.noWrites) return;
    const bump = (name: keyof Counters, by: number) =>
      background(this.counters.put(name, (this.counters.get(name) ?? 0) + by));
    background(
      this.db.transaction(() => {
        background(this.access.put(key, o.now));
        background(this.hits.put(key, (this.hits.get(key) ?? 0) + 1));
        bump('hits', 1);
        if (o.remote) bump('remoteHits', 1);
        bump('savedMs', Math.max(0, Math.round(o.savedMs)));
      }),
    );
  }

  hitCount(key: string): number {
    return this.hits.get(key) ?? 0;
  }

  /** Remembers when a lookup of `key` missed; takeMiss() hands it to the save that follows. */
  markMiss(key: string, now = Date.now()): void {
    if (!this.noWrites) background(this.pending.put(key, now));
  }

  /**
   * When `key` last missed, if within `windowMs` of `now`; forgets it, and every miss older than the
   * window, so misses never followed by a save do not pile up.
   */
  takeMiss(key: string, now: number, windowMs: number): number | undefined {
    const at = this.pending.get(key);
    if (!this.noWrites)
      background(
        this.db.transaction(() => {
          background(this.pending.remove(key));
          for (const { key: k, value } of this.pending.getRange())
            if (now - value >= windowMs) background(this.pending.remove(k));
        }),
      );
    return at !== undefined && now - at >= 0 && now - at < windowMs ? at : undefined;
  }

  count(name: keyof Counters, by = 1): void {
    if (this.noWrites) return;
    background(
      this.db.transaction(() => {
        background(this.counters.put(name, (this.counters.get(name) ?? 0) + by));
      }),
    );
  }

  getCounters(): Counters {
    return {
      hits: this.counters.get('hits') ?? 0,
      remoteHits: this.counters.get('remoteHits') ?? 0,
      misses: this.counters.get('misses') ?? 0,
      savedMs: this.counters.get('savedMs') ?? 0,
    };
  }

  log(event: AuditEvent, source: string, fields: Record<string, string | number | undefined>): void {
    this.audit.write(event, source, fields);
  }

  /** Input manifests, as the fingerprinter's ManifestStore (files: see hot.ts). */
  manifestStore(): ManifestStore {
    return this.hot.manifests();
  }

  /**
   * Adds the hits served from hot/ since the last fold (hits.journal, see hot.ts) to the index:
   * counters, and each entry's hit count and last access, which eviction orders by. Runs when the
   * store opens, so stats, ls and eviction see them; inside one write transaction, so that two
   * processes opening at once fold each line once.
   */
  private foldHits(): void {
    try {
      this.foldHitsOrThrow();
    } catch {
      // Counts only: a journal that cannot be read or renamed must not cost the cache.
    }
  }

  private foldHitsOrThrow(): void {
    const path = this.layout.hitsJournal;
    const size = statSync(path, { throwIfNoEntry: false })?.size;
    if (size === undefined || size === (this.meta.get(JOURNAL_OFFSET) ?? 0) || this.noWrites) return;
    this.db.transactionSync(() => {
      let buf: Buffer;
      try {
        buf = readFileSync(path);
      } catch {
        return;
      }
      let from = this.meta.get(JOURNAL_OFFSET) ?? 0;
      if (from > buf.length) from = 0; // the journal was replaced: start over
      const end = buf.lastIndexOf(0x0a) + 1; // complete lines only
      if (end <= from) return;
      const hits = parseJournal(buf.toString('utf8', from, end));
      if (end < JOURNAL_ROTATE_BYTES) {
        this.applyHits(hits);
        this.meta.put(JOURNAL_OFFSET, end);
        return;
      }
      // Start a new journal; lines appended to the old one after it was read are folded too.
      const folding = `${path}.${process.pid}.folding`;
      renameSync(path, folding);
      const rest = readFileSync(folding);
      hits.push(...parseJournal(rest.toString('utf8', end, rest.lastIndexOf(0x0a) + 1)));
      rmSync(folding, { force: true });
      this.applyHits(hits);
      this.meta.put(JOURNAL_OFFSET, 0);
    });
  }

  private applyHits(hits: JournalHit[]): void {
    if (hits.length === 0) return;
    let saved = 0;
    for (const h of hits) {
      saved += h.savedMs;
      if (!this.entries.doesExist(h.key)) continue;
      this.access.put(h.key, Math.max(this.access.get(h.key) ?? 0, h.at));
      this.hits.put(h.key, (this.hits.get(h.key) ?? 0) + 1);
    }
    this.counters.put('hits', (this.counters.get('hits') ?? 0) + hits.length);
    this.counters.put('savedMs', (this.counters.get('savedMs') ?? 0) + saved);
  }

  // --- Reference counts and eviction support -------------------------------------------------

  /** Bytes of the unique blobs referenced by entries: what `maxSizeGb` limits. */
  usage(): number {
    return this.counters.get(USAGE_KEY) ?? 0;
  }

  refCount(hash: string): number {
    return this.refs.get(hash) ?? 0;
  }

  /** Every entry's key, task, creation time, TTL and size, without decoding whole entries. */
  *summariesOf(): Iterable<EntrySummary> {
    for (const { key, value } of this.summaries.getRange()) {
      const [createdAt, ttlMs, bytes, task] = value;
      yield { key, createdAt, ttlMs, bytes, task };
    }
  }

  /** Every (key, last access) pair, in key order. */
  *accessTimes(): Iterable<{ key: string; at: number }> {
    for (const { key, value } of this.access.getRange()) yield { key, at: value };
  }

  /**
   * Removes entries in one write transaction and deletes, inside it, the blobs whose reference
   * count reaches zero. `at` guards against a hit that happened after eviction planned: an entry
   * whose last access changed is kept. `stopAtUsage` ends the batch once usage is down to it.
   */
  async removeEntries(
    items: Array<{ key: string; at?: number }>,
    o: { stopAtUsage?: number; keep?: (entry: Entry) => boolean } = {},
  ): Promise<Removed[]> {
    const removed = await this.db.transaction(() => {
      const removed: Removed[] = [];
      for (const { key, at } of items) {
        if (o.stopAtUsage !== undefined && this.usage() <= o.stopAtUsage) break;
        const entry = this.entries.get(key);
        if (!entry) continue;
        if (at !== undefined && this.access.get(key) !== at) continue;
        if (o.keep?.(entry)) continue;
        this.entries.remove(key);
        this.fingerprints.remove(key);
        this.access.remove(key);
        this.hits.remove(key);
        this.summaries.remove(key);
        const freed = this.dropRefs(entry);
        removed.push({ key, entry, ...freed });
      }
      return removed;
    });
    for (const r of removed) this.hot.removeEntry(r.key);
    return removed;
  }

  /**
   * Deletes blob files no entry references, re-checked inside a write transaction so no commit can
   * start referencing one in between. `olderThan` (epoch ms) spares blobs written or reused
   * recently: a run adopts its blobs before it commits the entry that references them.
   */
  async removeOrphanBlobs(hashes: string[], olderThan: number): Promise<{ blobs: number; bytes: number }> {
    return this.db.transaction(() => {
      let blobs = 0;
      let bytes = 0;
      for (const hash of hashes) {
        if (this.refs.get(hash) !== undefined) continue;
        const path = this.blobs.path(hash);
        try {
          const s = statSync(path);
          if (s.mtimeMs >= olderThan) continue;
          unlinkSync(path);
          blobs++;
          bytes += s.size;
        } catch {
          // already gone
        }
      }
      return { blobs, bytes };
    });
  }

  /**
   * Recomputes every reference count and the usage total from the entries (the "mark" of gc), in
   * one write transaction so no commit interleaves; returns how many counts were wrong and which
   * referenced blobs are missing. Normally both are zero.
   */
  async recountRefs(): Promise<{ repaired: number; missing: string[]; usage: number }> {
    return this.db.transaction(() => this.recount());
  }

  /** The body of recountRefs; must run inside a write transaction. */
  private recount(): { repaired: number; missing: string[]; usage: number } {
    const counts = new Map<string, { n: number; size: number }>();
    let summaries = 0;
    for (const { key } of this.summaries.getRange()) {
      if (this.entries.get(key) === undefined) this.summaries.remove(key);
    }
    // Fingerprints staged by runs killed before their commit (stageFingerprint): gc takes them all.
    for (const key of this.fingerprints.keys()) {
      if (!this.entries.doesExist(key)) this.fingerprints.remove(key);
    }
    for (const key of this.staged.getKeys()) this.staged.remove(key);
    for (const { key, value } of this.entries.getRange()) {
      const summary = summaryOf(value);
      const had = this.summaries.get(key);
      if (!had || had.some((v, i) => v !== summary[i])) {
        this.summaries.put(key, summary);
        summaries++;
      }
      for (const ref of uniqueRefs(value)) {
        const c = counts.get(ref.hash);
        if (c) c.n++;
        else counts.set(ref.hash, { n: 1, size: ref.size });
      }
    }
    let repaired = summaries;
    for (const { key } of this.refs.getRange()) {
      if (!counts.has(key)) {
        this.refs.remove(key);
        repaired++;
      }
    }
    let usage = 0;
    const missing: string[] = [];
    for (const [hash, { n, size }] of counts) {
      if (this.refs.get(hash) !== n) {
        this.refs.put(hash, n);
        repaired++;
      }
      usage += size;
      if (!this.blobs.has(hash)) missing.push(hash);
    }
    if (this.usage() !== usage) {
      this.counters.put(USAGE_KEY, usage);
      repaired++;
    }
    return { repaired, missing, usage };
  }

  /** Inside a write transaction: counts one more reference to each blob of `entry`. */
  private addRefs(entry: Entry): void {
    let added = 0;
    for (const ref of uniqueRefs(entry)) {
      const n = this.refs.get(ref.hash) ?? 0;
      if (n === 0) added += ref.size;
      this.refs.put(ref.hash, n + 1);
    }
    if (added) this.counters.put(USAGE_KEY, this.usage() + added);
  }

  /** Inside a write transaction: drops `entry`'s references and deletes blobs nobody references. */
  private dropRefs(entry: Entry): { blobs: number; bytes: number } {
    let blobs = 0;
    let bytes = 0;
    for (const ref of uniqueRefs(entry)) {
      const n = this.refs.get(ref.hash) ?? 0;
      if (n > 1) {
        this.refs.put(ref.hash, n - 1);
        continue;
      }
      this.refs.remove(ref.hash);
      bytes += ref.size;
      try {
        unlinkSync(this.blobs.path(ref.hash));
        blobs++;
      } catch {
        // already gone (a corrupt blob removed on the hit path)
      }
    }
    if (bytes) this.counters.put(USAGE_KEY, Math.max(0, this.usage() - bytes));
    return { blobs, bytes };
  }

  /** Waits for pending writes (access times, counters) to be committed. */
  async flush(): Promise<void> {
    // After a failed commit lmdb-js never settles `flushed`: don't wait for it (bounded either way).
    if (writeFailed) return;
    await bounded(this.db.flushed, 10_000);
  }

  async close(): Promise<void> {
    await bounded(this.db.close(), writeFailed ? 1_000 : 10_000);
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
}

/** Set once an index write failed in this process (disk full): lmdb-js then leaves promises pending. */
let writeFailed = false;

/**
 * Waits for `p`, but no longer than `ms`: shutting down must never hang the run. Giving up is
 * noted, so that the process is not then ended before those writes (noteUnfinishedWrites).
 */
async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = Symbol('gave up');
  const first = await Promise.race([
    p,
    new Promise((r) => (timer = setTimeout(() => r(gaveUp), ms))),
  ]).finally(() => clearTimeout(timer));
  if (first === gaveUp) noteUnfinishedWrites();
}

/**
 * Best-effort index writes (access times, counters) must never crash the run: a failed
 * LMDB commit rejects both the write and a separate commitError promise, and either one unhandled
 * would kill the process after the command already ran.
 */
function background(p: Promise<unknown> | unknown): void {
  if (p instanceof Promise || (p && typeof (p as Promise<unknown>).then === 'function'))
    (p as Promise<unknown>).catch((e: { commitError?: Promise<unknown> }) => {
      writeFailed = true;
      e?.commitError?.catch(() => {});
    });
}

/** lmdb-js reports a failed commit as "Commit failed" with the real cause in a commitError promise. */
async function writeErrorMessage(e: unknown): Promise<string> {
  const inner = (e as { commitError?: Promise<unknown> })?.commitError;
  if (inner && typeof inner.then === 'function') {
    const cause = await inner.then(
      () => undefined,
      (x: unknown) => x,
    );
    if (cause instanceof Error) return cause.message.replace(/: Attempting to write page.*/, '');
  }
  return errorMessage(e);
}

let guarded = false;

/**
 * When a commit fails (disk full), lmdb-js rejects an internal promise nobody can reach, which
 * would crash the process after the user's command already ran (invariant 3), and it prints the
 * error with a stack. Both are swallowed here: the failure reaches us through the awaited commit
 * (one warning) or concerned a best-effort write. Any other unhandled rejection still crashes.
 */
function guardLmdbWriteFailures(): void {
  if (guarded) return;
  guarded = true;
  // A corrupt index (see index-check.ts) fails lmdb's own transactions the same way.
  const isLmdbWriteFailure = (x: unknown) =>
    x instanceof Error &&
    (/^Commit failed \(see commitError/.test(x.message) ||
      /Attempting to write page|MDB_BAD_TXN/.test(x.message) ||
      isIndexCorruption(x));
  process.on('unhandledRejection', (reason) => {
    if (isLmdbWriteFailure(reason)) {
      writeFailed = true;
      (reason as { commitError?: Promise<unknown> }).commitError?.catch(() => {});
      return;
    }
    // Anything else: if the embedding program has its own handler, it decides; else crash as usual.
    if (process.listenerCount('unhandledRejection') === 1) throw reason;
  });
  const consoleError = console.error.bind(console);
  console.error = (...args: unknown[]) => {
    if (args.length === 1 && isLmdbWriteFailure(args[0])) return;
    consoleError(...args);
  };
}

import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Database, RootDatabase } from 'lmdb';
import type { Fingerprint, HashCache } from '../fingerprint/fingerprint.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { type AuditEvent, AuditLog } from './audit.js';
import { BlobStore } from './blobs.js';
import { type Entry, entryBlobs, STORE_SCHEMA } from './entry.js';
import { type CacheLayout, cacheLayout } from './layout.js';
import { statCache } from './stat-cache.js';

export { RACY_WINDOW_NS } from './stat-cache.js';

// lmdb's CommonJS build is one file; its ESM entry is a graph of a dozen modules that takes ~13 ms
// more to load, on every run. Import lmdb only this way (one instance per process).
const { open } = createRequire(import.meta.url)('lmdb') as typeof import('lmdb');

export interface Counters {
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
}

/**
 * The local cache: an LMDB index (entries, fingerprints, last access, counters, stat cache) plus
 * content-addressed blobs. LMDB gives multi-process readers and serialised writers with crash-safe
 * commits; entries are committed only after every blob they name exists.
 */
export class Store {
  readonly blobs: BlobStore;
  readonly audit: AuditLog;
  private constructor(
    readonly layout: CacheLayout,
    private readonly db: RootDatabase,
    private readonly entries: Database<Entry, string>,
    private readonly fingerprints: Database<Fingerprint, string>,
    private readonly access: Database<number, string>,
    private readonly latest: Database<string, string>,
    private readonly counters: Database<number, string>,
    private readonly stats: Database<Buffer, string>,
    /** Per-entry hit counts (for `ls`). */
    private readonly hits: Database<number, string>,
    /** When a `cache get` / SDK lookup last missed a key, so a later save can tell how long the work took. */
    private readonly pending: Database<number, string>,
  ) {
    this.blobs = new BlobStore(layout.blobs, layout.tmp);
    this.audit = new AuditLog(layout.audit);
  }

  static open(cacheDir: string): Result<Store> {
    const layout = cacheLayout(cacheDir);
    try {
      for (const d of [layout.index, layout.blobs, layout.tmp]) mkdirSync(d, { recursive: true });
      const db = open({ path: layout.index, maxDbs: 16, compression: false, noMemInit: true });
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
      return ok(
        new Store(
          layout,
          db,
          db.openDB({ name: 'entries' }),
          db.openDB({ name: 'fingerprints' }),
          db.openDB({ name: 'access' }),
          db.openDB({ name: 'latest' }),
          db.openDB({ name: 'counters' }),
          db.openDB({ name: 'stat', encoding: 'binary' }),
          db.openDB({ name: 'hits' }),
          db.openDB({ name: 'pending' }),
        ),
      );
    } catch (e) {
      return err(failure('cache', `cannot open the cache at ${cacheDir}: ${errorMessage(e)}`));
    }
  }

  get dir(): string {
    return this.layout.root;
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

  /** Commits an entry after checking that every blob it references is in place (invariant 2). */
  async commit(entry: Entry, fingerprint: Fingerprint, label: string): Promise<Result<void>> {
    for (const ref of entryBlobs(entry)) {
      if (!this.blobs.has(ref.hash))
        return err(failure('cache', `blob ${ref.hash.slice(0, 12)} vanished before commit`));
    }
    await this.db.transaction(() => {
      this.entries.put(entry.key, entry);
      this.fingerprints.put(entry.key, fingerprint);
      this.access.put(entry.key, entry.createdAt);
      this.latest.put(label, entry.key);
    });
    return ok(undefined);
  }

  /** Removes an entry from the index; blobs are reclaimed by gc once no entry references them. */
  async remove(key: string): Promise<boolean> {
    return this.db.transaction(() => {
      const had = this.entries.get(key) !== undefined;
      this.entries.remove(key);
      this.fingerprints.remove(key);
      this.access.remove(key);
      this.hits.remove(key);
      return had;
    });
  }

  touch(key: string, now = Date.now()): void {
    void this.access.put(key, now);
  }

  /** A hit: the entry's last access moves to now and its hit count goes up. */
  recordHit(key: string, now = Date.now()): void {
    void this.db.transaction(() => {
      this.access.put(key, now);
      this.hits.put(key, (this.hits.get(key) ?? 0) + 1);
    });
  }

  hitCount(key: string): number {
    return this.hits.get(key) ?? 0;
  }

  /** Remembers when a lookup of `key` missed; takeMiss() hands it to the save that follows. */
  markMiss(key: string, now = Date.now()): void {
    void this.pending.put(key, now);
  }

  /**
   * When `key` last missed, if within `windowMs` of `now`; forgets it, and every miss older than the
   * window, so misses never followed by a save do not pile up.
   */
  takeMiss(key: string, now: number, windowMs: number): number | undefined {
    const at = this.pending.get(key);
    void this.db.transaction(() => {
      this.pending.remove(key);
      for (const { key: k, value } of this.pending.getRange())
        if (now - value >= windowMs) this.pending.remove(k);
    });
    return at !== undefined && now - at >= 0 && now - at < windowMs ? at : undefined;
  }

  count(name: keyof Counters, by = 1): void {
    void this.db.transaction(() => {
      this.counters.put(name, (this.counters.get(name) ?? 0) + by);
    });
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

  /** The stat cache, as the fingerprinter's HashCache. */
  hashCache(): HashCache {
    return statCache(this.stats);
  }

  /** Waits for pending writes (stat cache, access times, counters) to be committed. */
  async flush(): Promise<void> {
    await this.db.flushed;
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  static exists(cacheDir: string): boolean {
    return existsSync(cacheLayout(cacheDir).index);
  }
}

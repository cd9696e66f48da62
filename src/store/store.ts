import { existsSync, mkdirSync } from 'node:fs';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { HashAlgorithm } from '../config/types.js';
import type { Fingerprint, HashCache } from '../fingerprint/fingerprint.js';
import type { InputFile } from '../fingerprint/inputs.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { type AuditEvent, AuditLog } from './audit.js';
import { BlobStore } from './blobs.js';
import { type Entry, entryBlobs, STORE_SCHEMA } from './entry.js';
import { type CacheLayout, cacheLayout } from './layout.js';

/** A stat-cache hash is trusted only for files last modified this long before it was recorded. */
export const RACY_WINDOW_NS = 2_000_000_000n;

export interface Counters {
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
}

type StatRecord = [
  dev: number,
  ino: number,
  size: number,
  mtimeNs: bigint,
  ctimeNs: bigint,
  algo: string,
  hash: string,
  recordedNs: bigint,
];

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
    private readonly stats: Database<StatRecord, string>,
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
          db.openDB({ name: 'stat' }),
        ),
      );
    } catch (e) {
      return err(failure('cache', `cannot open the cache at ${cacheDir}: ${errorMessage(e)}`));
    }
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
      return had;
    });
  }

  touch(key: string, now = Date.now()): void {
    void this.access.put(key, now);
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
    return {
      get: (f: InputFile, algo: HashAlgorithm) => {
        const r = this.stats.get(f.abs);
        if (!r) return undefined;
        const [dev, ino, size, mtimeNs, ctimeNs, a, hash, recordedNs] = r;
        const same =
          dev === f.dev &&
          ino === f.ino &&
          size === f.size &&
          mtimeNs === f.mtimeNs &&
          ctimeNs === f.ctimeNs &&
          a === algo;
        // "Racy git": a file changed in the same tick as it was hashed keeps its stat, so a hash
        // recorded that close to the file's mtime proves nothing.
        return same && f.mtimeNs + RACY_WINDOW_NS < recordedNs && f.ctimeNs + RACY_WINDOW_NS < recordedNs
          ? hash
          : undefined;
      },
      set: (f, algo, hash, recordedNs) => {
        void this.stats.put(f.abs, [f.dev, f.ino, f.size, f.mtimeNs, f.ctimeNs, algo, hash, recordedNs]);
      },
    };
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

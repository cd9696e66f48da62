import {
  closeSync,
  constants,
  copyFileSync,
  createReadStream,
  createWriteStream,
  existsSync,
  fdatasync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { copyFile, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Database } from 'lmdb';
import type { HashAlgorithm } from '../config/types.js';
import { createHasher, hashBytes, hashFile, STREAM_THRESHOLD } from '../fingerprint/hash.js';
import { hashFiles } from '../fingerprint/hash-pool.js';
import { mkdirs, mkdirsSync } from '../util/mkdirs.js';
import { err, ok, type Result } from '../util/result.js';
import { statFile } from '../util/stat.js';
import { tempSuffix } from '../util/temp-name.js';
import type { BlobRef } from './entry.js';
import { background } from './index/writes.js';
import { blobPath } from './layout.js';

/** Blobs up to this size are written with blocking calls (putSmall). */
const SMALL_BYTES = 64 * 1024;
/** The largest blob rememberVerified keeps. */
const REMEMBER_MAX_BLOB = 64 * 1024;
/** What each remembered blob costs beside its bytes (its map entry, key and Buffer), as counted. */
const REMEMBER_OVERHEAD = 256;

/** `inIndex`: the bad copy is a small result's bytes in the index (index/small-blobs.ts), not the file. */
export type BlobProblem = { kind: 'missing' | 'corrupt'; hash: string; detail: string; inIndex?: true };

/**
 * Blobs this process has just written after checking every byte against its name (a remote
 * download), by hash: their bytes when still in memory, else undefined (the checked file is in the
 * store). A restore that is handed these copies them without reading and hashing them a
 * second time; anything else it restores is checked as usual.
 */
export type CheckedBlobs = ReadonlyMap<string, Buffer | undefined>;

/** Whether `name` can be a blob's (its hash, as the files under blobs/ are named). */
export const isBlobName = (name: string): boolean => /^[0-9a-f]{3,128}$/.test(name);

/**
 * Content-addressed, immutable blobs. Every write goes to tmp/ first and is renamed into place, so a
 * blob under its name is always complete; every read on the restore path is checked against its name.
 */
export class BlobStore {
  /** Fan-out directories known to exist: a download of thousands of blobs stats each once. */
  private readonly madeDirs = new Set<string>();
  /** Small blobs this process read and verified, least recently read first (rememberVerified). */
  private verified: { blobs: Map<string, Buffer>; bytes: number; maxBytes: number } | undefined;
  /** The index's small results (index/small-blobs.ts), once the store has opened it. */
  private small: Database<Buffer, string> | undefined;

  constructor(
    readonly dir: string,
    readonly tmpDir: string,
  ) {}

  /** A blob's path. The hash may come from a hostile entry, so anything but hex is refused. */
  path(hash: string): string {
    if (!isBlobName(hash)) throw new Error(`malformed blob hash ${JSON.stringify(hash).slice(0, 40)}`);
    return blobPath(this.dir, hash);
  }

  /**
   * Reads small results from the index too (index/small-blobs.ts): the store hands over its db
   * when it opens one. Without it (a hit served from hot/) only files are read.
   */
  useIndex(small: Database<Buffer, string>): void {
    this.small = small;
  }

  /** Whether the blob's file exists (a small result kept in the index has none). */
  has(hash: string): boolean {
    return existsSync(this.path(hash));
  }

  /** A small result's bytes kept in the index, unchecked; undefined when it has none. */
  private fromIndex(hash: string): Buffer | undefined {
    return this.small?.get(hash);
  }

  /** The size of a blob's file, or undefined when there is none. */
  sizeOf(hash: string): number | undefined {
    return statFile(this.path(hash))?.size;
  }

  /**
   * From now on, readVerified keeps what it read and verified (blobs up to 64 KB, `maxBytes` in
   * all) and serves it again without a read: for a long-lived client answering the same results
   * over and over, the open, read, close and hash were a fifth of a hit. A blob's bytes are
   * its name, so what was verified once stays right; whether an entry still exists is asked of the
   * index on every hit, as before. Each caller gets its own copy.
   */
  rememberVerified(maxBytes = 16 * 1024 * 1024): void {
    this.verified ??= { blobs: new Map(), bytes: 0, maxBytes };
  }

  private remembered(hash: string): Buffer | undefined {
    const m = this.verified;
    const data = m?.blobs.get(hash);
    if (!m || !data) return undefined;
    m.blobs.delete(hash);
    m.blobs.set(hash, data);
    return Buffer.from(data);
  }

  private remember(hash: string, data: Buffer): void {
    const m = this.verified;
    if (!m || data.byteLength > REMEMBER_MAX_BLOB || m.blobs.has(hash)) return;
    // Its own memory, not a slice of Node's shared pool that would keep a whole 8 KB block alive.
    const own = Buffer.allocUnsafeSlow(data.byteLength);
    data.copy(own);
    m.blobs.set(hash, own);
    m.bytes += own.byteLength + REMEMBER_OVERHEAD;
    for (const [h, b] of m.blobs) {
      if (m.bytes <= m.maxBytes) break;
      m.blobs.delete(h);
      m.bytes -= b.byteLength + REMEMBER_OVERHEAD;
    }
  }

  private forget(hash: string): void {
    const b = this.verified?.blobs.get(hash);
    if (!b || !this.verified) return;
    this.verified.blobs.delete(hash);
    this.verified.bytes -= b.byteLength + REMEMBER_OVERHEAD;
  }

  /** A fresh path in tmp/, named so that gc can tell the owning process and its age. */
  tempPath(tag = 'blob'): string {
    return join(this.tmpDir, `${process.pid}-${Date.now()}-${tempSuffix()}.${tag}`);
  }

  async putBytes(algorithm: HashAlgorithm, data: Uint8Array): Promise<BlobRef> {
    const hash = hashBytes(algorithm, data);
    if (this.has(hash)) await this.refresh(hash);
    else if (data.byteLength <= SMALL_BYTES) this.putSmall(hash, data);
    else {
      const tmp = this.tempPath();
      try {
        await writeFile(tmp, data, { flag: 'wx' });
        await this.adopt(tmp, hash);
      } catch (e) {
        // A half-written temp (ENOSPC) must not fill the disk; one that cannot go is swept by gc.
        await rm(tmp, { force: true }).catch(() => {});
        throw e;
      }
    }
    return { hash, size: data.byteLength };
  }

  /** putBytes for a small blob, blocking (the commit of a save whose bytes waited in memory). */
  putBytesSync(algorithm: HashAlgorithm, data: Uint8Array): BlobRef {
    const hash = hashBytes(algorithm, data);
    if (!this.has(hash)) this.putSmall(hash, data);
    else {
      const now = new Date();
      try {
        utimesSync(this.path(hash), now, now);
      } catch {
        // Not ours to touch (another user's cache): the commit re-checks that the blob still exists.
      }
    }
    return { hash, size: data.byteLength };
  }

  /**
   * A small blob, written with blocking calls: each is a few microseconds, where the async API
   * costs a thread-pool round trip per call (most of a small save).
   */
  private putSmall(hash: string, data: Uint8Array): void {
    const tmp = this.tempPath();
    try {
      writeFileSync(tmp, data, { flag: 'wx' });
      this.renameIntoPlace(tmp, hash);
    } catch (e) {
      // A half-written temp (ENOSPC) must not fill the disk; one that cannot go is swept by gc.
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  /**
   * Renames a complete temp file to the blob's name. Its fan-out directory is made only when the
   * rename finds it missing: no stat for the usual case, where it exists.
   */
  private renameIntoPlace(tmp: string, hash: string): void {
    const dest = this.path(hash);
    try {
      renameSync(tmp, dest);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirsSync(dirname(dest));
      renameSync(tmp, dest);
    }
  }

  /**
   * Copies a file into the store. A large one is copied by the kernel (copy_file_range, or a
   * copy-on-write clone where the filesystem has it) while this process hashes the source, both at
   * once: near the speed of `cp` instead of reading every byte through JavaScript and writing it
   * back. The hash names the copy only if the source did not change meanwhile (same inode, size
   * and change time before and after); otherwise the copy itself is hashed, so a blob's name is
   * always the hash of its bytes.
   */
  async putFile(algorithm: HashAlgorithm, src: string, size?: number): Promise<BlobRef> {
    const known = size ?? (await stat(src)).size;
    if (known <= STREAM_THRESHOLD) return this.putBytes(algorithm, await readFile(src));
    const tmp = this.tempPath();
    try {
      const before = await stat(src, { bigint: true });
      const [sourceHash] = await Promise.all([
        hashFile(algorithm, src, known),
        copyFile(src, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE),
      ]);
      const after = await stat(src, { bigint: true });
      const copied = (await stat(tmp)).size;
      const unchanged =
        before.ino === after.ino &&
        before.size === after.size &&
        before.ctimeNs === after.ctimeNs &&
        before.mtimeNs === after.mtimeNs &&
        BigInt(copied) === after.size;
      const hash = unchanged ? sourceHash : await hashFile(algorithm, tmp, copied);
      await this.adopt(tmp, hash);
      return { hash, size: copied };
    } catch (e) {
      // A half-written temp must not fill the disk; one that cannot be removed is swept by gc.
      await rm(tmp, { force: true }).catch(() => {});
      throw e;
    }
  }

  /**
   * Moves a complete temp file to its content address (or drops it if the blob already exists).
   * true: the blob under that name is now this file.
   */
  async adopt(tmp: string, hash: string): Promise<boolean> {
    const dest = this.path(hash);
    if (existsSync(dest)) {
      await rm(tmp, { force: true });
      await this.refresh(hash);
      return false;
    }
    const dir = dirname(dest);
    if (!this.madeDirs.has(dir)) {
      await mkdirs(dir);
      this.madeDirs.add(dir);
    }
    await rename(tmp, dest);
    return true;
  }

  /**
   * Stores bytes the caller has checked against `hash` (a download). `flush` (strict durability):
   * flushed to disk (fdatasync) before they get their name, so that a commit need only flush the
   * directory. true: written here (false: the blob was already there). Blocking calls but the
   * flush: for the few KB of most downloaded blobs, a thread-pool round trip per call costs more
   * than the call, and the flush, which waits for the disk, runs beside others on the pool.
   */
  async putChecked(hash: string, data: Uint8Array, flush = true): Promise<boolean> {
    const dest = this.path(hash);
    if (existsSync(dest)) {
      await this.refresh(hash);
      return false;
    }
    const tmp = this.tempPath('remote');
    try {
      const fd = openSync(tmp, 'wx', 0o644);
      try {
        for (let at = 0; at < data.byteLength; ) at += writeSync(fd, data, at);
        if (flush)
          await new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));
      } finally {
        closeSync(fd);
      }
      this.renameIntoPlace(tmp, hash);
      return true;
    } catch (e) {
      // A half-written temp (ENOSPC) must not fill the disk; one that cannot go is swept by gc.
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  /**
   * Marks an existing blob as just written. gc deletes unreferenced blobs only past a grace period
   * by mtime, so a blob this run reuses but has not yet committed an entry for is left alone.
   */
  private async refresh(hash: string): Promise<void> {
    const now = new Date();
    // Not ours to touch (another user's cache): the commit re-checks that the blob still exists.
    await utimes(this.path(hash), now, now).catch(() => {});
  }

  /** Reads a small blob whole, verified (up to STREAM_THRESHOLD: callers stream larger ones). */
  async readVerified(algorithm: HashAlgorithm, ref: BlobRef): Promise<Result<Buffer, BlobProblem>> {
    const known = this.remembered(ref.hash);
    if (known && known.byteLength === ref.size) return ok(known);
    let data: Buffer;
    let inIndex = false;
    try {
      const kept = this.fromIndex(ref.hash);
      inIndex = kept !== undefined;
      // Blocking: small blobs only, and on a hit this is often the first file read, where the
      // async API's first use (thread pool start-up) costs more than the read.
      data = kept ?? readFileSync(this.path(ref.hash));
    } catch (e) {
      return err({ kind: 'missing', hash: ref.hash, detail: (e as Error).message });
    }
    const actual = hashBytes(algorithm, data);
    if (actual !== ref.hash || data.byteLength !== ref.size) {
      const problem = corrupt(ref, actual, data.byteLength);
      return err(inIndex ? { ...problem, inIndex: true } : problem);
    }
    this.remember(ref.hash, data);
    return ok(data);
  }

  /** Streams a blob to `dest` while hashing it; on a mismatch `dest` is removed. */
  async copyVerified(
    algorithm: HashAlgorithm,
    ref: BlobRef,
    dest: string,
    mode?: number,
  ): Promise<BlobProblem | undefined> {
    if (ref.size <= STREAM_THRESHOLD) {
      const read = await this.readVerified(algorithm, ref);
      if (!read.ok) return read.error;
      // 'wx': never follow a symlink someone planted under the temp name.
      await writeFile(dest, read.value, mode === undefined ? { flag: 'wx' } : { mode, flag: 'wx' });
      return undefined;
    }
    const hasher = createHasher(algorithm);
    let bytes = 0;
    try {
      await pipeline(
        createReadStream(this.path(ref.hash), { highWaterMark: 1024 * 1024 }),
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            hasher.update(chunk);
            bytes += chunk.byteLength;
            yield chunk;
          }
        },
        createWriteStream(dest, mode === undefined ? { flags: 'wx' } : { mode, flags: 'wx' }),
      );
    } catch (e) {
      await rm(dest, { force: true });
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !this.has(ref.hash))
        return { kind: 'missing', hash: ref.hash, detail: 'blob file is gone' };
      throw e;
    }
    const actual = hasher.digest();
    if (actual !== ref.hash || bytes !== ref.size) {
      await rm(dest, { force: true });
      return corrupt(ref, actual, bytes);
    }
    return undefined;
  }

  /**
   * Checks a blob without writing it anywhere. `inIndex`: it may be a small result kept in the
   * index (a result's output), which is then what is checked.
   */
  async verify(algorithm: HashAlgorithm, ref: BlobRef, inIndex = false): Promise<BlobProblem | undefined> {
    const kept = inIndex ? this.fromIndex(ref.hash) : undefined;
    if (kept) {
      const actual = hashBytes(algorithm, kept);
      return actual === ref.hash && kept.byteLength === ref.size
        ? undefined
        : { ...corrupt(ref, actual, kept.byteLength), inIndex: true };
    }
    try {
      const s = await stat(this.path(ref.hash));
      if (s.size !== ref.size) return corrupt(ref, undefined, s.size);
    } catch (e) {
      return { kind: 'missing', hash: ref.hash, detail: (e as Error).message };
    }
    const h = createHasher(algorithm);
    for await (const chunk of createReadStream(this.path(ref.hash), { highWaterMark: 1024 * 1024 }))
      h.update(chunk as Buffer);
    const actual = h.digest();
    return actual === ref.hash ? undefined : corrupt(ref, actual, ref.size);
  }

  /**
   * Checks many blobs at once, each read once: sizes first (no reading), then contents, on hashing
   * threads when there is enough to hash. The first problem found is returned.
   */
  async verifyAll(algorithm: HashAlgorithm, refs: BlobRef[]): Promise<BlobProblem | undefined> {
    const unique = [...new Map(refs.map((r) => [r.hash, r])).values()];
    return this.hashChecked(
      algorithm,
      unique.map((ref) => ({ ref })),
    );
  }

  /**
   * Copies each blob to its `dest` (created here, must not exist), checking the hash of the bytes
   * as they are copied: what is verified is exactly what was written. The first problem found is
   * returned; the copies are then the caller's to remove.
   */
  async copyAllVerified(
    algorithm: HashAlgorithm,
    /** `mode`: what each copy is created with (less the umask). */
    jobs: Array<{ ref: BlobRef; dest: string; mode?: number }>,
    /** Every parent of each dest below this directory must be a real one when it is created. */
    within?: string,
  ): Promise<BlobProblem | undefined> {
    return this.hashChecked(
      algorithm,
      jobs.map((j) => ({ ...j, within })),
    );
  }

  /** Sizes first (no reading), then contents, on hashing threads when there is enough to hash. */
  private async hashChecked(
    algorithm: HashAlgorithm,
    jobs: Array<{ ref: BlobRef; dest?: string; within?: string | undefined; mode?: number | undefined }>,
  ): Promise<BlobProblem | undefined> {
    for (const { ref } of jobs) {
      // Numbers only: fs.Stats on Node 20 builds four Dates per call (util/stat.ts), once per blob.
      const s = statFile(this.path(ref.hash));
      if (!s) return { kind: 'missing', hash: ref.hash, detail: 'blob file is gone' };
      if (s.size !== ref.size) return corrupt(ref, undefined, s.size);
    }
    let actual: string[];
    try {
      actual = await hashFiles(
        algorithm,
        jobs.map(({ ref, dest, within, mode }) => ({
          abs: this.path(ref.hash),
          size: ref.size,
          dest,
          within,
          mode,
        })),
        { concurrency: 8 },
      );
    } catch (e) {
      const gone = jobs.find(({ ref }) => !this.has(ref.hash));
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && gone)
        return { kind: 'missing', hash: gone.ref.hash, detail: 'blob file is gone' };
      throw e;
    }
    const bad = jobs.findIndex(({ ref }, i) => actual[i] !== ref.hash);
    return bad < 0 ? undefined : corrupt(jobs[bad]!.ref, actual[bad]!, jobs[bad]!.ref.size);
  }

  /** Whether this filesystem makes copy-on-write clones; tried with a real blob (`dest` is removed). */
  canClone(hash: string, dest: string): boolean {
    try {
      copyFileSync(this.path(hash), dest, constants.COPYFILE_FICLONE_FORCE);
      return true;
    } catch {
      return false; // no reflink support here: restores copy instead
    } finally {
      rmSync(dest, { force: true });
    }
  }

  /**
   * Copies a blob to `dest`, as a copy-on-write clone where the filesystem has it (btrfs, XFS,
   * APFS), else an in-kernel copy. Unverified: `dest` must stay invisible (a temp name) until
   * verifyAll has checked the blob.
   */
  async cloneTo(hash: string, dest: string): Promise<void> {
    await copyFile(this.path(hash), dest, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL);
  }

  /**
   * Flushes blobs to stable storage: each file's bytes, then the directories that hold their names
   * (a fan-out directory may be new, so blobs/ too). Called before an entry naming them is
   * committed, so that after a power loss no entry points at an empty or missing blob. Blobs in
   * `flushed` were flushed by whoever wrote them (putChecked, a download): only their directories
   * are, one fsync per directory for the whole entry.
   */
  async syncAll(refs: BlobRef[], flushed?: ReadonlySet<string>): Promise<void> {
    const all = [...new Set(refs.map((r) => r.hash))];
    const dirs = new Set(all.map((h) => dirname(this.path(h))));
    const hashes = flushed ? all.filter((h) => !flushed.has(h)) : all;
    let next = 0;
    const worker = async () => {
      while (next < hashes.length) await fsyncPath(this.path(hashes[next++]!));
    };
    await Promise.all(Array.from({ length: Math.min(8, hashes.length) }, worker));
    if (dirs.size > 0) dirs.add(this.dir);
    await Promise.all([...dirs].map((d) => fsyncPath(d, true)));
  }

  /**
   * Deletes the copy of a blob found corrupt: its file, or with `inIndex` its bytes in the index
   * (a hash may have both, a run's file and a result's bytes; the other copy may be sound).
   */
  async remove(hash: string, inIndex = false): Promise<void> {
    if (!/^[0-9a-f]{3,128}$/.test(hash)) return;
    this.forget(hash);
    if (!inIndex) await rm(this.path(hash), { force: true });
    else if (this.small) background(this.small.remove(hash));
  }
}

/** fsync(2) of a file, or of a directory (its entries: names renamed into it). */
async function fsyncPath(path: string, dir = false): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch (e) {
    // Some filesystems cannot fsync a directory: its names are then as durable as it makes them.
    const code = (e as NodeJS.ErrnoException).code;
    if (!dir || (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'ENOTSUP' && code !== 'EPERM')) throw e;
  } finally {
    await fh.close();
  }
}

/** `actual` is the content's hash, when it was read (a wrong size is found without reading). */
function corrupt(ref: BlobRef, actual: string | undefined, size: number): BlobProblem {
  const found =
    actual === undefined ? `${size} bytes` : `content hash ${actual.slice(0, 12)} (${size} bytes)`;
  return {
    kind: 'corrupt',
    hash: ref.hash,
    detail: `${found} does not match its name ${ref.hash.slice(0, 12)} (${ref.size} bytes)`,
  };
}

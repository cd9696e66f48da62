import { statSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import type { HashAlgorithm } from '../config/types.js';
import { canonicalJson, hashBytes } from './hash.js';
import type { InputFile } from './inputs.js';

/*
 * An input manifest: what one glob set matched last time, as one record. A repeat run reads it
 * once instead of keeping a record per file elsewhere, skips re-listing directories whose
 * stat is unchanged, and reuses the key when nothing moved. At 20,000 inputs that is most of a
 * hit's work: readdir of every directory, 20,000 index reads and a 1.5 MB canonical JSON text.
 *
 * Every reuse is backed by a stat comparison under the "racy git" rule: a directory's listing or a
 * file's hash is trusted only if its (dev, ino, mtime, ctime) match and it was last modified well
 * before the manifest was recorded (a file changed again within the same timestamp tick keeps its
 * stat, so a stat recorded that close to a change proves nothing).
 */

/** A recorded stat vouches only for what was last modified this long before the recording. */
export const RACY_WINDOW_NS = 2_000_000_000n;

/** The directories a plain walk read, each stat()ed before its readdir(). */
export interface Listing {
  /** Relative to the task's cwd, '' for the cwd itself. */
  dirs: string[];
  /** [dev, ino, mtimeNs, ctimeNs] per directory. */
  stats: bigint[][];
}

export interface Manifest {
  algorithm: HashAlgorithm;
  /** Wall clock (ns) taken before anything recorded here was listed, statted or read. */
  recordedNs: bigint;
  /** Present when the files came from a plain walk of these directories (no symlinks met). */
  listing: Listing | undefined;
  files: ManifestFiles;
  /** Raw digests, 32 bytes per file, in `files` order. */
  digests: Buffer;
  /** hash of the fingerprint without its inputs, and the key it gave with these inputs. */
  restHash: string;
  key: string;
}

/**
 * The files, column-wise: a manifest of 20,000 files decodes as two array copies, with no object
 * per file for the garbage collector to move.
 */
export interface ManifestFiles {
  /** Root-relative, sorted (InputFile.path). */
  paths: string[];
  abs: (i: number) => string;
  /** [dev, ino, size, mode] per file. */
  nums: Float64Array;
  /** [mtimeNs, ctimeNs] per file. */
  times: BigInt64Array;
}

export function columns(files: InputFile[], root: string): ManifestFiles {
  const nums = new Float64Array(4 * files.length);
  const times = new BigInt64Array(2 * files.length);
  files.forEach((f, i) => {
    nums.set([f.dev, f.ino, f.size, f.mode], 4 * i);
    times[2 * i] = f.mtimeNs;
    times[2 * i + 1] = f.ctimeNs;
  });
  return {
    paths: files.map((f) => f.path),
    abs: absOf(
      root,
      files.map((f) => f.path),
    ),
    nums,
    times,
  };
}

/** The InputFile of entry `i`, as recorded. */
export function fileAt(files: ManifestFiles, i: number): InputFile {
  const n = files.nums;
  return {
    path: files.paths[i]!,
    abs: files.abs(i),
    dev: n[4 * i]!,
    ino: n[4 * i + 1]!,
    size: n[4 * i + 2]!,
    mode: n[4 * i + 3]!,
    mtimeNs: files.times[2 * i]!,
    ctimeNs: files.times[2 * i + 1]!,
  };
}

function absOf(root: string, paths: string[]): (i: number) => string {
  const rootSlash = root.endsWith(sep) ? root : root + sep;
  return (i) => {
    const p = paths[i]!;
    return p.startsWith('../') ? resolve(root, p) : rootSlash + p;
  };
}

const VERSION = 1;
const ALGOS: HashAlgorithm[] = ['blake3', 'sha256'];
const DIGEST = 32;
const HEADER = 32;

/** The manifest's name in the index: one per (algorithm, root, cwd, glob set). */
export function manifestId(
  algorithm: HashAlgorithm,
  root: string,
  cwd: string,
  positive: string[],
  ignore: string[],
): string {
  return hashBytes('sha256', canonicalJson({ v: VERSION, algorithm, root, cwd, positive, ignore }));
}

/*
 * Layout: header (version u8, algorithm u8, listed u8, pad, recordedNs i64, dirs u32, files u32,
 * json bytes u32, pad) | dir stats 4 × i64 | file numbers [dev, ino, size, mode] f64 + [mtime,
 * ctime] i64 | digests | JSON { dirs, paths, restHash, key }. Numbers are fixed width so that
 * decoding 20,000 files is a copy, not 120,000 parses.
 */
export function encodeManifest(m: Manifest): Buffer {
  const nDirs = m.listing?.dirs.length ?? 0;
  const n = m.files.paths.length;
  const json = Buffer.from(
    JSON.stringify({ dirs: m.listing?.dirs ?? [], paths: m.files.paths, restHash: m.restHash, key: m.key }),
  );
  const numbers = 8 * (4 * nDirs + 6 * n);
  const out = Buffer.alloc(HEADER + numbers + DIGEST * n + json.length);
  out.writeUInt8(VERSION, 0);
  out.writeUInt8(ALGOS.indexOf(m.algorithm), 1);
  out.writeUInt8(m.listing ? 1 : 0, 2);
  out.writeBigInt64LE(m.recordedNs, 8);
  out.writeUInt32LE(nDirs, 16);
  out.writeUInt32LE(n, 20);
  out.writeUInt32LE(json.length, 24);
  let off = HEADER;
  for (const s of m.listing?.stats ?? []) {
    for (const v of s) {
      out.writeBigInt64LE(BigInt.asIntN(64, v), off);
      off += 8;
    }
  }
  // Little-endian, as the typed arrays are on every platform Node runs on.
  Buffer.from(m.files.nums.buffer, m.files.nums.byteOffset, 32 * n).copy(out, off);
  Buffer.from(m.files.times.buffer, m.files.times.byteOffset, 16 * n).copy(out, off + 32 * n);
  off += 48 * n;
  m.digests.copy(out, off, 0, DIGEST * n);
  json.copy(out, off + DIGEST * n);
  return out;
}

/** undefined for a record of another version or algorithm, or one that does not parse. */
export function decodeManifest(
  buf: Buffer | undefined,
  algorithm: HashAlgorithm,
  root: string,
): Manifest | undefined {
  if (!buf || buf.length < HEADER || buf.readUInt8(0) !== VERSION) return undefined;
  if (ALGOS[buf.readUInt8(1)] !== algorithm) return undefined;
  const nDirs = buf.readUInt32LE(16);
  const n = buf.readUInt32LE(20);
  const jsonLen = buf.readUInt32LE(24);
  const numbers = 8 * (4 * nDirs + 6 * n);
  if (buf.length !== HEADER + numbers + DIGEST * n + jsonLen) return undefined;
  let meta: { dirs: string[]; paths: string[]; restHash: string; key: string };
  try {
    meta = JSON.parse(buf.toString('utf8', HEADER + numbers + DIGEST * n));
  } catch {
    return undefined;
  }
  if (meta.dirs.length !== nDirs || meta.paths.length !== n) return undefined;
  let off = HEADER;
  const stats: bigint[][] = [];
  for (let i = 0; i < nDirs; i++, off += 32) {
    stats.push([
      buf.readBigInt64LE(off),
      buf.readBigInt64LE(off + 8),
      buf.readBigInt64LE(off + 16),
      buf.readBigInt64LE(off + 24),
    ]);
  }
  // Copied out to aligned memory (LMDB's buffer has no alignment, and is reused by the next read).
  const nums = new Float64Array(4 * n);
  Buffer.from(nums.buffer).set(buf.subarray(off, off + 32 * n));
  const times = new BigInt64Array(2 * n);
  Buffer.from(times.buffer).set(buf.subarray(off + 32 * n, off + 48 * n));
  off += 48 * n;
  const files: ManifestFiles = { paths: meta.paths, abs: absOf(root, meta.paths), nums, times };
  return {
    algorithm,
    recordedNs: buf.readBigInt64LE(8),
    listing: buf.readUInt8(2) === 1 ? { dirs: meta.dirs, stats } : undefined,
    files,
    // A copy: `buf` may be a view of LMDB's shared read buffer, reused by the next read.
    digests: Buffer.from(buf.subarray(off, off + DIGEST * n)),
    restHash: meta.restHash,
    key: meta.key,
  };
}

/** A stat taken now is no proof for something modified this close to when it was recorded. */
export const settledBefore = (mtimeNs: bigint, ctimeNs: bigint, recordedNs: bigint): boolean =>
  mtimeNs + RACY_WINDOW_NS < recordedNs && ctimeNs + RACY_WINDOW_NS < recordedNs;

/**
 * [dev, ino, mtimeNs, ctimeNs] of a directory (following links, as readdir does), or undefined
 * when it is not one (any more).
 */
export function dirStat(path: string): bigint[] | undefined {
  const s = statSync(path, { bigint: true, throwIfNoEntry: false });
  return s?.isDirectory()
    ? [BigInt.asIntN(64, s.dev), BigInt.asIntN(64, s.ino), s.mtimeNs, s.ctimeNs]
    : undefined;
}

/**
 * Whether a recorded listing still holds: every directory has the same identity and mtime/ctime
 * (creating, deleting or renaming an entry changes its directory's mtime), and none was modified
 * within the racy window of the recording.
 */
export function listingHolds(listing: Listing, cwd: string, recordedNs: bigint): boolean {
  for (let i = 0; i < listing.dirs.length; i++) {
    const rel = listing.dirs[i]!;
    const was = listing.stats[i]!;
    const now = dirStat(rel ? `${cwd}/${rel}` : cwd);
    if (!now || now[0] !== was[0] || now[1] !== was[1] || now[2] !== was[2] || now[3] !== was[3])
      return false;
    if (!settledBefore(was[2]!, was[3]!, recordedNs)) return false;
  }
  return true;
}

/** Same file, unchanged since `m` recorded it, and settled by then: its recorded hash holds. */
export function fileUnchanged(m: Manifest, i: number, f: InputFile): boolean {
  const n = m.files.nums;
  return (
    m.files.paths[i] === f.path &&
    n[4 * i] === f.dev &&
    n[4 * i + 1] === f.ino &&
    n[4 * i + 2] === f.size &&
    n[4 * i + 3] === f.mode &&
    m.files.times[2 * i] === f.mtimeNs &&
    m.files.times[2 * i + 1] === f.ctimeNs &&
    settledBefore(f.mtimeNs, f.ctimeNs, m.recordedNs)
  );
}

/**
 * Whether nothing `m` recorded has changed: its directories (so no file came or went) and every
 * file's stat, each settled before the recording. The common case of a repeat run, checked with
 * one stat per directory and file and no object kept per file.
 */
export function manifestHolds(m: Manifest, cwd: string): boolean {
  if (!m.listing || !listingHolds(m.listing, cwd, m.recordedNs)) return false;
  const { paths, nums, times } = m.files;
  for (let i = 0; i < paths.length; i++) {
    const s = statSync(m.files.abs(i), { bigint: true, throwIfNoEntry: false });
    if (
      !s?.isFile() ||
      Number(s.dev) !== nums[4 * i] ||
      Number(s.ino) !== nums[4 * i + 1] ||
      Number(s.size) !== nums[4 * i + 2] ||
      Number(s.mode) !== nums[4 * i + 3] ||
      s.mtimeNs !== times[2 * i] ||
      s.ctimeNs !== times[2 * i + 1] ||
      !settledBefore(s.mtimeNs, s.ctimeNs, m.recordedNs)
    )
      return false;
  }
  return true;
}

export const digestAt = (m: Pick<Manifest, 'digests'>, i: number): string =>
  m.digests.toString('hex', i * DIGEST, (i + 1) * DIGEST);

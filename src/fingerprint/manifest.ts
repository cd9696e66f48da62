import { resolve, sep } from 'node:path';
import type { HashAlgorithm } from '../config/types.js';
import { isDirStat, isFileStat, statFile } from '../util/stat.js';
import { canonicalJson, hashBytes } from './hash.js';
import type { InputFile } from './input-file.js';

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

/**
 * A recorded stat vouches only for what was last modified this long before the recording. This is
 * also why millisecond timestamps (doubles, with their sub-millisecond part) are precise enough:
 * anything written after a recording gets an mtime and ctime past the recording time, and so at
 * least this far from the settled times that were recorded (ctime cannot be set back by users).
 */
export const RACY_WINDOW_MS = 2000;

/** Numbers per file in ManifestFiles.nums: dev, ino, size, mode, mtimeMs, ctimeMs. */
const PER_FILE = 6;

/** The directories a plain walk read, each stat()ed before its readdir(). */
export interface Listing {
  /** Relative to the task's cwd, '' for the cwd itself. */
  dirs: string[];
  /** [dev, ino, mtimeMs, ctimeMs] per directory. */
  stats: number[][];
}

export interface Manifest {
  algorithm: HashAlgorithm;
  /** Wall clock (ms) taken before anything recorded here was listed, statted or read. */
  recordedMs: number;
  /** Present when the files came from a plain walk of these directories (no symlinks met). */
  listing: Listing | undefined;
  files: ManifestFiles;
  /** Raw digests, 32 bytes per file, in `files` order. */
  digests: Buffer;
  /** hash of the fingerprint without its inputs, and the key it gave with these inputs. */
  restHash: string;
  key: string;
  /** Identity of the stored record this was read from (resident.ts manifestStamp), when known. */
  stamp?: string;
}

/**
 * The files, column-wise: a manifest of 20,000 files decodes as one array copy, with no object
 * per file for the garbage collector to move.
 */
export interface ManifestFiles {
  /** Root-relative, sorted (InputFile.path). */
  paths: string[];
  abs: (i: number) => string;
  /** [dev, ino, size, mode, mtimeMs, ctimeMs] per file. */
  nums: Float64Array;
}

export function columns(files: InputFile[], root: string): ManifestFiles {
  const nums = new Float64Array(PER_FILE * files.length);
  files.forEach((f, i) => {
    nums.set([f.dev, f.ino, f.size, f.mode, f.mtimeMs, f.ctimeMs], PER_FILE * i);
  });
  const paths = files.map((f) => f.path);
  return { paths, abs: absOf(root, paths), nums };
}

/** The InputFile of entry `i`, as recorded. */
export function fileAt(files: ManifestFiles, i: number): InputFile {
  const n = files.nums;
  const k = PER_FILE * i;
  return {
    path: files.paths[i]!,
    abs: files.abs(i),
    dev: n[k]!,
    ino: n[k + 1]!,
    size: n[k + 2]!,
    mode: n[k + 3]!,
    mtimeMs: n[k + 4]!,
    ctimeMs: n[k + 5]!,
  };
}

function absOf(root: string, paths: string[]): (i: number) => string {
  const rootSlash = root.endsWith(sep) ? root : root + sep;
  return (i) => {
    const p = paths[i]!;
    return p.startsWith('../') ? resolve(root, p) : rootSlash + p;
  };
}

const VERSION = 2;
const ALGOS: HashAlgorithm[] = ['blake3', 'sha256'];
const DIGEST = 32;
const HEADER = 32;

/** The manifest's name: one per (algorithm, root, cwd, glob set). */
export function manifestId(
  algorithm: HashAlgorithm,
  root: string,
  cwd: string,
  positive: string[],
  ignore: string[],
): string {
  return hashBytes('blake3', canonicalJson({ v: VERSION, algorithm, root, cwd, positive, ignore }));
}

/*
 * Layout: header (version u8, algorithm u8, listed u8, pad, recordedMs f64, dirs u32, files u32,
 * json bytes u32, pad) | dir stats 4 × f64 | file numbers 6 × f64 | digests | JSON { dirs, paths,
 * restHash, key }. Numbers are fixed width so that decoding 20,000 files is a copy, not 120,000
 * parses.
 */
export function encodeManifest(m: Manifest): Buffer {
  const nDirs = m.listing?.dirs.length ?? 0;
  const n = m.files.paths.length;
  const json = Buffer.from(
    JSON.stringify({ dirs: m.listing?.dirs ?? [], paths: m.files.paths, restHash: m.restHash, key: m.key }),
  );
  const numbers = 8 * (4 * nDirs + PER_FILE * n);
  const out = Buffer.alloc(HEADER + numbers + DIGEST * n + json.length);
  out.writeUInt8(VERSION, 0);
  out.writeUInt8(ALGOS.indexOf(m.algorithm), 1);
  out.writeUInt8(m.listing ? 1 : 0, 2);
  out.writeDoubleLE(m.recordedMs, 8);
  out.writeUInt32LE(nDirs, 16);
  out.writeUInt32LE(n, 20);
  out.writeUInt32LE(json.length, 24);
  let off = HEADER;
  for (const s of m.listing?.stats ?? []) {
    for (const v of s) {
      out.writeDoubleLE(v, off);
      off += 8;
    }
  }
  // Little-endian, as the typed array is on every platform Node runs on.
  Buffer.from(m.files.nums.buffer, m.files.nums.byteOffset, 8 * PER_FILE * n).copy(out, off);
  off += 8 * PER_FILE * n;
  m.digests.copy(out, off, 0, DIGEST * n);
  json.copy(out, off + DIGEST * n);
  return out;
}

/**
 * A record's layout from its header: counts and where its digests and JSON start. undefined for a
 * record of another version or algorithm, or whose length does not add up.
 */
function layoutOf(buf: Buffer | undefined, algorithm: HashAlgorithm) {
  if (!buf || buf.length < HEADER || buf.readUInt8(0) !== VERSION) return undefined;
  if (ALGOS[buf.readUInt8(1)] !== algorithm) return undefined;
  const nDirs = buf.readUInt32LE(16);
  const n = buf.readUInt32LE(20);
  const digestsAt = HEADER + 8 * (4 * nDirs + PER_FILE * n);
  const jsonAt = digestsAt + DIGEST * n;
  if (buf.length !== jsonAt + buf.readUInt32LE(24)) return undefined;
  return { buf, nDirs, n, digestsAt, jsonAt };
}

/** undefined for a record of another version or algorithm, or one that does not parse. */
export function decodeManifest(
  record: Buffer | undefined,
  algorithm: HashAlgorithm,
  root: string,
): Manifest | undefined {
  const layout = layoutOf(record, algorithm);
  if (!layout) return undefined;
  const { buf, nDirs, n, jsonAt } = layout;
  let meta: { dirs: string[]; paths: string[]; restHash: string; key: string };
  try {
    meta = JSON.parse(buf.toString('utf8', jsonAt));
  } catch {
    return undefined; // a damaged record is no manifest: the run lists and hashes afresh
  }
  if (meta.dirs.length !== nDirs || meta.paths.length !== n) return undefined;
  let off = HEADER;
  const stats: number[][] = [];
  for (let i = 0; i < nDirs; i++, off += 32) {
    stats.push([
      buf.readDoubleLE(off),
      buf.readDoubleLE(off + 8),
      buf.readDoubleLE(off + 16),
      buf.readDoubleLE(off + 24),
    ]);
  }
  // Copied out to aligned memory: the file's buffer has no alignment.
  const nums = new Float64Array(PER_FILE * n);
  Buffer.from(nums.buffer).set(buf.subarray(off, off + 8 * PER_FILE * n));
  off += 8 * PER_FILE * n;
  return {
    algorithm,
    recordedMs: buf.readDoubleLE(8),
    listing: buf.readUInt8(2) === 1 ? { dirs: meta.dirs, stats } : undefined,
    files: { paths: meta.paths, abs: absOf(root, meta.paths), nums },
    digests: Buffer.from(buf.subarray(off, off + DIGEST * n)),
    restHash: meta.restHash,
    key: meta.key,
  };
}

/**
 * What a hit asks the resident daemon with, read without decoding the file list (at 200,000 inputs
 * the JSON of every path is most of reading a manifest): the header, the digests as a view, and the
 * restHash and key that encodeManifest writes last in its JSON.
 */
export interface ManifestPeek {
  restHash: string;
  key: string;
  count: number;
  recordedMs: number;
  digests: Buffer;
  /** Identity of the stored record (resident.ts manifestStamp), when known. */
  stamp?: string;
  /** The whole manifest, decoded on first use; undefined if it does not decode. */
  decode(): Manifest | undefined;
}

export function peekManifest(
  record: Buffer | undefined,
  algorithm: HashAlgorithm,
  root: string,
): ManifestPeek | undefined {
  const layout = layoutOf(record, algorithm);
  if (!layout) return undefined;
  const { buf, n, digestsAt, jsonAt } = layout;
  const tail = buf.toString('latin1', Math.max(jsonAt, buf.length - 400));
  const last = /"restHash":"([0-9a-f]{1,128})","key":"([0-9a-f]{1,128})"\}$/.exec(tail);
  if (!last) return undefined;
  let decoded: Manifest | null | undefined;
  return {
    restHash: last[1]!,
    key: last[2]!,
    count: n,
    recordedMs: buf.readDoubleLE(8),
    digests: buf.subarray(digestsAt, jsonAt),
    decode: () => {
      decoded ??= decodeManifest(buf, algorithm, root) ?? null;
      return decoded ?? undefined;
    },
  };
}

/** A stat taken now is no proof for something modified this close to when it was recorded. */
export const settledBefore = (mtimeMs: number, ctimeMs: number, recordedMs: number): boolean =>
  mtimeMs + RACY_WINDOW_MS < recordedMs && ctimeMs + RACY_WINDOW_MS < recordedMs;

/**
 * [dev, ino, mtimeMs, ctimeMs] of a directory (following links, as readdir does), or undefined
 * when it is not one (any more).
 */
export function dirStat(path: string): number[] | undefined {
  try {
    const s = statFile(path);
    return s && isDirStat(s) ? [s.dev, s.ino, s.mtimeMs, s.ctimeMs] : undefined;
  } catch {
    return undefined; // ENOTDIR (a parent is now a file), EACCES, ELOOP: not the directory recorded
  }
}

/**
 * Whether a recorded listing still holds: every directory has the same identity and mtime/ctime
 * (creating, deleting or renaming an entry changes its directory's mtime), and none was modified
 * within the racy window of the recording.
 */
export function listingHolds(listing: Listing, cwd: string, recordedMs: number): boolean {
  for (let i = 0; i < listing.dirs.length; i++) {
    const rel = listing.dirs[i]!;
    const was = listing.stats[i]!;
    const now = dirStat(rel ? `${cwd}/${rel}` : cwd);
    if (!now || now[0] !== was[0] || now[1] !== was[1] || now[2] !== was[2] || now[3] !== was[3])
      return false;
    if (!settledBefore(was[2]!, was[3]!, recordedMs)) return false;
  }
  return true;
}

/** Whether `s` is the stat recorded as file `i` of `m`, settled by the recording. */
export function sameAsRecorded(
  m: Manifest,
  i: number,
  s: { dev: number; ino: number; size: number; mode: number; mtimeMs: number; ctimeMs: number },
): boolean {
  const n = m.files.nums;
  const k = PER_FILE * i;
  return (
    n[k] === s.dev &&
    n[k + 1] === s.ino &&
    n[k + 2] === s.size &&
    n[k + 3] === s.mode &&
    n[k + 4] === s.mtimeMs &&
    n[k + 5] === s.ctimeMs &&
    settledBefore(s.mtimeMs, s.ctimeMs, m.recordedMs)
  );
}

/** Same file, unchanged since `m` recorded it, and settled by then: its recorded hash holds. */
export function fileUnchanged(m: Manifest, i: number, f: InputFile): boolean {
  return m.files.paths[i] === f.path && sameAsRecorded(m, i, f);
}

/**
 * Whether the per-input loops (here, the input expansion's and the re-check's) may stat a file by
 * its root-relative path: when the root is the working directory, which saves the kernel resolving
 * the root's components for every file (a quarter of a 20,000-file hit's stat time here).
 */
export function statsByRelativePath(root: string): (rel: string) => boolean {
  const here = process.cwd() === root;
  return (rel) => here && !rel.startsWith('../');
}

/**
 * How many of `m`'s files, from the first, are as recorded (stat unchanged and settled by the
 * recording), stopping at the first that is not; -1 if one of its directories changed (files may
 * have come or gone). All of them: nothing changed, the common case of a repeat run, checked with
 * one stat per directory and file and no object kept per file. Fewer: the fingerprint takes those
 * from the manifest (fileAt) and stats only the rest (statsByRelativePath).
 */
export function unchangedFiles(m: Manifest, cwd: string, root: string): number {
  if (!m.listing || !listingHolds(m.listing, cwd, m.recordedMs)) return -1;
  const { paths } = m.files;
  const byRelative = statsByRelativePath(root);
  let i = 0;
  try {
    for (; i < paths.length; i++) {
      const p = paths[i]!;
      const s = statFile(byRelative(p) ? p : m.files.abs(i));
      if (!s || !isFileStat(s) || !sameAsRecorded(m, i, s)) break;
    }
  } catch {
    // ENOTDIR, EACCES, ...: not as recorded; the full path finds out what it is
  }
  return i;
}

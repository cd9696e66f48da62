import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type { HashAlgorithm } from '../config/types.js';
import { blakeHash } from '../util/blake-native.js';
import { blake3Hex } from '../util/blake3.js';
import { plainPathInside } from '../util/paths.js';

const require = createRequire(import.meta.url);
const { Blake3Hasher } = blakeHash();
// node:crypto (sha256) only when a config asks for it: loading it is ~1.5 ms of every start.
const createHash = (algorithm: string) =>
  (require('node:crypto') as typeof import('node:crypto')).createHash(algorithm);

/** Files up to this size are read whole; larger ones are streamed so memory stays bounded. */
/**
 * A stream.pipeline stage that feeds every chunk to `hasher` (and its size to `count`) on the way
 * through, so a file is hashed in the same pass that copies it.
 */
export function hashingTap(hasher: { update(data: Uint8Array): unknown }, count?: (bytes: number) => void) {
  return async function* (source: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      hasher.update(buf);
      count?.(buf.byteLength);
      yield buf;
    }
  };
}

export const STREAM_THRESHOLD = 8 * 1024 * 1024;

export interface Hasher {
  update(data: Uint8Array): void;
  /** Lower-case hex digest; the hasher must not be used afterwards. */
  digest(): string;
}

export function createHasher(algorithm: HashAlgorithm): Hasher {
  if (algorithm === 'sha256') {
    const h = createHash('sha256');
    return { update: (d) => void h.update(d), digest: () => h.digest('hex') };
  }
  const h = new Blake3Hasher();
  return {
    update: (d) => void h.update(Buffer.from(d.buffer, d.byteOffset, d.byteLength)),
    digest: () => h.digest('hex'),
  };
}

export function hashBytes(algorithm: HashAlgorithm, data: Uint8Array | string): string {
  if (algorithm !== 'sha256') return blake3Hex(data);
  const buf =
    typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return createHash('sha256').update(buf).digest('hex');
}

export async function hashStream(
  algorithm: HashAlgorithm,
  stream: AsyncIterable<Uint8Array>,
): Promise<{ hash: string; size: number }> {
  const h = createHasher(algorithm);
  let size = 0;
  for await (const chunk of stream) {
    h.update(chunk);
    size += chunk.byteLength;
  }
  return { hash: h.digest(), size };
}

/** Bytes each concurrent file read uses; reused across files, so memory stays bounded. */
export const READ_BUFFER_BYTES = 1024 * 1024;

/**
 * Content hash of a file, read in slices into `buf` (a caller-owned scratch buffer, reused across
 * files so hashing thousands of files allocates nothing per file). A file that fits is one read.
 * Reads until end of file, whatever `size` said.
 */
export async function hashFile(
  algorithm: HashAlgorithm,
  path: string,
  size: number,
  buf: Buffer = Buffer.allocUnsafe(Math.min(Math.max(size, 1), READ_BUFFER_BYTES)),
): Promise<string> {
  const fh = await open(path, 'r');
  try {
    let n = (await fh.read(buf, 0, buf.length, null)).bytesRead;
    // A short read of a regular file means end of file: most files are one read, one-shot hash.
    if (n < buf.length) return hashBytes(algorithm, buf.subarray(0, n));
    const h = createHasher(algorithm);
    while (n > 0) {
      h.update(buf.subarray(0, n));
      n = (await fh.read(buf, 0, buf.length, null)).bytesRead;
    }
    return h.digest();
  } finally {
    await fh.close();
  }
}

/**
 * Copies `src` to `dest` (created here with `mode`; it must not exist) and returns the hash of the
 * bytes copied: one read of each byte does both, and what is hashed is exactly what was written.
 * With `within`, every directory from there down to `dest` is checked to be a real directory
 * before `dest` is created, so a directory swapped for a symlink is not written through; `checked`
 * remembers the directories already checked by this batch of copies (the caller checks each path
 * again before it renames the copy into place).
 */
export function copyHashingSync(
  algorithm: HashAlgorithm,
  src: string,
  dest: string,
  buf: Buffer,
  o: { within?: string | undefined; mode?: number | undefined; checked?: Set<string> } = {},
): string {
  const dir = dirname(dest);
  if (o.within !== undefined && !o.checked?.has(dir)) {
    if (!plainPathInside(o.within, dest))
      throw Object.assign(new Error(`refused to write ${dest}: a parent directory is a symlink`), {
        code: 'ESYMLINK',
      });
    o.checked?.add(dir);
  }
  const from = openSync(src, 'r');
  try {
    const to = openSync(dest, 'wx', o.mode ?? 0o600);
    try {
      const h = createHasher(algorithm);
      for (
        let n = readSync(from, buf, 0, buf.length, null);
        n > 0;
        n = readSync(from, buf, 0, buf.length, null)
      ) {
        const chunk = buf.subarray(0, n);
        h.update(chunk);
        for (let off = 0; off < n; ) off += writeSync(to, chunk, off, n - off);
      }
      return h.digest();
    } finally {
      closeSync(to);
    }
  } finally {
    closeSync(from);
  }
}

/** hashFile for a thread that does nothing else (hash-worker.ts): blocking reads, same result. */
export function hashFileSync(algorithm: HashAlgorithm, path: string, buf: Buffer): string {
  const fd = openSync(path, 'r');
  try {
    let n = readSync(fd, buf, 0, buf.length, null);
    if (n < buf.length) return hashBytes(algorithm, buf.subarray(0, n));
    const h = createHasher(algorithm);
    while (n > 0) {
      h.update(buf.subarray(0, n));
      n = readSync(fd, buf, 0, buf.length, null);
    }
    return h.digest();
  } finally {
    closeSync(fd);
  }
}

/**
 * A stable JSON text: object keys sorted, so equal values always hash equal. The same text as
 * JSON.stringify with sorted keys, written out by hand because a replacer function costs a call
 * per value, which dominates for fingerprints of many thousands of inputs.
 */
export function canonicalJson(value: unknown): string {
  return canonical(value) ?? 'null';
}

function canonical(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const withJson = v as { toJSON?: () => unknown };
  if (typeof withJson.toJSON === 'function') return canonical(withJson.toJSON());
  if (Array.isArray(v)) {
    // Arrays of plain values or of arrays of them (a fingerprint's inputs) have no keys to sort:
    // JSON.stringify writes the same text natively, without a call per value.
    if (v.every(isLeafOrLeafArray)) return JSON.stringify(v);
    let out = '[';
    for (let i = 0; i < v.length; i++) out += `${i === 0 ? '' : ','}${canonical(v[i]) ?? 'null'}`;
    return `${out}]`;
  }
  const o = v as Record<string, unknown>;
  let out = '';
  for (const k of Object.keys(o).sort()) {
    const s = canonical(o[k]);
    if (s !== undefined) out += `${out === '' ? '' : ','}${JSON.stringify(k)}:${s}`;
  }
  return `{${out}}`;
}

const isLeaf = (v: unknown): boolean =>
  v === null ||
  typeof v === 'string' ||
  typeof v === 'boolean' ||
  (typeof v === 'number' && Number.isFinite(v));

const isLeafOrLeafArray = (v: unknown): boolean => isLeaf(v) || (Array.isArray(v) && v.every(isLeaf));

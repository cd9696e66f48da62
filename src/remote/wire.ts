import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, open, readFile, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGunzip, createGzip } from 'node:zlib';
import type { HashAlgorithm } from '../config/types.js';
import { createHasher, hashBytes, hashingTap } from '../fingerprint/hash.js';
import type { BlobStore } from '../store/blobs.js';
import type { BlobRef } from '../store/entry.js';
import { err, ok, type Result } from '../util/result.js';

export type Encoding = 'identity' | 'gzip';

/** How one of our blobs is stored on the remote: under the SHA-256 of its wire bytes. */
export interface WireRef {
  key: string;
  encoding: Encoding;
  /** Bytes on the wire (compressed size for gzip). */
  size: number;
}

/** Smaller blobs go as they are: gzip's framing and a second pass don't pay for a few KB. */
export const COMPRESS_MIN_BYTES = 64 * 1024;
/** Compressed must be at most this fraction of the original to be worth storing compressed. */
export const COMPRESS_MAX_RATIO = 0.9;

/** A blob ready to upload: `file` holds the wire bytes; `temp` files are ours to delete. */
export interface Outgoing extends WireRef {
  file: string;
  temp: boolean;
}

/**
 * Prepares a local blob for the remote. The remote key is always the SHA-256 of the bytes sent:
 * bazel-remote checks exactly that for /cas/, S3 verifies it as the signed payload hash, and it
 * keeps the remote independent of the local hash algorithm (blake3 by default). Large blobs are
 * gzipped in the same pass (zstd is not in Node 20's zlib); gzip output is deterministic for one
 * zlib, so two machines uploading the same output usually agree on the key and HEAD skips it.
 */
export async function encodeBlob(
  blobs: BlobStore,
  algorithm: HashAlgorithm,
  ref: BlobRef,
): Promise<Outgoing> {
  const src = blobs.path(ref.hash);
  if (ref.size < COMPRESS_MIN_BYTES) {
    const key =
      algorithm === 'sha256'
        ? ref.hash
        : createHash('sha256')
            .update(await readFile(src))
            .digest('hex');
    return { key, encoding: 'identity', size: ref.size, file: src, temp: false };
  }
  const raw = createHash('sha256');
  const packed = createHash('sha256');
  let packedSize = 0;
  const tmp = blobs.tempPath('gz');
  try {
    await pipeline(
      createReadStream(src, { highWaterMark: 1024 * 1024 }),
      hashingTap(raw),
      // Level 1: most of gzip's gain on build outputs at a fraction of the CPU of the default.
      createGzip({ level: constants.Z_BEST_SPEED }),
      hashingTap(packed, (n) => {
        packedSize += n;
      }),
      createWriteStream(tmp),
    );
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  if (packedSize <= ref.size * COMPRESS_MAX_RATIO) {
    return { key: packed.digest('hex'), encoding: 'gzip', size: packedSize, file: tmp, temp: true };
  }
  await rm(tmp, { force: true });
  return { key: raw.digest('hex'), encoding: 'identity', size: ref.size, file: src, temp: false };
}

/** Blobs up to this size are received into memory, checked, and written with one call. */
export const IN_MEMORY_MAX_BYTES = 1024 * 1024;

/** What a receiver holds once its body checked out. */
export interface Received {
  /** The decoded bytes, for a blob received into memory (not yet written anywhere). */
  bytes?: Buffer;
}

/**
 * Receives a downloaded blob, decoding on the way, and checks every byte against its name: the
 * decoded bytes against our hash and size, and for a gzip blob the wire bytes against the remote
 * key too. An identity blob's wire bytes are the decoded bytes, so our hash alone checks them: one
 * hash per byte instead of two. Small blobs are kept in memory (the caller writes them); larger
 * ones are streamed into `tmp` (blocking writes with flushes beside them measured slower there).
 * Decoding stops as soon as it passes the expected size, so a hostile "gzip bomb" costs nothing.
 */
export function receiver(
  algorithm: HashAlgorithm,
  ref: BlobRef,
  wire: WireRef,
  tmp: string,
  onBytes: (n: number) => void,
): { consume: (body: Readable) => Promise<void>; check: () => Result<Received, string> } {
  const packed = wire.encoding !== 'identity';
  const inMemory = ref.size <= IN_MEMORY_MAX_BYTES;
  let wireHash = '';
  let wireSize = 0;
  let hash = '';
  let size = 0;
  let bytes: Buffer | undefined;
  const consume = async (body: Readable) => {
    wireSize = 0;
    size = 0;
    bytes = undefined;
    if (!packed && inMemory) {
      // A small identity blob (most of them): read with plain events into one buffer, then hashed
      // in one call. No stream pipeline: per blob its machinery costs more than the bytes.
      const buf = Buffer.allocUnsafe(ref.size);
      await new Promise<void>((resolve, reject) => {
        body.on('data', (chunk: Buffer) => {
          if (wireSize + chunk.byteLength > Math.min(wire.size, ref.size)) {
            body.destroy();
            reject(permanent(`remote blob is larger than the ${wire.size} bytes its entry says`));
            return;
          }
          chunk.copy(buf, wireSize);
          wireSize += chunk.byteLength;
          onBytes(chunk.byteLength);
        });
        body.on('end', resolve);
        body.on('error', reject);
        // Closed without its end (the connection dropped): after 'end' this changes nothing.
        body.on('close', () => reject(new Error('the response was cut off')));
      });
      size = wireSize;
      bytes = buf.subarray(0, size);
      hash = hashBytes(algorithm, bytes);
      return;
    }
    if (!packed) {
      // A large identity blob: hashed and written in batches from plain events, as above. A stream
      // pipeline's stages cost more per chunk than receiving it (bench/remote.mjs, 500 MB).
      const h = createHasher(algorithm);
      await receiveIntoFile(body, tmp, (chunk) => {
        wireSize += chunk.byteLength;
        if (wireSize > Math.min(wire.size, ref.size))
          throw permanent(`remote blob is larger than the ${wire.size} bytes its entry says`);
        h.update(chunk);
        onBytes(chunk.byteLength);
      });
      size = wireSize;
      hash = h.digest();
      return;
    }
    const w = createHash('sha256');
    const h = createHasher(algorithm);
    const counted = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        wireSize += chunk.byteLength;
        if (wireSize > wire.size)
          throw permanent(`remote blob is larger than the ${wire.size} bytes its entry says`);
        w.update(chunk);
        onBytes(chunk.byteLength);
        yield chunk;
      }
    };
    const checked = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        size += chunk.byteLength;
        if (size > ref.size)
          throw permanent(`remote blob decodes to more than the ${ref.size} bytes its entry says`);
        h.update(chunk);
        yield chunk;
      }
    };
    const sink = inMemory ? intoMemory(ref.size, (b) => (bytes = b)) : intoFile(tmp);
    await pipeline(body, counted, createGunzip(), checked, sink);
    wireHash = w.digest('hex');
    hash = h.digest();
  };
  const check = (): Result<Received, string> => {
    if (wireSize !== wire.size || (packed && wireHash !== wire.key))
      return err(
        `remote blob ${wire.key.slice(0, 12)} has ${packed ? `SHA-256 ${wireHash.slice(0, 12)} ` : ''}(${wireSize} bytes), not the ${wire.size} bytes of its name`,
      );
    if (hash !== ref.hash || size !== ref.size)
      return err(
        packed
          ? `remote blob ${wire.key.slice(0, 12)} decodes to ${hash.slice(0, 12)} (${size} bytes), not ${ref.hash.slice(0, 12)} (${ref.size} bytes)`
          : `remote blob ${wire.key.slice(0, 12)} has content hash ${hash.slice(0, 12)} (${size} bytes), not ${ref.hash.slice(0, 12)} (${ref.size} bytes)`,
      );
    return ok(bytes ? { bytes } : {});
  };
  return { consume, check };
}

/** A pipeline sink that gathers at most `size` bytes into one buffer. */
function intoMemory(size: number, done: (b: Buffer) => void) {
  return async (source: AsyncIterable<Buffer>) => {
    const buf = Buffer.allocUnsafe(size);
    let at = 0;
    for await (const chunk of source) {
      chunk.copy(buf, at); // the checked stage has already refused more than `size` bytes
      at += chunk.byteLength;
    }
    done(buf.subarray(0, at));
  };
}

/** Bytes gathered into one write; two writes in flight keep the disk busy while the next gathers. */
const WRITE_BATCH_BYTES = 4 * 1024 * 1024;
const WRITES_IN_FLIGHT = 2;

/** Writes `parts` (`length` bytes) at `position`, finishing a short write (rare for a file). */
async function writeAt(fh: FileHandle, parts: Buffer[], length: number, position: number): Promise<void> {
  const { bytesWritten } = await fh.writev(parts, position);
  if (bytesWritten === length) return;
  const rest = Buffer.concat(parts).subarray(bytesWritten);
  for (let done = 0; done < rest.byteLength; )
    done += (await fh.write(rest, done, rest.byteLength - done, position + bytesWritten + done)).bytesWritten;
}

/**
 * Receives `body` into a new file `path`, written in batches of a few MB (writev) rather than one
 * write per network chunk of 16–64 KB, with the body paused while two writes are in flight.
 * `onChunk` sees each chunk first; what it throws stops the transfer.
 */
async function receiveIntoFile(
  body: Readable,
  path: string,
  onChunk: (chunk: Buffer) => void,
): Promise<void> {
  const fh = await open(path, 'w', 0o644);
  const writing = new Set<Promise<void>>();
  try {
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      let ended = false;
      let batch: Buffer[] = [];
      let batched = 0;
      let at = 0;
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        body.destroy();
        reject(e);
      };
      const flush = () => {
        const w = writeAt(fh, batch, batched, at);
        at += batched;
        batch = [];
        batched = 0;
        writing.add(w);
        if (writing.size >= WRITES_IN_FLIGHT) body.pause();
        w.then(() => {
          writing.delete(w);
          if (failed) return;
          if (writing.size < WRITES_IN_FLIGHT) body.resume();
          if (ended && writing.size === 0) resolve();
        }, fail);
      };
      body.on('data', (chunk: Buffer) => {
        if (failed) return;
        try {
          onChunk(chunk);
        } catch (e) {
          fail(e);
          return;
        }
        batch.push(chunk);
        batched += chunk.byteLength;
        if (batched >= WRITE_BATCH_BYTES) flush();
      });
      body.on('end', () => {
        ended = true;
        if (failed) return; // an 'end' queued before the failure: nothing more is written
        if (batched > 0) flush();
        else if (writing.size === 0) resolve();
      });
      body.on('error', fail);
      // Closed without its end (the connection dropped): after 'end' this changes nothing.
      body.on('close', () => {
        if (!ended) fail(new Error('the response was cut off'));
      });
    });
  } finally {
    // Settled before the close, failed or not: no write may land on a closed (reused) descriptor.
    await Promise.allSettled(writing);
    await fh.close();
  }
}

/** A pipeline sink that writes into a new file `path` in batches (receiveIntoFile). */
function intoFile(path: string) {
  return (source: AsyncIterable<Buffer>) => receiveIntoFile(Readable.from(source), path, () => {});
}

/** An error in a blob's content, not in the transfer: fetching it again would give the same bytes. */
export function permanent(message: string): Error {
  return Object.assign(new Error(message), { permanent: true });
}

export const isPermanent = (e: unknown): boolean => (e as { permanent?: unknown } | null)?.permanent === true;

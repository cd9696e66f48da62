import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGunzip, createGzip } from 'node:zlib';
import type { HashAlgorithm } from '../config/types.js';
import { createHasher, hashingTap } from '../fingerprint/hash.js';
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

/**
 * Streams a downloaded blob into `tmp`, decoding on the way, and checks both names: the SHA-256 of
 * the wire bytes against the remote key, and the decoded bytes against our hash and size. Decoding
 * stops as soon as it passes the expected size, so a hostile "gzip bomb" costs nothing.
 */
export function receiver(
  algorithm: HashAlgorithm,
  ref: BlobRef,
  wire: WireRef,
  tmp: string,
  onBytes: (n: number) => void,
): { consume: (body: Readable) => Promise<void>; check: () => Result<void, string> } {
  let wireHash = '';
  let wireSize = 0;
  let hash = '';
  let size = 0;
  const consume = async (body: Readable) => {
    const w = createHash('sha256');
    const h = createHasher(algorithm);
    wireSize = 0;
    size = 0;
    const stages: Array<
      NodeJS.ReadableStream | NodeJS.WritableStream | ((s: AsyncIterable<Buffer>) => AsyncIterable<Buffer>)
    > = [
      body,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          w.update(chunk);
          wireSize += chunk.byteLength;
          if (wireSize > wire.size)
            throw permanent(`remote blob is larger than the ${wire.size} bytes its entry says`);
          onBytes(chunk.byteLength);
          yield chunk;
        }
      },
    ];
    if (wire.encoding === 'gzip') stages.push(createGunzip());
    stages.push(async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        h.update(chunk);
        size += chunk.byteLength;
        if (size > ref.size)
          throw permanent(`remote blob decodes to more than the ${ref.size} bytes its entry says`);
        yield chunk;
      }
    }, createWriteStream(tmp));
    await (pipeline as (...s: unknown[]) => Promise<void>)(...stages);
    wireHash = w.digest('hex');
    hash = h.digest();
  };
  const check = (): Result<void, string> => {
    if (wireHash !== wire.key || wireSize !== wire.size)
      return err(
        `remote blob ${wire.key.slice(0, 12)} has SHA-256 ${wireHash.slice(0, 12)} (${wireSize} bytes)`,
      );
    if (hash !== ref.hash || size !== ref.size)
      return err(
        `remote blob ${wire.key.slice(0, 12)} decodes to ${hash.slice(0, 12)} (${size} bytes), not ${ref.hash.slice(0, 12)} (${ref.size} bytes)`,
      );
    return ok(undefined);
  };
  return { consume, check };
}

/** An error in a blob's content, not in the transfer: fetching it again would give the same bytes. */
export function permanent(message: string): Error {
  return Object.assign(new Error(message), { permanent: true });
}

export const isPermanent = (e: unknown): boolean => (e as { permanent?: unknown } | null)?.permanent === true;

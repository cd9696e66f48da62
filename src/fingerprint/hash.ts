import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Blake3Hasher, blake3 } from '@napi-rs/blake-hash';
import type { HashAlgorithm } from '../config/types.js';

/** Files up to this size are read whole; larger ones are streamed so memory stays bounded. */
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
  const buf =
    typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return algorithm === 'sha256'
    ? createHash('sha256').update(buf).digest('hex')
    : blake3(buf).toString('hex');
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

/** Content hash of a file, read whole when small and streamed when large. */
export async function hashFile(algorithm: HashAlgorithm, path: string, size: number): Promise<string> {
  if (size <= STREAM_THRESHOLD) return hashBytes(algorithm, await readFile(path));
  return (await hashStream(algorithm, createReadStream(path, { highWaterMark: 1024 * 1024 }))).hash;
}

/** A stable JSON text: object keys sorted, so equal values always hash equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

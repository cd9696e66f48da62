import type { HashAlgorithm } from '../config/types.js';
import type { InputFile } from '../fingerprint/inputs.js';

/** A stat-cache hash is trusted only for files last modified this long before it was recorded. */
export const RACY_WINDOW_NS = 2_000_000_000n;

/*
 * One record per absolute path, fixed-size binary (a hit reads thousands of these, and decoding a
 * msgpack array with bigints cost more than the LMDB lookup itself):
 *   dev f64 | ino f64 | size f64 | mtimeNs i64 | ctimeNs i64 | recordedNs i64 | algo u8 | hash
 */
const HEADER = 8 * 6 + 1;
const DIGEST = 32; // blake3 and sha256 alike; any other length is a record of an older format
const ALGOS: HashAlgorithm[] = ['blake3', 'sha256'];

export function encodeStat(f: InputFile, algo: HashAlgorithm, hash: string, recordedNs: bigint): Buffer {
  const b = Buffer.allocUnsafe(HEADER + DIGEST);
  b.writeDoubleLE(f.dev, 0);
  b.writeDoubleLE(f.ino, 8);
  b.writeDoubleLE(f.size, 16);
  b.writeBigInt64LE(f.mtimeNs, 24);
  b.writeBigInt64LE(f.ctimeNs, 32);
  b.writeBigInt64LE(recordedNs, 40);
  b.writeUInt8(ALGOS.indexOf(algo), 48);
  b.write(hash, HEADER, DIGEST, 'hex');
  return b;
}

/**
 * The recorded hash if `f`'s stat is unchanged and was recorded safely after its last change.
 * `buf` may be a view of LMDB's shared read buffer (getBinaryFast) whose byteLength exceeds its
 * length: only `length` bounds the record.
 */
export function decodeStat(buf: Buffer | undefined, f: InputFile, algo: HashAlgorithm): string | undefined {
  if (!buf || buf.length !== HEADER + DIGEST) return undefined;
  if (
    buf.readDoubleLE(0) !== f.dev ||
    buf.readDoubleLE(8) !== f.ino ||
    buf.readDoubleLE(16) !== f.size ||
    buf.readBigInt64LE(24) !== f.mtimeNs ||
    buf.readBigInt64LE(32) !== f.ctimeNs ||
    ALGOS[buf.readUInt8(48)] !== algo
  )
    return undefined;
  // "Racy git": a file changed in the same timestamp tick as it was hashed keeps its stat, so a
  // hash recorded that close to the file's mtime or ctime proves nothing.
  const recordedNs = buf.readBigInt64LE(40);
  if (f.mtimeNs + RACY_WINDOW_NS >= recordedNs || f.ctimeNs + RACY_WINDOW_NS >= recordedNs) return undefined;
  return buf.toString('hex', HEADER, HEADER + DIGEST);
}

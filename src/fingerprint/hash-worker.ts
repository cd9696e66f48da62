import { parentPort, workerData } from 'node:worker_threads';
import type { HashAlgorithm } from '../config/types.js';
import { copyHashingSync, hashFileSync, READ_BUFFER_BYTES } from './hash.js';

/**
 * One hashing thread of hash-pool.ts: hashes the files it is sent (copying each to `dest` on the
 * way when given), one reused buffer, blocking I/O.
 */
const algorithm = (workerData as { algorithm: HashAlgorithm }).algorithm;
const buf = Buffer.allocUnsafe(4 * READ_BUFFER_BYTES);
/** Directories checked for this pool's copies (a pool lives for one batch: hash-pool.ts). */
const checked = new Set<string>();
parentPort?.on(
  'message',
  ({
    i,
    path,
    dest,
    within,
    mode,
  }: {
    i: number;
    path: string;
    dest?: string;
    within?: string;
    mode?: number;
  }) => {
    try {
      const hash = dest
        ? copyHashingSync(algorithm, path, dest, buf, { within, mode, checked })
        : hashFileSync(algorithm, path, buf);
      parentPort?.postMessage({ i, hash });
    } catch (e) {
      const x = e as NodeJS.ErrnoException;
      parentPort?.postMessage({ i, error: { message: x.message, code: x.code } });
    }
  },
);

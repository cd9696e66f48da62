import { parentPort, workerData } from 'node:worker_threads';
import type { HashAlgorithm } from '../config/types.js';
import { copyHashingSync, hashFileSync, READ_BUFFER_BYTES } from './hash.js';

/**
 * One hashing thread of hash-pool.ts: hashes the files it is sent (copying each to `dest` on the
 * way when given), one reused buffer, blocking I/O.
 */
const algorithm = (workerData as { algorithm: HashAlgorithm }).algorithm;
const buf = Buffer.allocUnsafe(4 * READ_BUFFER_BYTES);
parentPort?.on(
  'message',
  ({ i, path, dest, within }: { i: number; path: string; dest?: string; within?: string }) => {
    try {
      const hash = dest
        ? copyHashingSync(algorithm, path, dest, buf, within)
        : hashFileSync(algorithm, path, buf);
      parentPort?.postMessage({ i, hash });
    } catch (e) {
      const x = e as NodeJS.ErrnoException;
      parentPort?.postMessage({ i, error: { message: x.message, code: x.code } });
    }
  },
);

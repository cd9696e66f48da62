import { parentPort, workerData } from 'node:worker_threads';
import type { HashAlgorithm } from '../config/types.js';
import { hashFileSync, READ_BUFFER_BYTES } from './hash.js';

/** One hashing thread of hash-pool.ts: hashes the files it is sent, one reused buffer, sync reads. */
const algorithm = (workerData as { algorithm: HashAlgorithm }).algorithm;
const buf = Buffer.allocUnsafe(4 * READ_BUFFER_BYTES);
parentPort?.on('message', ({ i, path }: { i: number; path: string }) => {
  try {
    parentPort?.postMessage({ i, hash: hashFileSync(algorithm, path, buf) });
  } catch (e) {
    const x = e as NodeJS.ErrnoException;
    parentPort?.postMessage({ i, error: { message: x.message, code: x.code } });
  }
});

import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import type { HashAlgorithm } from '../config/types.js';
import { besideCode } from '../package-dir.js';
import { note } from '../util/trace.js';
import { copyHashingSync, hashFile, hashFileSync, READ_BUFFER_BYTES } from './hash.js';

const require = createRequire(import.meta.url);

/**
 * Below this many bytes to hash, starting threads costs more than it saves: the main thread
 * hashes (the hit path, where the input manifest answers, never gets here).
 */
export const POOL_MIN_BYTES = 64 * 1024 * 1024;

/** Hashing threads worth starting here: one per core, none on a single core. */
export function poolThreads(): number {
  const n = availableParallelism();
  return n > 1 ? Math.min(n, 8) : 0;
}

type Reply = { i: number; hash?: string; error?: { message: string; code?: string } };

/**
 * Hashes files on `threads` threads: this one and `threads - 1` workers (blake3 and sha256 are
 * CPU-bound at gigabytes per second, so one thread cannot keep up with the page cache). This thread
 * starts at once and takes files from the same queue while the workers start up (~15-20 ms each);
 * it yields between files so that their replies are taken in. Each worker keeps two files queued
 * so it never waits for the next path; memory is one read buffer per thread.
 */
export async function hashFilesInPool(
  algorithm: HashAlgorithm,
  jobs: HashJob[],
  threads: number,
  /** false: only the workers hash (tests use it to be sure the workers did the work). */
  hereToo = true,
): Promise<string[]> {
  // Loaded here, not imported at the top: loading worker_threads is ~1 ms of every start, and a hit
  // or a small miss never starts a worker. require(), not import(): import() from the bundle's cached
  // code fails on Node 20 (src/util/import-module.ts), and initialises the ESM loader (~2 ms).
  const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');
  const hashes = new Array<string>(jobs.length);
  const paths = jobs.map((j) => j.abs);
  const workers = Array.from(
    { length: Math.min(hereToo ? threads - 1 : threads, paths.length) },
    () => new Worker(besideCode('fingerprint/hash-worker.js'), { workerData: { algorithm } }),
  );
  note(`hashing threads: ${workers.length + (hereToo ? 1 : 0)}`);
  let next = 0;
  const here = async () => {
    if (!hereToo) return;
    const buf = Buffer.allocUnsafe(4 * READ_BUFFER_BYTES);
    const checked = new Set<string>();
    while (next < paths.length) {
      const i = next++;
      hashes[i] = hashJobSync(algorithm, jobs[i]!, buf, checked);
      await new Promise(setImmediate);
    }
  };
  try {
    await Promise.all([
      here().catch((e) => {
        next = paths.length; // stop handing out work everywhere
        throw e;
      }),
      ...workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            let inFlight = 0;
            const send = () => {
              if (next >= paths.length) return;
              const i = next++;
              inFlight++;
              const { dest, within, mode } = jobs[i]!;
              w.postMessage({ i, path: paths[i], dest, within, mode });
            };
            w.on('message', (r: Reply) => {
              inFlight--;
              if (r.error) {
                next = paths.length; // stop handing out work everywhere
                reject(Object.assign(new Error(r.error.message), { code: r.error.code }));
                return;
              }
              hashes[r.i] = r.hash!;
              send();
              if (inFlight === 0) resolve();
            });
            w.on('error', reject);
            send();
            send();
            if (inFlight === 0) resolve();
          }),
      ),
    ]);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return hashes;
}

/** Below this many bytes in all, files are hashed one after another with blocking reads. */
export const SYNC_MAX_BYTES = 8 * 1024 * 1024;

/** A file to hash; with `dest`, also copied there (created; see copyHashingSync) as it is read. */
export interface HashJob {
  abs: string;
  size: number;
  dest?: string | undefined;
  /** With `dest`: the directory below which every parent of `dest` must be a real directory. */
  within?: string | undefined;
  /** With `dest`: the mode it is created with (less the umask); 0o600 if not given. */
  mode?: number | undefined;
}

const hashJobSync = (algorithm: HashAlgorithm, j: HashJob, buf: Buffer, checked: Set<string>): string =>
  j.dest
    ? copyHashingSync(algorithm, j.abs, j.dest, buf, { within: j.within, mode: j.mode, checked })
    : hashFileSync(algorithm, j.abs, buf);

/**
 * Content hashes of `files`, in order, by the cheapest way for their total size: blocking reads
 * for a few small files (a miss usually re-reads one; the async file API alone costs ~5 ms to
 * warm up in a fresh process), concurrent async reads for more, and hashing threads from
 * POOL_MIN_BYTES on. `threads` defaults to one per core. Jobs with a `dest` are copied too.
 */
export async function hashFiles(
  algorithm: HashAlgorithm,
  files: HashJob[],
  o: { threads?: number; concurrency?: number } = {},
): Promise<string[]> {
  const total = files.reduce((n, f) => n + f.size, 0);
  const threads = o.threads ?? poolThreads();
  if (threads > 1 && total >= POOL_MIN_BYTES && files.length > 1)
    return hashFilesInPool(algorithm, files, threads);
  if (total < SYNC_MAX_BYTES || files.some((f) => f.dest)) {
    const buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const checked = new Set<string>();
    return files.map((f) => hashJobSync(algorithm, f, buf, checked));
  }
  const out = new Array<string>(files.length);
  let next = 0;
  const worker = async () => {
    const buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    while (next < files.length) {
      const i = next++;
      out[i] = await hashFile(algorithm, files[i]!.abs, files[i]!.size, buf);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 16, files.length) }, worker));
  return out;
}

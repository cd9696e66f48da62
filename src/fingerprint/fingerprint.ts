import { relative } from 'node:path';
import type { TaskSpec } from '../config/resolve.js';
import type { HashAlgorithm } from '../config/types.js';
import { toPosix } from '../util/paths.js';
import { ok, type Result } from '../util/result.js';
import { canonicalJson, hashBytes, hashFile, READ_BUFFER_BYTES } from './hash.js';
import { hashFilesInPool, POOL_MIN_BYTES, poolThreads } from './hash-pool.js';
import { expandInputs, type InputFile } from './inputs.js';

/** Bump when anything about how keys are derived changes: old entries then simply miss. */
export const FINGERPRINT_SCHEMA = 1;

/**
 * Everything that went into a key, kept with the entry so that a later miss can be explained
 * field by field.
 */
export interface Fingerprint {
  schema: number;
  algorithm: HashAlgorithm;
  task: string;
  argv: string[];
  shell: boolean;
  /** Working directory relative to the project root ('' for the root). */
  cwd: string;
  /** Declared env vars; null when unset (distinct from set to ''). */
  env: Record<string, string | null>;
  /** [path relative to root, content hash, executable] sorted by path. */
  inputs: Array<[string, string, boolean]>;
  outputs: string[];
  salt: string;
}

/**
 * Remembers content hashes by (dev, ino, size, mtime, ctime) so unchanged files are not re-read.
 * Implementations must not return a hash recorded while the file could still have been changing
 * within the same timestamp tick (see StatCache in store/).
 */
export interface HashCache {
  get(file: InputFile, algorithm: HashAlgorithm): string | undefined;
  set(file: InputFile, algorithm: HashAlgorithm, hash: string, recordedAtNs: bigint): void;
}

export interface FingerprintOptions {
  algorithm: HashAlgorithm;
  salt: string;
  cacheDir: string;
  env?: NodeJS.ProcessEnv;
  hashCache?: HashCache;
  /** Concurrent file reads; the libuv pool does the I/O, the hash runs natively. */
  concurrency?: number;
  /** Hashing threads for large cold inputs (default: one per core; 0 or 1: none). */
  threads?: number;
}

export interface Fingerprinted {
  key: string;
  fingerprint: Fingerprint;
  /** Bytes of input read (not served from the stat cache), for diagnostics and benchmarks. */
  bytesHashed: number;
}

/** Globs (relative to the task's cwd) never taken as inputs: the outputs and the cache directory. */
export function excludedFromInputs(spec: Pick<TaskSpec, 'cwd' | 'outputs'>, cacheDir: string): string[] {
  const cacheRel = toPosix(relative(spec.cwd, cacheDir));
  const exclude = [...spec.outputs];
  if (cacheRel && !cacheRel.startsWith('..')) exclude.push(`${cacheRel}/**`);
  return exclude;
}

export async function fingerprintTask(spec: TaskSpec, o: FingerprintOptions): Promise<Result<Fingerprinted>> {
  const exclude = excludedFromInputs(spec, o.cacheDir);
  const files = await expandInputs({ root: spec.root, cwd: spec.cwd, globs: spec.inputs, exclude });
  if (!files.ok) return files;

  const startedNs = BigInt(Date.now()) * 1_000_000n;
  const hashes = new Array<string>(files.value.length);
  // The stat cache answers first; only what it cannot answer is read.
  const toHash: number[] = [];
  let bytesHashed = 0;
  files.value.forEach((f, i) => {
    const h = o.hashCache?.get(f, o.algorithm);
    if (h === undefined) {
      toHash.push(i);
      bytesHashed += f.size;
    } else hashes[i] = h;
  });
  const remember = (i: number, h: string) => {
    hashes[i] = h;
    o.hashCache?.set(files.value[i]!, o.algorithm, h, startedNs);
  };

  const threads = o.threads ?? poolThreads();
  if (threads > 1 && bytesHashed >= POOL_MIN_BYTES && toHash.length > 1) {
    const pooled = await hashFilesInPool(
      o.algorithm,
      toHash.map((i) => files.value[i]!.abs),
      threads,
    );
    for (const [k, i] of toHash.entries()) remember(i, pooled[k]!);
  } else {
    let next = 0;
    const worker = async () => {
      let buf: Buffer | undefined; // allocated on the first file this worker actually reads
      while (next < toHash.length) {
        const i = toHash[next++]!;
        const f = files.value[i]!;
        buf ??= Buffer.allocUnsafe(READ_BUFFER_BYTES);
        remember(i, await hashFile(o.algorithm, f.abs, f.size, buf));
      }
    };
    await Promise.all(Array.from({ length: o.concurrency ?? 16 }, worker));
  }

  const env = o.env ?? process.env;
  const fingerprint: Fingerprint = {
    schema: FINGERPRINT_SCHEMA,
    algorithm: o.algorithm,
    task: spec.name,
    argv: spec.command,
    shell: spec.shell,
    cwd: toPosix(relative(spec.root, spec.cwd)),
    env: Object.fromEntries(spec.env.map((name) => [name, env[name] ?? null])),
    inputs: files.value.map((f, i) => [f.path, hashes[i]!, (f.mode & 0o111) !== 0]),
    outputs: [...spec.outputs],
    salt: o.salt,
  };
  return ok({ key: keyOf(fingerprint), fingerprint, bytesHashed });
}

export function keyOf(fingerprint: Fingerprint): string {
  return hashBytes(fingerprint.algorithm, canonicalJson(fingerprint));
}

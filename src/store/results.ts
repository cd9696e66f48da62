import { createWriteStream, type Stats } from 'node:fs';
import { chmod, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { durabilityOf, resolvePolicy, type Settings } from '../config/resolve.js';
import type { Durability } from '../config/types.js';
import { createHasher, hashBytes, hashFile, hashingTap, hashStream } from '../fingerprint/hash.js';
import { resultFingerprint, resultKey, resultLabel } from '../fingerprint/result-key.js';
import { formatBytes } from '../util/format.js';
import { mkdirs } from '../util/mkdirs.js';
import { monotonicMs } from '../util/monotonic.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { tempSuffix } from '../util/temp-name.js';
import type { BlobProblem } from './blobs.js';
import type { BlobRef, Entry, ResultEncoding } from './entry.js';
import { STORE_SCHEMA } from './entry.js';
import { evictAfterSave } from './evict.js';
import { SMALL_RESULT_BYTES } from './index/small-blobs.js';
import { provenance } from './provenance.js';
import type { Store } from './store.js';

/**
 * Data handed to `cache save|get` and the SDK: bytes or text in memory, a file by path, or a stream.
 * Files and streams are hashed and copied in 1 MB slices, so their size is bounded only by the disk.
 */
export type ResultData = string | Uint8Array | { path: string } | AsyncIterable<Uint8Array>;

/** Results up to this size saved fast wait in the pending journal for their blob (saveResult). */
const JOURNALED_BYTES = 64 * 1024;

/** Where an audit line says an event came from: the operation, and `via=sdk` for the SDK. */
export interface AuditSource {
  source: string;
  via?: string;
}

const isPath = (d: ResultData): d is { path: string } =>
  typeof d === 'object' && d !== null && !(d instanceof Uint8Array) && 'path' in d;

/** Content hash of the input, streamed for files and streams. */
export async function hashInput(
  algorithm: Settings['hashAlgorithm'],
  input: ResultData,
): Promise<Result<string>> {
  if (typeof input === 'string' || input instanceof Uint8Array) return ok(hashBytes(algorithm, input));
  if (isPath(input)) {
    try {
      const s = await stat(input.path);
      if (!s.isFile()) return err(failure('input', `input ${input.path} is not a file`));
      return ok(await hashFile(algorithm, input.path, s.size));
    } catch (e) {
      return err(
        failure('input', `cannot read input file ${input.path}: ${errorMessage(e)}`, 'check the path'),
      );
    }
  }
  return ok((await hashStream(algorithm, input)).hash);
}

/** The key `save` and `get` use for (task, input). */
export async function keyForInput(
  settings: Settings,
  task: string,
  input: ResultData,
): Promise<Result<string>> {
  const h = await hashInput(settings.hashAlgorithm, input);
  return h.ok ? ok(resultKey(settings.hashAlgorithm, task, h.value, settings.salt)) : h;
}

/** A path output's file: its stats, or why it cannot be saved. */
async function statOutput(path: string): Promise<Result<Stats>> {
  let s: Stats;
  try {
    s = await stat(path);
  } catch (e) {
    return err(failure('input', `cannot read output file ${path}: ${errorMessage(e)}`, 'check the path'));
  }
  return s.isFile() ? ok(s) : err(failure('input', `output ${path} is not a file`));
}

/** Writes `output` as a blob file; `file`: a path output's stats (statOutput). */
async function putOutput(
  store: Store,
  settings: Settings,
  output: ResultData,
  file: Stats | undefined,
): Promise<Result<BlobRef & { mode: number; name: string }>> {
  const algo = settings.hashAlgorithm;
  if (typeof output === 'string' || output instanceof Uint8Array) {
    const bytes = typeof output === 'string' ? Buffer.from(output) : output;
    return ok({ ...(await store.blobs.putBytes(algo, bytes)), mode: 0o644, name: 'result' });
  }
  if (isPath(output)) {
    if (!file) throw new Error('putOutput: a path output without its stats'); // statOutput's
    const ref = await store.blobs.putFile(algo, output.path, file.size);
    return ok({ ...ref, mode: file.mode & 0o777, name: safeName(basename(output.path)) });
  }
  // A stream: written to tmp/ while hashed, then renamed to its content address.
  const tmp = store.blobs.tempPath();
  const hasher = createHasher(algo);
  let size = 0;
  try {
    await pipeline(
      output,
      hashingTap(hasher, (n) => {
        size += n;
      }),
      createWriteStream(tmp),
    );
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const hash = hasher.digest();
  await store.blobs.adopt(tmp, hash);
  return ok({ hash, size, mode: 0o644, name: 'result' });
}

/**
 * An output whose bytes the commit itself stores (Store.commit): a small result, kept in the index
 * (index/small-blobs.ts; a small file is read whole for it), or, saved fast, bytes that wait in the
 * pending journal and are written as a blob with the commit, after the save returns. Undefined for
 * anything else, which putOutput writes as a blob file first.
 */
async function bytesToCommit(
  output: ResultData,
  durability: Durability,
  file: Stats | undefined,
): Promise<{ bytes: Uint8Array; mode: number; name: string } | undefined> {
  if (typeof output === 'string' || output instanceof Uint8Array) {
    const bytes = typeof output === 'string' ? Buffer.from(output) : output;
    const most = durability === 'fast' ? JOURNALED_BYTES : SMALL_RESULT_BYTES;
    return bytes.byteLength <= most ? { bytes, mode: 0o644, name: 'result' } : undefined;
  }
  if (!isPath(output) || !file || file.size > SMALL_RESULT_BYTES) return undefined;
  // Read whole, then measured again: the file may have grown since its stat.
  const bytes = await readFile(output.path).catch(() => undefined);
  if (!bytes || bytes.byteLength > SMALL_RESULT_BYTES) return undefined;
  return { bytes, mode: file.mode & 0o777, name: safeName(basename(output.path)) };
}

/** The recorded name of a result: informative only, never used as a restore path. */
const safeName = (n: string): string =>
  /^[\w@%+=:,.-]{1,200}$/.test(n) && n !== '.' && n !== '..' ? n : 'result';

export interface SaveOptions extends AuditSource {
  /** How long producing the output took; default: the time since this key last missed (within 24 h). */
  durationMs?: number;
  encoding?: ResultEncoding;
  now?: number;
}

export interface Saved {
  key: string;
  size: number;
  /** Content hash of the stored output. */
  hash: string;
}

/** Stores `output` under (task, input). The entry is committed only once its blob is in place. */
export async function saveResult(
  store: Store,
  settings: Settings,
  task: string,
  input: ResultData,
  output: ResultData,
  o: SaveOptions,
): Promise<Result<Saved>> {
  const policy = resolvePolicy(settings, task);
  if (!policy.ok) return policy;
  const inputHash = await hashInput(settings.hashAlgorithm, input);
  if (!inputHash.ok) return inputHash;
  const fingerprint = resultFingerprint(settings.hashAlgorithm, task, inputHash.value, settings.salt);
  const key = resultKey(settings.hashAlgorithm, task, inputHash.value, settings.salt);
  const fields = { task, hash: key.slice(0, 12), via: o.via };

  // A path output's file is looked at once: over the limit before anything is copied, small or not.
  const checked = isPath(output) ? await statOutput(output.path) : undefined;
  if (checked && !checked.ok) return checked;
  const file = checked?.value;
  if (file && file.size > policy.value.maxEntryBytes) return tooLarge(file.size, policy.value.maxEntryBytes);
  const durability = durabilityOf(settings, 'result');
  const small = await bytesToCommit(output, durability, file);
  const data = small?.bytes;
  let put: Result<BlobRef & { mode: number; name: string }>;
  try {
    put = small
      ? ok({
          hash: hashBytes(settings.hashAlgorithm, small.bytes),
          size: small.bytes.byteLength,
          mode: small.mode,
          name: small.name,
        })
      : await putOutput(store, settings, output, file);
  } catch (e) {
    return fileFailure(e);
  }
  if (!put.ok) return put;
  if (put.value.size > policy.value.maxEntryBytes)
    return tooLarge(put.value.size, policy.value.maxEntryBytes);

  const now = o.now ?? Date.now();
  const missedAt = store.takeMiss(key, now);
  const durationMs = o.durationMs ?? (missedAt !== undefined ? now - missedAt : 0);
  const { hash, size, mode, name } = put.value;
  const entry: Entry = {
    schema: STORE_SCHEMA,
    key,
    task,
    algorithm: settings.hashAlgorithm,
    outputs: [{ path: name, type: 'file', mode, size, hash }],
    outputGlobs: [],
    cwd: '',
    logs: { stdout: null, stderr: null, chunks: [] },
    exitCode: 0,
    durationMs: Math.round(durationMs),
    createdAt: now,
    bytes: size,
    ttlMs: policy.value.ttlMs,
    provenance: provenance(settings.root),
    result: { encoding: o.encoding ?? 'raw' },
  };
  let committed: Result<void>;
  try {
    committed = await store.commit(entry, fingerprint, resultLabel(task), {
      durability,
      ...(data ? { data } : {}),
    });
  } catch (e) {
    committed = fileFailure(e); // the blob written with the commit (Store.withBytes)
  }
  if (!committed.ok) {
    store.log('ERROR', o.source, { ...fields, error: committed.error.message });
    return committed;
  }
  store.log('SAVE', o.source, { ...fields, bytes: size });
  // Over the cache limit: evict as a run's save does (bounded in time, the new entry is kept, every
  // removal audited). The save itself has succeeded whatever happens here; the next save or gc
  // evicts what this one could not.
  // A fast save is counted once its background commit lands: eviction waits for that.
  await store.afterCommit(key, () =>
    evictAfterSave(store, settings, { now, protect: key, source: o.source, info: () => {} }).catch(() => {}),
  );
  return ok({ key, size, hash });
}

/**
 * A file operation of a save that failed (the disk full, the cache read-only): a cache failure,
 * said in one line, as a run's save says it. Anything else is a bug and is thrown on.
 */
function fileFailure(e: unknown): Result<never> {
  if (typeof (e as NodeJS.ErrnoException)?.syscall !== 'string') throw e;
  return err(failure('cache', `cannot save the result: ${errorMessage(e)}`));
}

function tooLarge(size: number, limit: number): Result<never> {
  return err(
    failure(
      'cache',
      `not cached: the result is ${formatBytes(size)}, over the ${formatBytes(limit)} per-entry limit of its policy`,
      'raise policies.<task>.maxSizeBytes in taskvault.config.ts',
    ),
  );
}

/** Where a hit goes: a file (written whole and verified before it appears) or memory. */
export type GetTarget = { kind: 'file'; path: string } | { kind: 'bytes' };

export type Got =
  | { hit: true; key: string; size: number; entry: Entry; expiresAt: number; data?: Buffer }
  | { hit: false; key: string; why: 'absent' | 'expired' | 'corrupt' };

export interface GetOptions extends AuditSource {
  now?: number;
}

/**
 * Looks (task, input) up and serves the stored output. A blob that does not match its name is a
 * miss (the entry and blob are dropped and an ERROR line logged); on a miss nothing is written.
 */
export async function getResult(
  store: Store,
  settings: Settings,
  task: string,
  input: ResultData,
  target: GetTarget,
  o: GetOptions,
): Promise<Result<Got>> {
  const started = monotonicMs();
  const keyed = await keyForInput(settings, task, input);
  if (!keyed.ok) return keyed;
  const key = keyed.value;
  const now = o.now ?? Date.now();
  const fields = { task, hash: key.slice(0, 12), via: o.via };
  const miss = (why: 'absent' | 'expired' | 'corrupt'): Result<Got> => {
    store.count('misses', 1, task);
    store.markMiss(key, now);
    store.log('MISS', o.source, { ...fields, reason: why === 'absent' ? undefined : why });
    return ok({ hit: false, key, why });
  };

  // Saved by this process a moment ago: its blob is written with its commit, which comes first.
  if (store.isPending(key)) await store.settle();
  const entry = store.getEntry(key);
  const out = entry?.outputs[0];
  if (!entry || !out || out.type !== 'file') return miss('absent');
  const policy = resolvePolicy(settings, task);
  const ttlMs = policy.ok ? policy.value.ttlMs : entry.ttlMs;
  if (entry.createdAt + ttlMs <= now) {
    await store.remove(key, 'ttl');
    store.log('EVICT', o.source, { ...fields, reason: 'ttl' });
    return miss('expired');
  }

  const ref = { hash: out.hash, size: out.size };
  const corrupt = async (problem: BlobProblem): Promise<Result<Got>> => {
    const detail = `${problem.kind}: ${problem.detail}`;
    await store.blobs.remove(ref.hash, problem.inIndex);
    await store.remove(key);
    store.log('ERROR', o.source, { ...fields, error: `blob ${detail}` });
    return miss('corrupt');
  };
  let data: Buffer | undefined;
  if (target.kind === 'bytes') {
    const read = await store.blobs.readVerified(entry.algorithm, ref);
    if (!read.ok) return corrupt(read.error);
    data = read.value;
  } else {
    const dest = resolve(target.path);
    const tmp = join(dirname(dest), `.${basename(dest)}.tv-${tempSuffix()}.tmp`);
    try {
      await mkdirs(dirname(dest));
      const problem = await store.blobs.copyVerified(entry.algorithm, ref, tmp, out.mode);
      if (problem) return corrupt(problem);
      await chmod(tmp, out.mode);
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      return err(
        failure('cache', `cannot write ${target.path}: ${errorMessage(e)}`, 'check the output path'),
      );
    }
  }

  bookHit(store, task, key, out.size, { ...o, now, savedMs: entry.durationMs - (monotonicMs() - started) });
  const got: Got = { hit: true, key, size: out.size, entry, expiresAt: entry.createdAt + ttlMs };
  if (data) got.data = data;
  return ok(got);
}

/** A hit's bookkeeping: counts and last access (batched by the store), and its audit line. */
function bookHit(
  store: Store,
  task: string,
  key: string,
  bytes: number,
  o: AuditSource & { now: number; savedMs: number },
): void {
  store.recordHit(key, { now: o.now, savedMs: o.savedMs });
  store.log('HIT', o.source, { task, hash: key.slice(0, 12), via: o.via, bytes });
}

/**
 * Books hits a client served from its own memory of results the index gave it (python/taskvault,
 * kept valid by store/generation.ts), each as getResult books one: hit counts, last access, time
 * saved, an audit line. An entry removed since is skipped. Returns how many were booked.
 */
export function bookServedHits(
  store: Store,
  hits: ReadonlyArray<{ task: string; key: string }>,
  o: AuditSource & { now?: number },
): number {
  const now = o.now ?? Date.now();
  let booked = 0;
  for (const { task, key } of hits) {
    const entry = store.getEntry(key);
    const out = entry?.outputs[0];
    if (!entry || out?.type !== 'file' || entry.task !== task) continue;
    bookHit(store, task, key, out.size, { ...o, now, savedMs: entry.durationMs });
    booked++;
  }
  return booked;
}

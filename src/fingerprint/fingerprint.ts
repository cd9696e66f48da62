import { relative } from 'node:path';
import type { TaskSpec } from '../config/resolve.js';
import type { HashAlgorithm } from '../config/types.js';
import { toPosix } from '../util/paths.js';
import { ok, type Result } from '../util/result.js';
import { canonicalJson, hashBytes } from './hash.js';
import { hashFiles } from './hash-pool.js';
import type { InputFile } from './input-file.js';
import { expandInputs, inputGlobs, type PriorListing } from './inputs.js';
import {
  columns,
  fileAt,
  fileUnchanged,
  type Manifest,
  type ManifestPeek,
  manifestId,
  unchangedFiles,
} from './manifest.js';

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
  /** Hash of the bytes the command got on stdin, when they were read to key it (runner/stdin.ts). */
  stdin?: string;
}

/** Where input manifests (manifest.ts) are kept between runs. */
export interface ManifestStore {
  get(id: string, algorithm: HashAlgorithm, root: string): Manifest | undefined;
  /** The manifest's header, key and stamp without its file list (for the resident daemon). */
  peek?(id: string, algorithm: HashAlgorithm, root: string): ManifestPeek | undefined;
  put(id: string, manifest: Manifest): void;
}

export interface FingerprintOptions {
  algorithm: HashAlgorithm;
  salt: string;
  cacheDir: string;
  env?: NodeJS.ProcessEnv;
  manifests?: ManifestStore;
  /** Hash of stdin's bytes when they are part of the key (absent: stdin is not, as before). */
  stdin?: string;
  /** Concurrent file reads; the libuv pool does the I/O, the hash runs natively. */
  concurrency?: number;
  /** Hashing threads for large cold inputs (default: one per core; 0 or 1: none). */
  threads?: number;
  /**
   * Leave the manifest to `saveManifest()` instead of writing it before returning: a miss writes
   * it once the command has started, off the path to it.
   */
  deferManifest?: boolean;
  /**
   * A resident watcher's word (src/daemon/, via resident.ts) that the inputs are still exactly as
   * `prior` recorded them, asked instead of the stat walk; false or a failure: the walk decides.
   */
  unchangedSince?: (id: string, prior: { stamp?: string; count: number }) => Promise<boolean>;
}

export interface Fingerprinted {
  key: string;
  /** Built on first use: a hit whose inputs all match their manifest never needs it. */
  readonly fingerprint: Fingerprint;
  /** Bytes of input read (not answered by the manifest), for diagnostics and benchmarks. */
  bytesHashed: number;
  /** The inputs as statted, with their hashes (same order): what a re-check compares against. */
  readonly files: InputFile[];
  readonly hashes: string[];
  /** Wall clock (ms) once every input was hashed: edits near it may not show in a stat. */
  hashedAtMs: number;
  /** The file list with the directory listing that vouches for it, for a cheap re-check. */
  readonly listed: PriorListing;
  /** Declared input globs that matched no file (see Expanded.unmatched; none from a manifest). */
  unmatchedInputs: string[];
  /**
   * Writes the input manifest if it changed (with `deferManifest`; otherwise already done). Once
   * only; never throws. Its content is the stats taken before the command, whenever it is called.
   */
  saveManifest(): void;
}

/** Globs (relative to the task's cwd) never taken as inputs: the outputs and the cache directory. */
export function excludedFromInputs(spec: Pick<TaskSpec, 'cwd' | 'outputs'>, cacheDir: string): string[] {
  const cacheRel = toPosix(relative(spec.cwd, cacheDir));
  const exclude = [...spec.outputs];
  // Also when above cwd ('../.taskvault/cache/**'): an input glob reaching up would take it in.
  if (cacheRel && !cacheRel.startsWith('/')) exclude.push(`${cacheRel}/**`);
  return exclude;
}

export async function fingerprintTask(spec: TaskSpec, o: FingerprintOptions): Promise<Result<Fingerprinted>> {
  const exclude = excludedFromInputs(spec, o.cacheDir);
  const { positive, ignore } = inputGlobs(spec.inputs, exclude, spec.cwd);
  const env = o.env ?? process.env;
  const rest: Omit<Fingerprint, 'inputs'> = {
    schema: FINGERPRINT_SCHEMA,
    algorithm: o.algorithm,
    task: spec.name,
    argv: spec.command,
    shell: spec.shell,
    cwd: toPosix(relative(spec.root, spec.cwd)),
    env: Object.fromEntries(spec.env.map((name) => [name, env[name] ?? null])),
    outputs: [...spec.outputs],
    salt: o.salt,
    // Only when keyed: every other run's key stays what it was.
    ...(o.stdin !== undefined ? { stdin: o.stdin } : {}),
  };
  const restHash = hashBytes('blake3', canonicalJson(rest));
  const id = o.manifests && manifestId(o.algorithm, spec.root, spec.cwd, positive, ignore);
  // A resident daemon vouching for the manifest: its key holds, and no file list is even decoded.
  const peek = id && o.unchangedSince ? o.manifests!.peek?.(id, o.algorithm, spec.root) : undefined;
  const vouched = peek && (await vouchedByDaemon(id!, peek, restHash, rest, o));
  if (vouched) return ok(vouched);
  const prior = peek ? peek.decode() : id ? o.manifests!.get(id, o.algorithm, spec.root) : undefined;
  // Taken before anything is listed or statted: what the manifest records trust by.
  const startedMs = Date.now();
  const unchanged = prior ? unchangedFiles(prior, spec.cwd, spec.root) : -1;
  // The repeat run: same command, and no input or directory changed since the manifest.
  if (prior?.restHash === restHash && unchanged === prior.files.paths.length) {
    return ok(
      fingerprinted(prior.key, rest, prior.digests, 0, Date.now(), prior, () =>
        prior.files.paths.map((_, i) => fileAt(prior.files, i)),
      ),
    );
  }

  // The files before the first changed one were statted just now: not again.
  const known =
    prior && unchanged > 0 ? { count: unchanged, at: (i: number) => fileAt(prior.files, i) } : undefined;
  const expanded = await expandInputs(
    { root: spec.root, cwd: spec.cwd, globs: spec.inputs, exclude },
    prior,
    known,
  );
  if (!expanded.ok) return expanded;
  const { files, listing, fromPrior, unmatched } = expanded.value;

  // Answered by the manifest where the stat is unchanged, else by reading the file. The manifest's
  // own file list: its digests in one copy, the changed files' written over them below.
  const digests = fromPrior
    ? Buffer.from(prior!.digests.subarray(0, DIGEST_BYTES * files.length))
    : Buffer.allocUnsafe(DIGEST_BYTES * files.length);
  const toHash: number[] = [];
  let bytesHashed = 0;
  let samePlace = prior !== undefined && prior.files.paths.length === files.length;
  let byPath: Map<string, number> | undefined;
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    let j: number | undefined = i;
    if (!fromPrior && prior && prior.files.paths[i] !== f.path) {
      byPath ??= new Map(prior.files.paths.map((p, k) => [p, k]));
      j = byPath.get(f.path);
      samePlace = false;
    }
    if (prior && j !== undefined && fileUnchanged(prior, j, f)) {
      if (!fromPrior) prior.digests.copy(digests, i * DIGEST_BYTES, j * DIGEST_BYTES, (j + 1) * DIGEST_BYTES);
      continue;
    }
    samePlace = false;
    toHash.push(i);
    bytesHashed += f.size;
  }

  const hashed = await hashFiles(
    o.algorithm,
    toHash.map((i) => files[i]!),
    o,
  );
  for (const [k, i] of toHash.entries()) digests.write(hashed[k]!, i * DIGEST_BYTES, 'hex');

  const hashedAtMs = Date.now();
  // Every input as the manifest had it, in the same order: the key it gave still holds unless the
  // rest of the fingerprint (command, env, salt, ...) changed.
  const sameKey = samePlace && prior?.restHash === restHash;
  const result = fingerprinted(
    sameKey ? prior!.key : undefined,
    rest,
    digests,
    bytesHashed,
    hashedAtMs,
    {
      listing,
      recordedMs: fromPrior ? prior!.recordedMs : startedMs,
      files: { paths: files.map((f) => f.path), abs: (i) => files[i]!.abs },
    },
    () => files,
  );
  result.unmatchedInputs = unmatched;
  if (id && (!sameKey || (!fromPrior && listing))) {
    let saved = false;
    result.saveManifest = () => {
      if (saved) return;
      saved = true;
      try {
        o.manifests!.put(id, {
          algorithm: o.algorithm,
          recordedMs: startedMs,
          listing,
          files: columns(files, spec.root),
          digests,
          restHash,
          key: result.key,
        });
      } catch {
        // Without a manifest the next run lists and stats afresh: slower, never wrong.
      }
    };
    if (!o.deferManifest) result.saveManifest();
  }
  return ok(result);
}

/**
 * The repeat run with a resident daemon (FingerprintOptions.unchangedSince): undefined unless it
 * vouches for this very manifest file and the rest of the fingerprint is the one the manifest was
 * made with. The file list is decoded only if something asks for it (a miss, explain); the daemon
 * decoded the same file to vouch for it, so it does decode.
 */
async function vouchedByDaemon(
  id: string,
  peek: ManifestPeek,
  restHash: string,
  rest: Omit<Fingerprint, 'inputs'>,
  o: FingerprintOptions,
): Promise<Fingerprinted | undefined> {
  if (peek.restHash !== restHash || !(await o.unchangedSince?.(id, peek))) return undefined;
  const whole = (): Manifest => {
    const m = peek.decode();
    if (!m) throw new Error('the input manifest no longer decodes');
    return m;
  };
  const listed: PriorListing = {
    recordedMs: peek.recordedMs,
    get listing() {
      return whole().listing;
    },
    get files() {
      return whole().files;
    },
  };
  return fingerprinted(peek.key, rest, peek.digests, 0, Date.now(), listed, () => {
    const { files } = whole();
    return files.paths.map((_, i) => fileAt(files, i));
  });
}

/**
 * The result, with what only a miss, a dry run or `explain` reads built on first use: a hit from
 * an unchanged manifest touches no per-file object.
 */
function fingerprinted(
  knownKey: string | undefined,
  rest: Omit<Fingerprint, 'inputs'>,
  digests: Buffer,
  bytesHashed: number,
  hashedAtMs: number,
  listed: PriorListing,
  inputFiles: () => InputFile[],
): Fingerprinted {
  let files: InputFile[] | undefined;
  let hashes: string[] | undefined;
  let fingerprint: Fingerprint | undefined;
  const r = {
    bytesHashed,
    hashedAtMs,
    listed,
    get files() {
      files ??= inputFiles();
      return files;
    },
    get hashes() {
      if (hashes) return hashes;
      // One hex conversion, then slices: a toString per file costs ~0.6 µs each in a fresh process.
      const hex = digests.toString('hex');
      hashes = r.files.map((_, i) => hex.slice(2 * DIGEST_BYTES * i, 2 * DIGEST_BYTES * (i + 1)));
      return hashes;
    },
    get fingerprint() {
      const h = r.hashes;
      fingerprint ??= { ...rest, inputs: r.files.map((f, i) => [f.path, h[i]!, (f.mode & 0o111) !== 0]) };
      return fingerprint;
    },
    key: knownKey ?? '',
    unmatchedInputs: [] as string[],
    saveManifest: () => {},
  };
  if (knownKey === undefined) r.key = keyOf(r.fingerprint);
  return r;
}

const DIGEST_BYTES = 32;

export function keyOf(fingerprint: Fingerprint): string {
  return hashBytes(fingerprint.algorithm, canonicalJson(fingerprint));
}

import {
  durabilityOf,
  resolveSettings,
  resolveTask,
  type Settings,
  type SettingsOverrides,
  type TaskFlags,
  taskLabel,
} from '../config/resolve.js';
import type { Durability, HashAlgorithm } from '../config/types.js';
import { canonicalJson, hashBytes } from '../fingerprint/hash.js';
import { remoteTier } from '../remote/tier.js';
import { type Explanation, explainTask } from '../runner/explain.js';
import { runTask } from '../runner/lookup.js';
import type { RunOutcome } from '../runner/types.js';
import type { ResultEncoding } from '../store/entry.js';
import { cacheLayout } from '../store/layout.js';
import { bookServedHits, getResult, keyForInput, type ResultData, saveResult } from '../store/results.js';
import { type CacheStats, cacheStats } from '../store/stats.js';
import { Store } from '../store/store.js';
import { recordTeamEvent, teamEventOf } from '../store/team/record.js';
import { monotonicMs } from '../util/monotonic.js';
import { err, errorMessage, type Failure, failure, type Result } from '../util/result.js';
import { warn as stderrWarn } from '../util/term.js';
import { jsonResult, readJsonResult } from './json-result.js';

export type { ResultData } from '../store/results.js';
export type { CacheStats } from '../store/stats.js';

/** Options for `new Client(...)`; every field is optional and defaults to what the CLI would use. */
export interface ClientOptions {
  /** Use this config file instead of searching upward from `cwd` for taskvault.config.*. */
  configPath?: string;
  /** Where to look for the project (config file, `.git`); default `process.cwd()`. */
  cwd?: string;
  /** Cache directory (default: the config's cacheDir, env TASKVAULT_CACHE_DIR, or .taskvault/cache). */
  cacheDir?: string;
  hashAlgorithm?: HashAlgorithm;
  /**
   * When `cacheResult` returns: 'fast' (default for results) once the result is written, which
   * a crash of this process cannot undo; 'strict' once it is fsynced, which a power loss cannot.
   * Default: the config's `durability`, env TASKVAULT_DURABILITY, else 'fast' (docs/guarantees.md).
   */
  durability?: Durability;
  /** Environment the TASKVAULT_* settings are read from; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /**
   * Where cache warnings go (a cache that cannot be opened, a failed index write); default stderr.
   * The SDK never throws for a broken cache where it can do without it, and never patches the
   * host's console or adds process listeners. (lmdb-js itself prints a failed index commit to
   * console.error; the warning here says what it cost.)
   */
  onWarning?: (message: string) => void;
}

/** `{ hit: true, value }` on a hit (bytes, or the path written with `toFile`); `{ hit: false }` on a miss. */
export type CachedResult<T = Buffer> =
  | {
      hit: true;
      key: string;
      value: T;
      size: number;
      encoding: ResultEncoding;
      /** When the entry expires under its task's TTL (epoch ms; Infinity: never). */
      expiresAt: number;
    }
  | { hit: false; key: string };

export interface CacheResultOptions {
  /** How long producing the output took, for "time saved" (default: time since this key last missed). */
  durationMs?: number;
  /** How the bytes encode the value ('json' for a JSON text, as memoize stores it); default 'raw'. */
  encoding?: ResultEncoding;
}

export interface GetToFileOptions {
  /** Write the result to this file (streamed, verified, then renamed into place) instead of memory. */
  toFile: string;
}

/** How memoize stores results. Default: Uint8Array as raw bytes, anything else as JSON. */
export interface MemoizeOptions<R> {
  encode?: (value: R) => Uint8Array | string;
  decode?: (data: Buffer) => R;
}

/** What `taskvault run` takes, as an object: a configured task, or a command with its own options. */
export interface RunSpec {
  /** A task from taskvault.config.*; with `command` set too, this only names an ad-hoc task. */
  task?: string;
  /** argv (run without a shell) or a string (run through the shell). Appended to a configured task. */
  command?: string[] | string;
  inputs?: string[];
  outputs?: string[];
  env?: string[];
  /** Working directory relative to the project root (or absolute). Default: the client's cwd. */
  cwd?: string;
  shell?: boolean;
  cacheFailures?: boolean;
  /** Run even on a hit, and store the new result. */
  force?: boolean;
  /** Override the policy's TTL, e.g. '2h'. */
  ttl?: string;
  /** Override the policy's per-entry size limit, e.g. '500MB'. */
  maxEntrySize?: string;
}

/** What `run()` returns: a hit, a miss (the command ran), or a run without the cache (and why). */
export type RunResult = Exclude<RunOutcome, { kind: 'failed' } | { kind: 'dry-run' }>;

/** Thrown by Client methods for TaskVault's own expected failures (bad input path, bad config, ...). */
export class TaskVaultError extends Error {
  readonly reason: Failure['reason'];
  readonly hint: string | undefined;
  constructor(f: Failure) {
    super(f.hint ? `${f.message} (${f.hint})` : f.message);
    this.name = 'TaskVaultError';
    this.reason = f.reason;
    this.hint = f.hint;
  }
}

const unwrap = <T>(r: Result<T>): T => {
  if (!r.ok) throw new TaskVaultError(r.error);
  return r.value;
};

const VIA = { via: 'sdk' } as const;

/** How long a client holds hits' bookkeeping to book them in one commit (Store hitBatchMs). */
const HIT_BATCH_MS = 20;

/**
 * The programmatic face of TaskVault. It opens the same cache the CLI uses (same config lookup, same
 * cache directory), so results saved by one are found by the other; audit lines are written alike.
 *
 * ```ts
 * const tv = new Client();
 * const key = await tv.cacheResult('aggregate', csvBytes, JSON.stringify(summary));
 * const r = await tv.getCachedResult('aggregate', csvBytes); // { hit: true, value: Buffer }
 * await tv.close();
 * ```
 */
export class Client {
  private readonly settingsP: Promise<Result<Settings>>;
  private storeP: Promise<Store | undefined> | undefined;
  /** Stores whose index was replaced on disk (store()), still in use: closed by their last user. */
  private readonly retired = new Set<Store>();
  /** How many operations are using each store (withStore). */
  private readonly users = new Map<Store, number>();
  /** Closes of retired stores under way: close() waits for them. */
  private readonly retiring = new Set<Promise<void>>();
  /** Calls under way (withStore), and close() waiting for them to end. */
  private calls = 0;
  private whenIdle: (() => void) | undefined;
  /** close()'s work, once: a second close() waits for the same. */
  private closing: Promise<void> | undefined;
  private closed = false;
  private readonly warn: (message: string) => void;
  private readonly options: ClientOptions;

  constructor(configPathOrOptions?: string | ClientOptions) {
    this.options =
      typeof configPathOrOptions === 'string'
        ? { configPath: configPathOrOptions }
        : { ...configPathOrOptions };
    this.warn = this.options.onWarning ?? stderrWarn;
    const o: SettingsOverrides = {};
    if (this.options.configPath !== undefined) o.configPath = this.options.configPath;
    if (this.options.cwd !== undefined) o.cwd = this.options.cwd;
    if (this.options.cacheDir !== undefined) o.cacheDir = this.options.cacheDir;
    if (this.options.hashAlgorithm !== undefined) o.hashAlgorithm = this.options.hashAlgorithm;
    if (this.options.durability !== undefined) o.durability = this.options.durability;
    if (this.options.env !== undefined) o.env = this.options.env;
    // Never rejects, so an unused Client cannot cause an unhandled rejection.
    this.settingsP = resolveSettings(o).catch((e) => err(failure('config', errorMessage(e))));
  }

  /** Marks a path (relative to process.cwd()) as a file to stream, for data too large for memory. */
  static file(path: string): { path: string } {
    return { path };
  }

  /** The resolved settings (project root, cache directory, algorithm, limits). */
  async settings(): Promise<Settings> {
    if (this.closed) throw new TaskVaultError(failure('usage', 'this Client is closed'));
    return unwrap(await this.settingsP);
  }

  /**
   * The store, opened once, and again if its index was removed or replaced on disk since (the
   * cache deleted by hand, a corrupt index rebuilt by another process); undefined (with one
   * warning) if the cache cannot be opened.
   */
  private async store(settings: Settings): Promise<Store | undefined> {
    // Only withStore() calls this, and close() waits for those: no store opens after close().
    for (;;) {
      this.storeP ??= Promise.resolve().then(() => {
        // A client lives long and may answer hits back to back: their bookkeeping is batched.
        const opened = Store.open(settings.cacheDir, { hitBatchMs: HIT_BATCH_MS });
        if (opened.ok) return opened.value;
        this.warn(`cache skipped: ${opened.error.message}`);
        return undefined;
      });
      const p = this.storeP;
      const store = await p;
      // Retired by a call that resumed first (replacedOnDisk() says so to one caller only, then not
      // again for REPLACED_CHECK_MS): its close may be under way, so take the store opened after it.
      if (this.storeP !== p) continue;
      if (!store?.replacedOnDisk()) {
        // Counted before the caller resumes: a retirement meanwhile leaves it open for this use.
        if (store) this.users.set(store, (this.users.get(store) ?? 0) + 1);
        return store;
      }
      this.storeP = undefined;
      // Operations still under way keep using it; the last of them closes it.
      if (this.users.has(store)) this.retired.add(store);
      else this.closeRetired(store);
    }
  }

  /**
   * Runs `fn` with the settings and the store (undefined if the cache cannot be opened; see
   * store()). A call is counted from here on: close() waits for it.
   */
  private async withStore<T>(fn: (settings: Settings, store: Store | undefined) => Promise<T>): Promise<T> {
    if (this.closed) throw new TaskVaultError(failure('usage', 'this Client is closed'));
    this.calls++;
    try {
      const settings = unwrap(await this.settingsP);
      const store = await this.store(settings);
      try {
        return await fn(settings, store);
      } finally {
        if (store) this.release(store);
      }
    } finally {
      if (--this.calls === 0) this.whenIdle?.();
    }
  }

  private release(store: Store): void {
    const n = (this.users.get(store) ?? 1) - 1;
    if (n > 0) {
      this.users.set(store, n);
      return;
    }
    this.users.delete(store);
    if (this.retired.delete(store)) this.closeRetired(store);
  }

  /** Finishes a retired store's bookkeeping and closes it: a long-lived client keeps no old index open. */
  private closeRetired(store: Store): void {
    const closing: Promise<void> = store
      .flush()
      .catch(() => {})
      .then(() => store.close())
      .catch(() => {})
      .finally(() => this.retiring.delete(closing));
    this.retiring.add(closing);
  }

  /**
   * Waits for the index writes an operation left (last access, counters). One that fails (disk
   * full) costs only that bookkeeping: a warning, never the operation's result.
   */
  private async flush(store: Store, what: string): Promise<void> {
    try {
      await store.flush();
    } catch (e) {
      this.warn(`${what}: cache index write failed: ${errorMessage(e)}`);
    }
  }

  private need(store: Store | undefined): Store {
    if (!store)
      throw new TaskVaultError(failure('cache', 'the cache cannot be opened (see the warning above)'));
    return store;
  }

  /**
   * Stores `output` as the result of `task` for this `input` and returns the key. Input and output
   * may be bytes, a string, `Client.file(path)` or a stream (hashed and copied in slices).
   */
  async cacheResult(
    task: string,
    input: ResultData,
    output: ResultData,
    options: CacheResultOptions = {},
  ): Promise<string> {
    return this.withStore(async (settings, maybe) => {
      const store = this.need(maybe);
      const saved = await saveResult(store, settings, task, input, output, {
        source: 'save',
        ...VIA,
        ...options,
      });
      // Committed either way; strict also waits for the index to reach the disk. Fast leaves that
      // flush (and the bookkeeping's) to lmdb-js, shared with the saves that follow.
      if (durabilityOf(settings, 'result') === 'strict') await this.flush(store, `cacheResult ${task}`);
      return unwrap(saved).key;
    });
  }

  /** Looks up the result of `task` for `input`; the value is verified against its hash before use. */
  getCachedResult(task: string, input: ResultData): Promise<CachedResult<Buffer>>;
  getCachedResult(task: string, input: ResultData, options: GetToFileOptions): Promise<CachedResult<string>>;
  async getCachedResult(
    task: string,
    input: ResultData,
    options?: GetToFileOptions,
  ): Promise<CachedResult<Buffer> | CachedResult<string>> {
    return this.withStore(async (settings, store): Promise<CachedResult<Buffer> | CachedResult<string>> => {
      if (!store) {
        const key = unwrap(await keyForInput(settings, task, input));
        return { hit: false, key };
      }
      const target =
        options?.toFile !== undefined
          ? { kind: 'file' as const, path: options.toFile }
          : { kind: 'bytes' as const };
      const got = unwrap(await getResult(store, settings, task, input, target, { source: 'get', ...VIA }));
      // A lookup's bookkeeping (last access, hit and miss counts, when the key missed) commits in
      // the background: waiting for its fsync would make every lookup cost a disk flush.
      // getStats() and close() wait for it.
      if (!got.hit) return { hit: false, key: got.key };
      const hit = {
        hit: true as const,
        key: got.key,
        size: got.size,
        encoding: got.entry.result?.encoding ?? 'raw',
        expiresAt: got.expiresAt,
      };
      if (target.kind === 'file') return { ...hit, value: target.path };
      return { ...hit, value: got.data ?? Buffer.alloc(0) };
    });
  }

  /**
   * @internal For `taskvault serve`: books hits its client served from its own memory of results
   * this Client returned (store/results.ts bookServedHits). Returns how many were booked.
   */
  async bookServedHits(hits: ReadonlyArray<{ task: string; key: string }>): Promise<number> {
    return this.withStore(async (_settings, store) =>
      store ? bookServedHits(store, hits, { source: 'get', ...VIA }) : 0,
    );
  }

  /** Entries, size, limit, hits, misses, hit rate and time saved, as `taskvault stats --json`. */
  async getStats(): Promise<CacheStats> {
    return this.withStore(async (settings, maybe) => {
      const store = this.need(maybe);
      await this.flush(store, 'getStats'); // hits booked in the background are counted
      return cacheStats(store, settings.maxSizeBytes);
    });
  }

  /**
   * Wraps an async function of serialisable arguments: a call whose arguments (as canonical JSON;
   * Uint8Array arguments by content hash) were seen before returns the stored result without calling
   * `fn`. A broken cache never breaks the call: `fn` then simply runs. Concurrent identical calls in
   * this process share one execution.
   */
  memoize<A extends unknown[], R>(
    task: string,
    fn: (...args: A) => R | Promise<R>,
    options: MemoizeOptions<R> = {},
  ): (...args: A) => Promise<R> {
    const inflight = new Map<string, Promise<R>>();
    return async (...args: A): Promise<R> => {
      const settings = await this.settings();
      const input = canonicalJson(argsForKey(settings.hashAlgorithm, args));
      const call = inflight.get(input) ?? this.memoCall(task, fn, args, input, options);
      inflight.set(input, call);
      try {
        return await call;
      } finally {
        inflight.delete(input);
      }
    };
  }

  private async memoCall<A extends unknown[], R>(
    task: string,
    fn: (...args: A) => R | Promise<R>,
    args: A,
    input: string,
    o: MemoizeOptions<R>,
  ): Promise<R> {
    return this.withStore(async (settings, store) => {
      if (store) {
        try {
          const got = await getResult(
            store,
            settings,
            task,
            input,
            { kind: 'bytes' },
            { source: 'memoize', ...VIA },
          );
          if (got.ok && got.value.hit && got.value.data) {
            const data = got.value.data;
            if (o.decode) return o.decode(data);
            return (
              got.value.entry.result?.encoding === 'json' ? readJsonResult(data.toString('utf8')) : data
            ) as R;
          }
          if (!got.ok) this.warn(`memoize ${task}: cache skipped: ${got.error.message}`);
        } catch (e) {
          this.warn(`memoize ${task}: cache skipped: ${errorMessage(e)}`);
        }
      }
      const started = monotonicMs();
      const value = await fn(...args);
      const durationMs = monotonicMs() - started;
      if (store) {
        try {
          const raw = !o.encode && value instanceof Uint8Array;
          const encoded = o.encode ? o.encode(value) : raw ? (value as Uint8Array) : jsonResult(value);
          if (encoded === undefined) throw new Error('the encode hook returned undefined');
          const saved = await saveResult(store, settings, task, input, encoded, {
            source: 'memoize',
            ...VIA,
            durationMs,
            encoding: raw || o.encode ? 'raw' : 'json',
          });
          if (!saved.ok) this.warn(`memoize ${task}: not cached: ${saved.error.message}`);
          if (durabilityOf(settings, 'result') === 'strict') await this.flush(store, `memoize ${task}`);
        } catch (e) {
          this.warn(`memoize ${task}: not cached: ${errorMessage(e)}`);
        }
      }
      return value;
    });
  }

  /**
   * Does what `taskvault run` does: restore on a hit, or run the command and store its outputs.
   * The command's exit code is in the outcome; TaskVault's own failures (e.g. a bad input glob) throw.
   */
  async run(spec: RunSpec): Promise<RunResult> {
    const settings = await this.settings();
    const task = unwrap(this.resolve(settings, spec));
    const outcome = await runTask(settings, task, {
      force: spec.force === true,
      source: 'run',
      reporter: { warn: this.warn, info: () => {} },
      remote: remoteTier(settings),
    });
    if (settings.team && !settings.disabled) {
      // Buffered only: the next CLI run (or `taskvault team flush`) sends it; the SDK starts no
      // process of its own in its host.
      const event = teamEventOf(outcome, {
        task: taskLabel(task),
        via: 'sdk',
        root: settings.root,
        at: Date.now(),
      });
      if (event) recordTeamEvent(cacheLayout(settings.cacheDir).team, event);
    }
    if (outcome.kind === 'failed') throw new TaskVaultError(outcome.failure);
    if (outcome.kind === 'dry-run') throw new Error('unreachable: run() never asks for a dry run');
    return outcome;
  }

  /** What `taskvault explain` prints, as data: the key, the fingerprint, and why it would miss. */
  async explain(spec: RunSpec): Promise<Explanation> {
    const settings = await this.settings();
    return unwrap(await explainTask(settings, unwrap(this.resolve(settings, spec))));
  }

  private resolve(settings: Settings, spec: RunSpec) {
    const flags: TaskFlags = {};
    if (spec.inputs) flags.inputs = spec.inputs;
    if (spec.outputs) flags.outputs = spec.outputs;
    if (spec.env) flags.env = spec.env;
    if (spec.cacheFailures !== undefined) flags.cacheFailures = spec.cacheFailures;
    if (spec.ttl !== undefined) flags.ttl = spec.ttl;
    if (spec.maxEntrySize !== undefined) flags.maxEntrySize = spec.maxEntrySize;
    const cwd = spec.cwd ?? this.options.cwd;
    if (cwd !== undefined) flags.cwd = cwd;
    const command = spec.command;
    if (typeof command === 'string') flags.shell = true;
    else if (spec.shell) flags.shell = true;
    const args = command === undefined ? [] : typeof command === 'string' ? [command] : command;
    return resolveTask(settings, spec.task, args, flags);
  }

  /**
   * Waits for the calls under way (a memoized function still running, too), then for pending
   * writes, and closes the cache. The client cannot be used afterwards: a call made now throws.
   */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    this.closed = true;
    // Calls made before are not cut short: each finishes, and saves what it was to save.
    if (this.calls > 0) await new Promise<void>((resolve) => (this.whenIdle = resolve));
    // storeP never rejects (a failed open is a warning and undefined); flush and close only finish
    // bookkeeping writes, whose failure each operation has already warned about.
    // No call uses a store now, so every retired one is already closing (release()).
    const store = await this.storeP?.catch(() => undefined);
    await store?.flush().catch(() => {});
    await store?.close().catch(() => {});
    await Promise.all([...this.retiring]);
  }
}

const MARKERS = new Set(['$bytes', '$file', '$bigint']);

/** Arguments as a JSON-able value for the key: byte arrays by content hash, not element by element. */
function argsForKey(algorithm: HashAlgorithm, value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: hashBytes(algorithm, value) };
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : argsForKey(algorithm, v)));
  if (value && typeof value === 'object') {
    const json = (value as { toJSON?: () => unknown }).toJSON;
    if (typeof json === 'function') return argsForKey(algorithm, json.call(value));
    const entries = Object.entries(value);
    // The shapes that stand for a byte array, a file or a bigint in a key: one given as it is
    // would be keyed as that other value (the Python SDK refuses the same).
    if (entries.length === 1 && MARKERS.has(entries[0]![0]))
      throw new TypeError(
        `memoize: an argument that is an object with the one key "${entries[0]![0]}" cannot be keyed (it is how other values are keyed); give it another key`,
      );
    return Object.fromEntries(entries.map(([k, v]) => [k, argsForKey(algorithm, v)]));
  }
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  return value;
}

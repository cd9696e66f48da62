import type { Settings, TaskSpec } from '../config/resolve.js';
import type { StdinMode } from '../config/types.js';
import { type Fingerprint, type Fingerprinted, fingerprintTask } from '../fingerprint/fingerprint.js';
import { pullRemote } from '../remote/hooks.js';
import type { Entry } from '../store/entry.js';
import { HotIndex } from '../store/hot.js';
import { corruptIndex, corruptionText, isIndexCorruption } from '../store/index-errors.js';
import { cacheLayout } from '../store/layout.js';
import { errorMessage, type Failure, failure } from '../util/result.js';
import { mark } from '../util/trace.js';
import { loadExeca } from '../util/vendor.js';
import { hotHit, recordHit, serveHit } from './hit.js';
import { matchOutputs } from './outputs.js';
import type { ReplayTarget } from './replay.js';
import { prepareStdin } from './stdin.js';

export interface Reporter {
  warn(message: string): void;
  info(message: string): void;
}

export interface RunOptions {
  /** Run even on a hit, and store the result. */
  force?: boolean;
  /** Fingerprint and look up only. */
  dryRun?: boolean;
  /** Where audit lines say the event came from. */
  source?: string;
  reporter: Reporter;
  /** Where a hit's logs are replayed (default: this process's stdout/stderr). */
  replayTo?: ReplayTarget;
  now?: () => number;
  /** Aborting stops the command (SIGTERM); the run is then interrupted and never cached. */
  signal?: AbortSignal;
  /**
   * Fingerprint the inputs again after the command and do not store if they changed meanwhile:
   * the outputs may then not match the key. On by default (never serve wrong bytes); the second
   * pass mostly only stats the inputs again.
   */
  recheckInputs?: boolean;
  /**
   * Read the process's stdin into the key as this says (runner/stdin.ts); only `run` from the CLI
   * sets it. Unset: stdin is inherited and not keyed (the SDK, watch).
   */
  stdin?: StdinMode;
}

export type RunOutcome =
  | {
      kind: 'hit';
      key: string;
      exitCode: number;
      files: number;
      bytes: number;
      restoreMs: number;
      savedMs: number;
      origin: 'local' | 'remote';
    }
  | {
      kind: 'miss';
      key: string;
      exitCode: number;
      durationMs: number;
      stored: boolean;
      notStored?: string;
      /** A warning has already said why it was not stored (the summary need not repeat it). */
      warned?: boolean;
      files: number;
      bytes: number;
    }
  | { kind: 'uncached'; exitCode: number; durationMs: number; reason: string; warned?: boolean }
  | { kind: 'dry-run'; key: string; hit: boolean; fingerprint: Fingerprint; entry?: Entry }
  | { kind: 'failed'; failure: Failure };

/** The miss side (miss.ts), loaded only when needed: a hit then never loads execa's caller and child_process. */
const miss = () => import('./miss.js');

/** The label under which the newest entry of a task is remembered (for `explain`). */
export const taskKeyLabel = (spec: Pick<TaskSpec, 'name' | 'command'>): string =>
  spec.name || `argv:${spec.command.join(' ')}`;

/**
 * The one pipeline: fingerprint (against the glob set's input manifest) → look the key up, first
 * as a copy in hot/ and only then in the index → restore and replay on a hit (hit.ts), or execute,
 * snapshot and commit on a miss (miss.ts). Any cache problem degrades to running the command
 * uncached with a warning; the command's exit code always comes back.
 */
export async function runTask(settings: Settings, spec: TaskSpec, o: RunOptions): Promise<RunOutcome> {
  mark('start');
  if (settings.disabled)
    return skipCache(spec, 'caching disabled (TASKVAULT_DISABLE / --no-cache)', o, false);

  // Before the key: what the command reads on stdin may be part of it (one fstat when it is not).
  const stdin = o.stdin ? await prepareStdin(o.stdin, settings.hashAlgorithm) : undefined;
  if (stdin?.kind === 'uncached') return skipCache(spec, stdin.reason, o);
  const layout = cacheLayout(settings.cacheDir);
  const hot = new HotIndex(layout);
  let fp: Awaited<ReturnType<typeof fingerprintTask>>;
  try {
    fp = await fingerprintTask(spec, {
      algorithm: settings.hashAlgorithm,
      salt: settings.salt,
      ...(stdin?.kind === 'keyed' ? { stdin: stdin.hash } : {}),
      cacheDir: settings.cacheDir,
      manifests: hot.manifests(),
      deferManifest: true,
    });
  } catch (e) {
    return skipCache(spec, errorMessage(e), o);
  }
  mark('fingerprint');
  if (!fp.ok) return { kind: 'failed', failure: fp.error };
  for (const g of fp.value.unmatchedInputs) o.reporter.warn(`input glob '${g}' matched no files`);
  try {
    return await lookUpAndRun(settings, spec, fp.value, hot, o);
  } finally {
    // A miss has written it as soon as its command started; a dry run writes nothing.
    if (!o.dryRun) fp.value.saveManifest();
  }
}

/** runTask past the fingerprint: hot/ first, then the index; the command on a miss. */
async function lookUpAndRun(
  settings: Settings,
  spec: TaskSpec,
  fp: Fingerprinted,
  hot: HotIndex,
  o: RunOptions,
): Promise<RunOutcome> {
  const now = o.now ?? Date.now;
  const source = o.source ?? 'run';
  const { key } = fp;
  const logFields = { task: spec.name || spec.command.join(' '), hash: key.slice(0, 12) };
  let fromHot: Awaited<ReturnType<typeof hotHit>>;
  try {
    fromHot = o.force || o.dryRun ? undefined : await hotHit(hot, settings, spec, key, logFields, o);
  } catch (e) {
    // E.g. an output directory that cannot be written: the command runs instead (it may fail on
    // the same thing, with its own message and exit code).
    return skipCache(spec, errorMessage(e), o);
  }
  mark(fromHot?.kind === 'hit' ? 'hot hit' : 'hot lookup');
  if (fromHot?.kind === 'hit') return fromHot;

  // No copy in hot/, so no entry (Store.open gives every entry one): run the command at once and
  // open the index while it runs. The team cache, a dry run and a damaged or expired copy need the
  // index first.
  if (fromHot === undefined && !o.dryRun && !settings.remote) {
    // Both loads at once: one's file reads overlap the other's compiling.
    void loadExeca().catch(() => {});
    const m = await miss();
    try {
      return await m.missFirst(hot, settings, spec, fp, taskKeyLabel(spec), o);
    } catch (e) {
      // Only failures before the command started get here (after it, missFirst reports them).
      o.reporter.warn(`cache skipped: ${errorMessage(e)}`);
      return m.runUncached(spec, errorMessage(e), o.signal, true);
    }
  }

  // Past here the index is needed.
  const { Store } = await import('../store/store.js');
  // Without a cache there is nothing to find, and a dry run does not create one.
  if (o.dryRun && !Store.exists(settings.cacheDir))
    return { kind: 'dry-run', key, hit: false, fingerprint: fp.fingerprint };
  const opened = Store.open(settings.cacheDir, { warn: (m) => o.reporter.warn(m) });
  if (!opened.ok) return skipCache(spec, opened.error.message, o);
  const store = opened.value;
  mark('open index');
  try {
    const label = taskKeyLabel(spec);
    if (fromHot?.kind === 'unusable') {
      // As below for an entry from the index: say why, log it, drop the entry, run the command.
      o.reporter.warn(
        `cached result for ${key.slice(0, 12)} not used: ${fromHot.message}; running the command`,
      );
      store.log('ERROR', source, { ...logFields, error: fromHot.message });
      await store.remove(key);
    }

    let entry = o.force || fromHot?.kind === 'unusable' ? undefined : store.getEntry(key);
    if (entry && entry.createdAt + spec.policy.ttlMs <= now()) {
      await store.remove(key, 'ttl');
      store.log('EVICT', source, { ...logFields, reason: 'ttl' });
      entry = undefined;
    }
    if (o.dryRun) {
      const outcome: RunOutcome = {
        kind: 'dry-run',
        key,
        hit: entry !== undefined,
        fingerprint: fp.fingerprint,
      };
      if (entry) outcome.entry = entry;
      return outcome;
    }

    // Team cache: after a local miss, a remote entry is pulled into the local cache and served as a hit.
    const pulled =
      !entry && !o.force && settings.remote
        ? await pullRemote(settings, store, spec, fp, label, o.reporter, now())
        : undefined;
    if (pulled) entry = pulled.entry;

    if (entry) {
      // Touched before restoring, so a concurrent eviction (which re-checks last access) spares it.
      store.touch(key, now());
      const hit = await serveHit(store.blobs, settings.root, entry, o);
      mark('restore');
      if (hit.ok) {
        if (!pulled) store.hot.putEntry(entry); // e.g. made by an older version: next time, from hot/
        return recordHit(store, entry, hit, logFields, o, pulled?.ms);
      }
      o.reporter.warn(`cached result for ${key.slice(0, 12)} not used: ${hit.message}; running the command`);
      store.log('ERROR', source, { ...logFields, error: hit.message });
      await store.remove(key);
    }

    return await (await miss()).missSingleFlight(store, settings, spec, fp, label, logFields, o);
  } catch (e) {
    // A bug or an unexpected filesystem error inside the cache must not cost the user the run.
    const corrupt = isIndexCorruption(e) ? corruptIndex(undefined, corruptionText(e)) : undefined;
    const why = corrupt ? `${corrupt.message} (${corrupt.hint})` : errorMessage(e);
    store.log('ERROR', source, { error: why });
    return skipCache(spec, why, o);
  } finally {
    await store.flush().catch(() => {});
    await store.close().catch(() => {});
    mark('close index');
  }
}

/**
 * The command without the cache, with a warning saying why. A dry run runs nothing, ever: it fails
 * with the reason instead.
 */
async function skipCache(spec: TaskSpec, reason: string, o: RunOptions, warn = true): Promise<RunOutcome> {
  if (o.dryRun)
    return {
      kind: 'failed',
      failure: failure('cache', `cannot look the key up: ${reason}`, 'nothing was run'),
    };
  if (warn) o.reporter.warn(`cache skipped: ${reason}`);
  return (await miss()).runUncached(spec, reason, o.signal, warn);
}

export { matchOutputs };

import { rm } from 'node:fs/promises';
import { type Settings, type TaskSpec, taskLabel } from '../config/resolve.js';
import type { Fingerprinted } from '../fingerprint/fingerprint.js';
import { inputsChangedSince } from '../fingerprint/recheck.js';
import { pushRemote } from '../remote/hooks.js';
import { AuditLog } from '../store/audit.js';
import { BlobStore } from '../store/blobs.js';
import type { BlobRef, Entry } from '../store/entry.js';
import { STORE_SCHEMA } from '../store/entry.js';
import { evictAfterSave } from '../store/evict.js';
import type { HotIndex } from '../store/hot.js';
import { cacheLayout, makeCacheDirs } from '../store/layout.js';
import { acquireLock, DEFAULT_LOCK_TIMEOUT_MS, lockTimeoutFromEnv } from '../store/lock.js';
import { lowSpace } from '../store/space.js';
import type { Store } from '../store/store.js';
import { formatDuration } from '../util/format.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { mark } from '../util/trace.js';
import { LogCapture } from './capture.js';
import { outputBytes, oversizeReason } from './entry-size.js';
import { type Execution, execute } from './execute.js';
import { hotHit, recordHit, serveHit } from './hit.js';
import { provenance } from './provenance.js';
import { checkEntryPaths } from './restore.js';
import type { RunOptions, RunOutcome } from './run-task.js';
import { snapshotOutputs } from './snapshot.js';

/*
 * A miss: under a per-key lock, run the command (teeing and capturing its output), check that the
 * inputs did not change meanwhile, snapshot the outputs into blobs and commit the entry.
 */

/**
 * A miss under a per-key lock (invariant 5: identical runs that start together execute once). The
 * first process runs and commits; the others wait, then find the entry and restore it. A holder
 * that died is detected and its lock broken; waiting is bounded, after which we run anyway.
 */
export async function missSingleFlight(
  store: Store,
  settings: Settings,
  spec: TaskSpec,
  fp: Fingerprinted,
  label: string,
  logFields: Record<string, string>,
  o: RunOptions,
): Promise<RunOutcome> {
  const source = o.source ?? 'run';
  const { key } = fp;
  if (store.noWrites) {
    o.reporter.warn(`not cached: ${store.noWrites}`);
    return runUncached(spec, store.noWrites, o.signal, true);
  }
  const lock = await lockKey(store.layout.locks, spec, key, o);
  try {
    // Look again under the lock (fresh read txn), waited or not: a holder may have committed this
    // key and released the lock between our lookup and our taking it (--force runs regardless).
    if (lock.kind === 'acquired' && !o.force) {
      store.refresh();
      const entry = store.getEntry(key);
      if (entry) {
        const hit = await serveHit(store.blobs, settings.root, entry, o);
        if (hit.ok) return recordHit(store, entry, hit, logFields, o);
        o.reporter.warn(
          `cached result for ${key.slice(0, 12)} not used: ${hit.message}; running the command`,
        );
        store.log('ERROR', source, { ...logFields, error: hit.message });
        await store.remove(key);
      }
    }
    store.count('misses', 1, spec.name);
    store.log('MISS', source, logFields);
    return await runAndStore(async () => ok(store), settings, spec, fp, label, o);
  } finally {
    if (lock.kind === 'acquired') lock.release();
  }
}

/**
 * missSingleFlight for a key with no copy in hot/: the command starts before the index is loaded
 * (~20 ms of lmdb) and opened, which then happens while it runs. Under the same lock; a process
 * that waited for it finds the holder's result in hot/.
 */
export async function missFirst(
  hot: HotIndex,
  settings: Settings,
  spec: TaskSpec,
  fp: Fingerprinted,
  /** Under which the entry is remembered as the task's newest (taskKeyLabel). */
  label: string,
  o: RunOptions,
): Promise<RunOutcome> {
  const { key } = fp;
  const logFields = { task: spec.name || spec.command.join(' '), hash: key.slice(0, 12) };
  // What Store.open would find only after the command: a cache dir that cannot be written to.
  try {
    makeCacheDirs(hot.layout);
  } catch (e) {
    const why = `cannot open the cache at ${settings.cacheDir}: ${errorMessage(e)}`;
    o.reporter.warn(`cache skipped: ${why}`);
    return runUncached(spec, why, o.signal, true);
  }
  const full = lowSpace(settings.cacheDir);
  if (full) {
    o.reporter.warn(`not cached: ${full}`);
    return runUncached(spec, full, o.signal, true);
  }
  const lock = await lockKey(hot.layout.locks, spec, key, o);
  let store: Store | undefined;
  try {
    // As in missSingleFlight: a holder may have committed between our lookup and our lock.
    if (lock.kind === 'acquired' && !o.force) {
      const again = await hotHit(hot, settings, spec, key, logFields, o).catch(() => undefined);
      if (again?.kind === 'hit') return again;
    }
    // Called once the command has started (runAndStore): the audit line and the index load then
    // overlap with it instead of delaying its start.
    const openIndex = async (): Promise<Result<Store>> => {
      new AuditLog(hot.layout.audit).write('MISS', o.source ?? 'run', logFields);
      const { Store } = await import('../store/store.js');
      const opened = Store.open(settings.cacheDir, { warn: (m) => o.reporter.warn(m) });
      if (opened.ok) {
        store = opened.value;
        store.count('misses', 1, spec.name);
      }
      return opened;
    };
    return await runAndStore(openIndex, settings, spec, fp, label, o);
  } finally {
    if (lock.kind === 'acquired') lock.release();
    if (store) {
      await store.flush().catch(() => {});
      await store.close().catch(() => {});
      mark('close index');
    }
  }
}

/** The per-key lock of a miss, saying so when it has to wait or gives up waiting. */
async function lockKey(locksDir: string, spec: TaskSpec, key: string, o: RunOptions) {
  const lock = await acquireLock(locksDir, key, {
    timeoutMs: lockTimeoutFromEnv() ?? DEFAULT_LOCK_TIMEOUT_MS,
    onWait: (h) =>
      o.reporter.info(
        `waiting for ${taskLabel(spec)} (${key.slice(0, 12)}): already running in ${h ? `pid ${h.pid} on ${h.host}` : 'another process'}`,
      ),
  });
  if (lock.kind === 'timeout')
    o.reporter.warn(
      `gave up waiting ${formatDuration(lock.waitedMs)} for ${lock.holder ? `pid ${lock.holder.pid} on ${lock.holder.host}` : 'another process'} to finish ${key.slice(0, 12)}; running the command anyway`,
    );
  return lock;
}

/**
 * Runs the command and stores its result. `openIndex` is called once the command has started (or
 * returns the store already open): its loading overlaps with the command.
 */
async function runAndStore(
  openIndex: () => Promise<Result<Store>>,
  settings: Settings,
  spec: TaskSpec,
  fp: Fingerprinted,
  label: string,
  o: RunOptions,
): Promise<RunOutcome> {
  const source = o.source ?? 'run';
  const { key } = fp;
  const layout = cacheLayout(settings.cacheDir);
  const temps = new BlobStore(layout.blobs, layout.tmp);
  const capture = new LogCapture(settings.hashAlgorithm, (tag) => temps.tempPath(tag));
  mark('lock');
  const opening = () =>
    openIndex().catch((e: unknown) => err(failure('cache', `cannot open the cache: ${errorMessage(e)}`)));
  let index: Promise<Result<Store>> | undefined;
  // The fingerprint is written while the command runs, not in the commit after it (stageFingerprint).
  let staged: Promise<void> | undefined;
  const execution = await execute(
    spec,
    (stream, chunk) => capture.write(stream, chunk),
    o.signal,
    () => {
      fp.saveManifest();
      index = opening();
      staged = index
        .then((opened) => (opened.ok ? opened.value.stageFingerprint(key, fp.fingerprint) : undefined))
        .catch(() => {}); // the commit writes it then
    },
  );
  // The command has run: whatever fails from here on costs the caching, never its exit code.
  const afterRun = async (): Promise<RunOutcome> => {
    const captured = capture.finish();
    mark('command');
    const base = {
      kind: 'miss' as const,
      key,
      exitCode: execution.exitCode,
      durationMs: execution.durationMs,
      files: 0,
      bytes: 0,
    };
    const notStored = (why: string, warned = false): RunOutcome => ({
      ...base,
      stored: false,
      notStored: why,
      warned,
    });
    /** Says why in a warning (also shown with --quiet), which the summary then does not repeat. */
    const warnNotStored = (why: string, shown = why): RunOutcome => {
      o.reporter.warn(`not cached: ${shown}`);
      return notStored(why, true);
    };
    const dropCapture = async () => {
      for (const p of [captured?.stdout.path, captured?.stderr.path])
        if (p) await rm(p, { force: true }).catch(() => {});
    };

    const opened = await (index ?? opening());
    mark('index');
    if (!opened.ok) o.reporter.warn(`cache skipped: ${opened.error.message}`);
    let skip = whyNotCacheable(spec, execution) ?? (opened.ok ? undefined : opened.error.message);
    // Whether a warning has given `skip` already.
    let skipWarned = execution.spawnError !== undefined || !opened.ok;
    if (!skip && o.recheckInputs !== false) {
      // The command has run: from here on nothing may throw past its exit code.
      const changed = await inputsChangedSince(spec, fp, settings.cacheDir).catch((e: unknown) => {
        o.reporter.warn(`not cached: the inputs could not be checked again: ${errorMessage(e)}`);
        return 'unchecked' as const;
      });
      if (changed === 'unchecked') {
        skip = 'the inputs could not be checked again';
        skipWarned = true;
      } else if (changed) skip = 'inputs changed while the command ran';
    }
    mark('recheck inputs');
    if (skip || !captured) {
      await dropCapture();
      if (execution.spawnError) o.reporter.warn(execution.spawnError);
      if (skip) return notStored(skip, skipWarned);
      return warnNotStored(`capturing the output failed: ${capture.error ?? 'unknown error'}`);
    }

    const tooBig = async (bytes: number): Promise<RunOutcome> => {
      await dropCapture();
      const why = oversizeReason(bytes, spec.policy.maxEntryBytes);
      return warnNotStored(why, `${why} (raise policies.<task>.maxSizeBytes or --max-entry-size)`);
    };

    if (!opened.ok) return notStored(opened.error.message); // unreachable: skip is set
    const store = opened.value;
    const fingerprint = fp.fingerprint;
    try {
      const logBytes = captured.stdout.size + captured.stderr.size;
      const expected = logBytes + (await outputBytes(spec.root, spec.cwd, spec.outputs));
      if (expected > spec.policy.maxEntryBytes) return await tooBig(expected);
      const snap = await snapshotOutputs(
        store.blobs,
        settings.hashAlgorithm,
        spec.root,
        spec.cwd,
        spec.outputs,
      );
      mark('snapshot');
      if (spec.outputs.length > 0 && snap.outputs.length === 0) {
        o.reporter.warn(`output globs ${spec.outputs.map((g) => `'${g}'`).join(', ')} matched no files`);
      }
      const logs = async (s: typeof captured.stdout): Promise<BlobRef | null> => {
        if (!s.path) return null;
        await store.blobs.adopt(s.path, s.hash);
        return { hash: s.hash, size: s.size };
      };
      const entry: Entry = {
        schema: STORE_SCHEMA,
        key,
        task: spec.name,
        algorithm: settings.hashAlgorithm,
        outputs: snap.outputs,
        outputGlobs: spec.outputs,
        cwd: fingerprint.cwd,
        logs: {
          stdout: await logs(captured.stdout),
          stderr: await logs(captured.stderr),
          chunks: captured.chunks,
        },
        exitCode: execution.exitCode,
        durationMs: Math.round(execution.durationMs),
        createdAt: (o.now ?? Date.now)(),
        bytes: snap.bytes + captured.stdout.size + captured.stderr.size,
        ttlMs: spec.policy.ttlMs,
        provenance: provenance(spec.root),
      };
      // Outputs can grow between the measurement and the copy; the limit holds either way (the copied
      // blobs are unreferenced and gc sweeps them).
      if (entry.bytes > spec.policy.maxEntryBytes) return await tooBig(entry.bytes);
      const paths = checkEntryPaths(spec.root, entry.outputs);
      if (!paths.ok) {
        return warnNotStored(paths.error.message);
      }
      await staged;
      const committed = await store.commit(entry, fingerprint, label);
      mark('commit');
      if (!committed.ok) {
        return warnNotStored(committed.error.message);
      }
      store.log('SAVE', source, {
        task: spec.name || spec.command.join(' '),
        hash: key.slice(0, 12),
        files: snap.outputs.length,
        bytes: entry.bytes,
        exit: entry.exitCode,
      });
      if (settings.remote) await pushRemote(settings, store, entry, o.reporter);
      await evictAfterSave(store, settings, {
        now: (o.now ?? Date.now)(),
        protect: key,
        source,
        info: (m) => o.reporter.info(m),
      }).catch((e) => o.reporter.warn(`eviction skipped: ${errorMessage(e)}`));
      mark('evict');
      return {
        ...base,
        stored: true,
        files: snap.outputs.filter((x) => x.type === 'file').length,
        bytes: snap.bytes, // the output files, as a hit reports them (entry.bytes adds the logs)
      };
    } catch (e) {
      await dropCapture();
      store.log('ERROR', source, { task: spec.name, hash: key.slice(0, 12), error: errorMessage(e) });
      return warnNotStored(errorMessage(e));
    }
  };
  let outcome: RunOutcome;
  try {
    outcome = await afterRun();
  } catch (e) {
    o.reporter.warn(`not cached: ${errorMessage(e)}`);
    outcome = {
      kind: 'miss',
      key,
      exitCode: execution.exitCode,
      durationMs: execution.durationMs,
      stored: false,
      notStored: errorMessage(e),
      warned: true,
      files: 0,
      bytes: 0,
    };
  }
  if (staged && !(outcome.kind === 'miss' && outcome.stored)) {
    const opened = await index;
    if (opened?.ok) await staged.then(() => opened.value.dropStagedFingerprint(key)).catch(() => {});
  }
  return outcome;
}

function whyNotCacheable(spec: TaskSpec, ex: Execution): string | undefined {
  if (ex.spawnError) return `the command could not start: ${ex.spawnError}`;
  if (ex.interrupted || ex.signal) return `the run was interrupted${ex.signal ? ` (${ex.signal})` : ''}`;
  if (ex.exitCode !== 0 && !spec.cacheFailures)
    return `exit code ${ex.exitCode} (use --cache-failures to cache failures)`;
  return undefined;
}

/** The command without the cache; `warned`: a warning has already given `reason`. */
export async function runUncached(
  spec: TaskSpec,
  reason: string,
  signal?: AbortSignal,
  warned = false,
): Promise<RunOutcome> {
  const execution = await execute(spec, () => {}, signal);
  if (execution.spawnError) process.stderr.write(`taskvault: ${execution.spawnError}\n`);
  return { kind: 'uncached', exitCode: execution.exitCode, durationMs: execution.durationMs, reason, warned };
}

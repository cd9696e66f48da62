import { rm } from 'node:fs/promises';
import { durabilityOf, type TaskSpec, taskLabel } from '../config/resolve.js';
import { inputsChangedSince } from '../fingerprint/recheck.js';
import { AuditLog } from '../store/audit.js';
import { BlobStore } from '../store/blobs.js';
import type { BlobRef, Entry } from '../store/entry.js';
import { STORE_SCHEMA } from '../store/entry.js';
import { checkEntryPaths } from '../store/entry-paths.js';
import { evictAfterSave } from '../store/evict.js';
import type { HotIndex } from '../store/hot.js';
import { cacheLayout, makeCacheDirs } from '../store/layout.js';
import { acquireLock, DEFAULT_LOCK_TIMEOUT_MS, type LockResult, lockTimeoutFromEnv } from '../store/lock.js';
import { provenance } from '../store/provenance.js';
import { lowSpace } from '../store/space.js';
import type { Store } from '../store/store.js';
import { formatDuration } from '../util/format.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { mark } from '../util/trace.js';
import { type Captured, type CapturedStream, LogCapture } from './capture.js';
import { outputBytes, oversizeReason } from './entry-size.js';
import { type Execution, execute } from './execute.js';
import { snapshotOutputs } from './snapshot.js';
import type { RunContext, RunOptions, RunOutcome } from './types.js';

/*
 * The steps of a miss, in the order lookup.ts calls them: take the key's lock, run the command,
 * decide whether its result may be stored, snapshot it, commit it, evict. Loaded only on a miss:
 * a hit never loads execa's caller and child_process.
 */

/** Why a run's result was not stored; `warned`: a warning has said it (the summary need not). */
export interface NotStored {
  why: string;
  warned: boolean;
}

/** Says why in a warning (also shown with --quiet), which the summary then does not repeat. */
function warnNotStored(o: RunOptions, why: string, shown = why): NotStored {
  o.reporter.warn(`not cached: ${shown}`);
  return { why, warned: true };
}

// ── Before the command ─────────────────────────────────────────────────────────────────────────

/**
 * What Store.open would report only after the command (its failures are warned about once the
 * command has run), checked before the lock (lookup.ts missBeforeIndex): a cache dir that cannot be
 * written to, a full disk. undefined: go ahead; otherwise a warning has said why and the command
 * should run uncached.
 */
export function cannotCache(hot: HotIndex, run: RunContext): string | undefined {
  try {
    makeCacheDirs(hot.layout);
  } catch (e) {
    const why = `cannot open the cache at ${run.settings.cacheDir}: ${errorMessage(e)}`;
    run.o.reporter.warn(`cache skipped: ${why}`);
    return why;
  }
  const full = lowSpace(run.settings.cacheDir);
  if (full) run.o.reporter.warn(`not cached: ${full}`);
  return full;
}

/** The per-key lock of a miss, saying so when it has to wait or gives up waiting. */
export async function lockKey(locksDir: string, run: RunContext): Promise<LockResult> {
  const { key, o } = run;
  const lock = await acquireLock(locksDir, key, {
    timeoutMs: lockTimeoutFromEnv() ?? DEFAULT_LOCK_TIMEOUT_MS,
    onWait: (h) =>
      o.reporter.info(
        `waiting for ${taskLabel(run.spec)} (${key.slice(0, 12)}): already running in ${h ? `pid ${h.pid} on ${h.host}` : 'another process'}`,
      ),
  });
  if (lock.kind === 'timeout')
    o.reporter.warn(
      `gave up waiting ${formatDuration(lock.waitedMs)} for ${lock.holder ? `pid ${lock.holder.pid} on ${lock.holder.host}` : 'another process'} to finish ${key.slice(0, 12)}; running the command anyway`,
    );
  return lock;
}

/** Opens the index for a miss that found no copy in hot/ (the MISS line and the count go with it). */
export async function openIndexForMiss(hot: HotIndex, run: RunContext): Promise<Result<Store>> {
  new AuditLog(hot.layout.audit).write('MISS', run.source, run.logFields);
  const { Store } = await import('../store/store.js');
  const opened = Store.open(run.settings.cacheDir, { warn: (m) => run.o.reporter.warn(m) });
  if (opened.ok) opened.value.count('misses', 1, run.spec.name);
  return opened;
}

// ── Run ────────────────────────────────────────────────────────────────────────────────────────

/** A command that has run, and what came with it. */
export interface Ran {
  execution: Execution;
  /** Its stdout and stderr in temp files; undefined when capturing failed (`captureError`). */
  captured: Captured | undefined;
  captureError: string | undefined;
  /** The index, opened before the command started. */
  index: Result<Store>;
  /** The fingerprint staged in the index while the command ran (undefined: the index did not open). */
  staged: Promise<void> | undefined;
}

/**
 * Runs the command, teeing and capturing its output. Before it starts, the index is opened and the
 * fingerprint serialised; lmdb's own thread writes it while the command runs.
 *
 * Nothing may block this thread while the command runs: stdout and stderr are two pipes, and the
 * order of their chunks is the order in which this thread reads them. Blocked (loading and opening
 * lmdb takes 20-40 ms), both pipes fill meanwhile and are then read one after the other, so the
 * terminal, and every hit replaying the capture, would get `out1 out2 err1 err2` for what the command
 * wrote as `out1 err1 out2 err2` (test/run/output-order.test.ts).
 */
export async function runCommand(run: RunContext, openIndex: () => Promise<Result<Store>>): Promise<Ran> {
  const { settings, spec, fp, o } = run;
  const layout = cacheLayout(settings.cacheDir);
  const temps = new BlobStore(layout.blobs, layout.tmp);
  const capture = new LogCapture(settings.hashAlgorithm, (tag) => temps.tempPath(tag));
  mark('lock');
  const index = await openIndex().catch((e: unknown) =>
    err(failure('cache', `cannot open the cache: ${errorMessage(e)}`)),
  );
  mark('open index');
  const staged = index.ok
    ? index.value.stageFingerprint(run.key, fp.fingerprint).catch(() => {}) // not staged: the commit writes it
    : undefined;
  const execution = await execute(spec, (stream, chunk) => capture.write(stream, chunk), o.signal);
  const captured = capture.finish();
  mark('command');
  return { execution, captured, captureError: capture.error, index, staged };
}

// ── May it be stored? ──────────────────────────────────────────────────────────────────────────

/**
 * The open index and the captured logs when this run's result may be stored; otherwise why not
 * (its temp files are gone then). Stored are runs that exited 0 (or any, with cacheFailures), were
 * not interrupted, and whose inputs did not change while they ran.
 */
export async function storable(
  run: RunContext,
  ran: Ran,
): Promise<Result<{ store: Store; captured: Captured }, NotStored>> {
  const { spec, o } = run;
  const { execution } = ran;
  const opened = ran.index;
  if (!opened.ok) o.reporter.warn(`cache skipped: ${opened.error.message}`);
  const why = whyNotCacheable(spec, execution) ?? (opened.ok ? undefined : opened.error.message);
  let skip: NotStored | undefined = why
    ? { why, warned: execution.spawnError !== undefined || !opened.ok }
    : undefined;
  if (!skip && o.recheckInputs !== false) skip = await recheckInputs(run);
  mark('recheck inputs');
  if (skip || !ran.captured || !opened.ok) {
    await dropCapture(ran);
    if (execution.spawnError) o.reporter.warn(execution.spawnError);
    if (skip) return err(skip);
    if (!opened.ok) return err({ why: opened.error.message, warned: true }); // unreachable: skip is set
    return err(warnNotStored(o, `capturing the output failed: ${ran.captureError ?? 'unknown error'}`));
  }
  return ok({ store: opened.value, captured: ran.captured });
}

function whyNotCacheable(spec: TaskSpec, ex: Execution): string | undefined {
  if (ex.spawnError) return `the command could not start: ${ex.spawnError}`;
  if (ex.interrupted || ex.signal) return `the run was interrupted${ex.signal ? ` (${ex.signal})` : ''}`;
  if (ex.exitCode !== 0 && !spec.cacheFailures)
    return `exit code ${ex.exitCode} (use --cache-failures to cache failures)`;
  return undefined;
}

/** The inputs fingerprinted again: changed while the command ran, its outputs may not match the key. */
async function recheckInputs(run: RunContext): Promise<NotStored | undefined> {
  try {
    const changed = await inputsChangedSince(run.spec, run.fp, run.settings.cacheDir);
    return changed ? { why: 'inputs changed while the command ran', warned: false } : undefined;
  } catch (e) {
    // The command has run: from here on nothing may throw past its exit code.
    run.o.reporter.warn(`not cached: the inputs could not be checked again: ${errorMessage(e)}`);
    return { why: 'the inputs could not be checked again', warned: true };
  }
}

// ── Snapshot ───────────────────────────────────────────────────────────────────────────────────

/**
 * The outputs copied into blobs and the logs adopted as blobs, as one entry, within the task's
 * size limit (measured before copying, and checked again after: outputs can grow meanwhile; the
 * blobs copied then are unreferenced and gc sweeps them).
 */
export async function snapshotEntry(
  run: RunContext,
  ran: Ran,
  store: Store,
  captured: Captured,
): Promise<Result<{ entry: Entry; files: number; bytes: number }, NotStored>> {
  const { settings, spec, o } = run;
  const logBytes = captured.stdout.size + captured.stderr.size;
  const expected = logBytes + (await outputBytes(spec.root, spec.cwd, spec.outputs));
  if (expected > spec.policy.maxEntryBytes) return err(await tooBig(run, ran, expected));
  const snap = await snapshotOutputs(store.blobs, settings.hashAlgorithm, spec.root, spec.cwd, spec.outputs);
  mark('snapshot');
  if (spec.outputs.length > 0 && snap.outputs.length === 0)
    o.reporter.warn(`output globs ${spec.outputs.map((g) => `'${g}'`).join(', ')} matched no files`);
  const logBlob = async (s: CapturedStream): Promise<BlobRef | null> => {
    if (!s.path) return null;
    await store.blobs.adopt(s.path, s.hash);
    return { hash: s.hash, size: s.size };
  };
  const entry: Entry = {
    schema: STORE_SCHEMA,
    key: run.key,
    task: spec.name,
    algorithm: settings.hashAlgorithm,
    outputs: snap.outputs,
    outputGlobs: spec.outputs,
    cwd: run.fp.fingerprint.cwd,
    logs: {
      stdout: await logBlob(captured.stdout),
      stderr: await logBlob(captured.stderr),
      chunks: captured.chunks,
    },
    exitCode: ran.execution.exitCode,
    durationMs: Math.round(ran.execution.durationMs),
    createdAt: run.now(),
    bytes: snap.bytes + logBytes,
    ttlMs: spec.policy.ttlMs,
    provenance: provenance(spec.root),
  };
  if (entry.bytes > spec.policy.maxEntryBytes) return err(await tooBig(run, ran, entry.bytes));
  return ok({
    entry,
    files: snap.outputs.filter((x) => x.type === 'file').length,
    bytes: snap.bytes, // the output files, as a hit reports them (entry.bytes adds the logs)
  });
}

async function tooBig(run: RunContext, ran: Ran, bytes: number): Promise<NotStored> {
  await dropCapture(ran);
  const why = oversizeReason(bytes, run.spec.policy.maxEntryBytes);
  return warnNotStored(run.o, why, `${why} (raise policies.<task>.maxSizeBytes or --max-entry-size)`);
}

// ── Commit ─────────────────────────────────────────────────────────────────────────────────────

/** The entry committed to the index (its paths checked first: invariant 4), and its SAVE line. */
export async function commitEntry(
  run: RunContext,
  ran: Ran,
  store: Store,
  entry: Entry,
): Promise<Result<void, NotStored>> {
  const paths = checkEntryPaths(run.spec.root, entry.outputs);
  if (!paths.ok) return err(warnNotStored(run.o, paths.error.message));
  await ran.staged;
  const committing = store.commit(entry, run.fp.fingerprint, run.label, {
    durability: durabilityOf(run.settings, 'run'),
  });
  // Written while other threads flush the blobs and commit the index (runTask writes it at the end
  // of the runs that store nothing): off the path of the command and of the commit.
  run.fp.saveManifest();
  const committed = await committing;
  mark('commit');
  if (!committed.ok) return err(warnNotStored(run.o, committed.error.message));
  store.log('SAVE', run.source, {
    ...run.logFields,
    files: entry.outputs.length,
    bytes: entry.bytes,
    exit: entry.exitCode,
  });
  return ok(undefined);
}

// ── Evict ──────────────────────────────────────────────────────────────────────────────────────

/** Eviction after a save, within its time budget; failing it costs only the eviction. */
export async function evictAfterCommit(run: RunContext, store: Store): Promise<void> {
  await evictAfterSave(store, run.settings, {
    now: run.now(),
    protect: run.key,
    source: run.source,
    info: (m) => run.o.reporter.info(m),
  }).catch((e) => run.o.reporter.warn(`eviction skipped: ${errorMessage(e)}`));
  mark('evict');
}

// ── Clean-up ───────────────────────────────────────────────────────────────────────────────────

/** A run whose result is not stored leaves no temp files and no staged fingerprint behind. */
export async function dropCapture(ran: Ran): Promise<void> {
  // Best effort: a leftover temp file is swept by gc, and the run's outcome must not change.
  for (const p of [ran.captured?.stdout.path, ran.captured?.stderr.path])
    if (p) await rm(p, { force: true }).catch(() => {});
}

export async function dropStaged(ran: Ran, key: string): Promise<void> {
  if (!ran.staged) return;
  const opened = ran.index;
  // A staged fingerprint nobody commits is only unused bytes, which gc removes.
  if (opened.ok) await ran.staged.then(() => opened.value.dropStagedFingerprint(key)).catch(() => {});
}

// ── Without the cache ──────────────────────────────────────────────────────────────────────────

/** The command without the cache; `warned`: a warning has already given `reason`. */
export async function runUncached(
  spec: TaskSpec,
  reason: string,
  o: Pick<RunOptions, 'signal' | 'reporter'>,
  warned = false,
): Promise<RunOutcome> {
  const execution = await execute(spec, () => {}, o.signal);
  if (execution.spawnError) o.reporter.warn(execution.spawnError);
  const { exitCode, signal, durationMs } = execution;
  return { kind: 'uncached', exitCode, ...(signal ? { signal } : {}), durationMs, reason, warned };
}

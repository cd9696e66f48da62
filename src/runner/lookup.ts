import type { Settings, TaskSpec } from '../config/resolve.js';
import { fingerprintTask } from '../fingerprint/fingerprint.js';
import { type ResidentAnswer, residentCheck } from '../fingerprint/resident.js';
import type { Entry } from '../store/entry.js';
import { HotIndex } from '../store/hot.js';
import { corruptIndex, corruptionText, isIndexCorruption } from '../store/index-errors.js';
import { cacheLayout } from '../store/layout.js';
import type { Store } from '../store/store.js';
import { errorMessage, failure, ok, type Result } from '../util/result.js';
import { mark, note } from '../util/trace.js';
import { loadExeca } from '../util/vendor.js';
import { discardEntry, type HotLookup, hotHit, serveIndexed } from './hit.js';
import type { NotStored, Ran } from './miss.js';
import { prepareStdin } from './stdin.js';
import { type RunContext, type RunOptions, type RunOutcome, taskKeyLabel } from './types.js';

/*
 * The one flow of a run, top to bottom:
 *
 *   key → 1 hot hit → 2 local hit → 3 remote pull → 4 single-flight → 5 run → 6 snapshot
 *       → 7 commit → 8 push → 9 evict
 *
 * A hit ends at 1, 2 or 3. The miss side (miss.ts) is imported only once a miss is certain, so a
 * hit never loads execa's caller or child_process; the team cache comes in as o.remote (a
 * RemoteTier the entry point built), so nothing here loads remote code either. Any cache problem
 * degrades to running the command uncached with a warning; the command's exit code always comes
 * back.
 */

const missSteps = () => import('./miss.js');
type MissSteps = Awaited<ReturnType<typeof missSteps>>;

/** Runs a task through the cache. */
export async function runTask(settings: Settings, spec: TaskSpec, o: RunOptions): Promise<RunOutcome> {
  mark('start');
  if (settings.disabled)
    return skipCache(spec, 'caching disabled (TASKVAULT_DISABLE / --no-cache)', o, false);

  // The key. Before it: what the command reads on stdin may be part of it (one fstat when not).
  const stdin = o.stdin ? await prepareStdin(o.stdin, settings.hashAlgorithm) : undefined;
  if (stdin?.kind === 'uncached') return skipCache(spec, stdin.reason, o);
  const hot = new HotIndex(cacheLayout(settings.cacheDir));
  // A running `taskvault daemon` may vouch for the inputs instead of a stat walk (docs/daemon.md).
  let daemon: ResidentAnswer | undefined;
  const unchangedSince = residentCheck(hot.layout.daemon, spec, settings.hashAlgorithm, (answer) => {
    daemon = answer;
    o.onDaemonAnswer?.(answer);
  });
  let fp: Awaited<ReturnType<typeof fingerprintTask>>;
  try {
    fp = await fingerprintTask(spec, {
      algorithm: settings.hashAlgorithm,
      salt: settings.salt,
      ...(stdin?.kind === 'keyed' ? { stdin: stdin.hash } : {}),
      cacheDir: settings.cacheDir,
      manifests: hot.manifests(),
      deferManifest: true,
      ...(unchangedSince ? { unchangedSince } : {}),
    });
  } catch (e) {
    return skipCache(spec, errorMessage(e), o);
  }
  mark('fingerprint');
  if (daemon) note(`daemon: ${daemon === 'unchanged' ? 'unchanged' : daemon.why}`);
  if (!fp.ok) return { kind: 'failed', failure: fp.error };
  for (const g of fp.value.unmatchedInputs) o.reporter.warn(`input glob '${g}' matched no files`);
  const { key } = fp.value;
  const run: RunContext = {
    settings,
    spec,
    fp: fp.value,
    key,
    label: taskKeyLabel(spec),
    logFields: { task: spec.name || spec.command.join(' '), hash: key.slice(0, 12) },
    source: o.source ?? 'run',
    now: o.now ?? Date.now,
    o,
  };
  try {
    return await lookUp(run, hot);
  } finally {
    // A stored miss has written it during its commit; a dry run writes nothing.
    if (!o.dryRun) fp.value.saveManifest();
  }
}

async function lookUp(run: RunContext, hot: HotIndex): Promise<RunOutcome> {
  const { o } = run;
  // 1. Hot hit: the entry's copy in hot/, served without loading the index.
  let fromHot: HotLookup | undefined;
  try {
    fromHot = o.force || o.dryRun ? undefined : await hotHit(hot, run);
  } catch (e) {
    // E.g. an output directory that cannot be written: the command runs instead (it may fail on
    // the same thing, with its own message and exit code).
    return skipCache(run.spec, errorMessage(e), o);
  }
  mark(fromHot?.kind === 'hit' ? 'hot hit' : 'hot lookup');
  if (fromHot?.kind === 'hit') return fromHot;

  // No copy in hot/, so no entry (Store.open gives every entry one): take the lock and run the
  // command without looking in the index. The team cache, a dry run and a damaged or expired copy
  // need the index first.
  if (fromHot === undefined && !o.dryRun && !o.remote) return missBeforeIndex(run, hot);
  return withIndex(run, (store) => lookUpInIndex(run, store, fromHot));
}

/** Steps 2 to 9 with the index open. */
async function lookUpInIndex(
  run: RunContext,
  store: Store,
  fromHot: HotLookup | undefined,
): Promise<RunOutcome> {
  const { o } = run;
  // What follows a cached entry that cannot be served: with a team cache, a pull (step 3).
  const next = o.remote && !o.force ? 'trying the team cache' : 'running the command';
  if (fromHot?.kind === 'unusable')
    await discardEntry(store, run, { why: fromHot.message, createdAt: fromHot.createdAt }, next);

  // 2. Local hit: the entry in the index, within its TTL.
  const entry = o.force || fromHot?.kind === 'unusable' ? undefined : await liveEntry(store, run);
  if (o.dryRun) return dryRunOutcome(run, entry);
  if (entry) {
    // Touched before restoring, so a concurrent eviction (which re-checks last access) spares it.
    store.touch(run.key, run.now());
    const hit = await serveIndexed(store, run, entry, { next });
    mark('restore');
    if (hit) {
      store.hot.putEntry(entry); // e.g. made by an older version: next time, from hot/
      return hit;
    }
  }

  // 3. Remote pull: after a local miss, or a local entry that could not be served (discarded now:
  // a blob a power loss damaged, say, since pulls are not flushed by default), a remote entry is
  // pulled into the local cache and served as a hit.
  const pulled = o.force
    ? undefined
    : await o.remote?.pull({
        store,
        key: run.key,
        fingerprint: run.fp.fingerprint,
        label: run.label,
        policy: run.spec.policy,
        reporter: o.reporter,
        now: run.now(),
      });
  if (pulled) {
    store.touch(run.key, run.now());
    const hit = await serveIndexed(store, run, pulled.entry, { pulled, next: 'running the command' });
    mark('restore');
    if (hit) return hit;
  }

  // 4. Single-flight: identical runs that start together execute once (invariant 5).
  const m = await missSteps();
  if (store.noWrites) {
    o.reporter.warn(`not cached: ${store.noWrites}`);
    return m.runUncached(run.spec, store.noWrites, o, true);
  }
  const lock = await m.lockKey(store.layout.locks, run);
  try {
    // Look again under the lock (fresh read txn), waited or not: a holder may have committed this
    // key and released the lock between our lookup and our taking it (--force runs regardless).
    if (lock.kind === 'acquired' && !o.force) {
      store.refresh();
      const again = store.getEntry(run.key);
      const hit = again && (await serveIndexed(store, run, again, { next: 'running the command' }));
      if (hit) return hit;
    }
    store.count('misses', 1, run.spec.name);
    store.log('MISS', run.source, run.logFields);
    return await runAndStore(run, m, async () => ok(store));
  } finally {
    if (lock.kind === 'acquired') lock.release();
  }
}

/**
 * Steps 4 to 9 for a key with no copy in hot/: no lookup in the index, which is loaded (~20 ms of
 * lmdb) and opened only once the lock is taken, right before the command starts (not while it runs:
 * miss.ts runCommand). Under the same lock; a process that waited for it finds the holder's result
 * in hot/.
 */
async function missBeforeIndex(run: RunContext, hot: HotIndex): Promise<RunOutcome> {
  // Both loads at once: one's file reads overlap the other's compiling. A failed preload is
  // retried, and reported, where execa is really needed.
  void loadExeca().catch(() => {});
  const m = await missSteps();
  const { o } = run;
  let store: Store | undefined;
  try {
    const why = m.cannotCache(hot, run);
    if (why) return m.runUncached(run.spec, why, o, true);
    // 4. Single-flight.
    const lock = await m.lockKey(hot.layout.locks, run);
    try {
      if (lock.kind === 'acquired' && !o.force) {
        // As above: a holder may have committed between our lookup and our lock. A copy that
        // cannot be served now is left for the index path of the next run; this one runs.
        const again = await hotHit(hot, run).catch(() => undefined);
        if (again?.kind === 'hit') return again;
      }
      return await runAndStore(run, m, async () => {
        const opened = await m.openIndexForMiss(hot, run);
        if (opened.ok) store = opened.value;
        return opened;
      });
    } finally {
      if (lock.kind === 'acquired') lock.release();
    }
  } catch (e) {
    // Only failures before the command started get here (after it, runAndStore reports them).
    o.reporter.warn(`cache skipped: ${errorMessage(e)}`);
    return m.runUncached(run.spec, errorMessage(e), o, true);
  } finally {
    if (store) await closeIndex(store);
  }
}

/**
 * Steps 5 to 9. `openIndex` is called right before the command starts (or returns the store
 * already open).
 */
async function runAndStore(
  run: RunContext,
  m: MissSteps,
  openIndex: () => Promise<Result<Store>>,
): Promise<RunOutcome> {
  // 5. Run.
  const ran = await m.runCommand(run, openIndex);
  // The command has run: whatever fails from here on costs the caching, never its exit code.
  let outcome: RunOutcome;
  try {
    outcome = await storeResult(run, m, ran);
  } catch (e) {
    run.o.reporter.warn(`not cached: ${errorMessage(e)}`);
    outcome = missOutcome(run, ran, { why: errorMessage(e), warned: true });
  }
  if (!(outcome.kind === 'miss' && outcome.stored)) await m.dropStaged(ran, run.key);
  return outcome;
}

/** Steps 6 to 9, for a command that has run. */
async function storeResult(run: RunContext, m: MissSteps, ran: Ran): Promise<RunOutcome> {
  const target = await m.storable(run, ran);
  if (!target.ok) return missOutcome(run, ran, target.error);
  const { store, captured } = target.value;
  try {
    // 6. Snapshot.
    const snap = await m.snapshotEntry(run, ran, store, captured);
    if (!snap.ok) return missOutcome(run, ran, snap.error);
    const { entry, files, bytes } = snap.value;
    // 7. Commit.
    const committed = await m.commitEntry(run, ran, store, entry);
    if (!committed.ok) return missOutcome(run, ran, committed.error);
    // 8. Push.
    await run.o.remote?.push(entry, { store, reporter: run.o.reporter });
    // 9. Evict.
    await m.evictAfterCommit(run, store);
    return missOutcome(run, ran, { stored: { files, bytes } });
  } catch (e) {
    await m.dropCapture(ran);
    store.log('ERROR', run.source, { ...run.logFields, error: errorMessage(e) });
    run.o.reporter.warn(`not cached: ${errorMessage(e)}`);
    return missOutcome(run, ran, { why: errorMessage(e), warned: true });
  }
}

// ── Helpers ───────────────────────────────────────────────────────────────────────────────────

/** The index's entry for this key, or undefined; one past its TTL is removed (and logged) here. */
async function liveEntry(store: Store, run: RunContext): Promise<Entry | undefined> {
  const entry = store.getEntry(run.key);
  if (!entry || entry.createdAt + run.spec.policy.ttlMs > run.now()) return entry;
  await store.remove(run.key, 'ttl');
  store.log('EVICT', run.source, { ...run.logFields, reason: 'ttl' });
  return undefined;
}

function dryRunOutcome(run: RunContext, entry: Entry | undefined): RunOutcome {
  const outcome: RunOutcome = {
    kind: 'dry-run',
    key: run.key,
    hit: entry !== undefined,
    fingerprint: run.fp.fingerprint,
  };
  if (entry) outcome.entry = entry;
  return outcome;
}

function missOutcome(
  run: RunContext,
  ran: Ran,
  r: { stored: { files: number; bytes: number } } | NotStored,
): RunOutcome {
  const { signal } = ran.execution;
  const base = {
    kind: 'miss' as const,
    key: run.key,
    exitCode: ran.execution.exitCode,
    ...(signal ? { signal } : {}),
    durationMs: ran.execution.durationMs,
  };
  return 'stored' in r
    ? { ...base, stored: true, ...r.stored }
    : { ...base, stored: false, notStored: r.why, warned: r.warned, files: 0, bytes: 0 };
}

/** Opens the index, runs `fn` with it and closes it; a broken index costs the caching, not the run. */
async function withIndex(run: RunContext, fn: (store: Store) => Promise<RunOutcome>): Promise<RunOutcome> {
  const { o, settings } = run;
  const { Store } = await import('../store/store.js');
  // Without a cache there is nothing to find, and a dry run does not create one.
  if (o.dryRun && !Store.exists(settings.cacheDir))
    return { kind: 'dry-run', key: run.key, hit: false, fingerprint: run.fp.fingerprint };
  const opened = Store.open(settings.cacheDir, { warn: (m) => o.reporter.warn(m) });
  if (!opened.ok) return skipCache(run.spec, opened.error.message, o);
  const store = opened.value;
  mark('open index');
  try {
    return await fn(store);
  } catch (e) {
    return missFailed(run, e, store);
  } finally {
    await closeIndex(store);
  }
}

/** A bug or an unexpected filesystem error inside the cache must not cost the user the run. */
function missFailed(run: RunContext, e: unknown, store?: Store): Promise<RunOutcome> {
  const corrupt = isIndexCorruption(e) ? corruptIndex(undefined, corruptionText(e)) : undefined;
  const why = corrupt ? `${corrupt.message} (${corrupt.hint})` : errorMessage(e);
  store?.log('ERROR', run.source, { error: why });
  return skipCache(run.spec, why, run.o);
}

async function closeIndex(store: Store): Promise<void> {
  // Whatever is unflushed is the access times and counters of this run: losing them loses no entry.
  await store.flush().catch(() => {});
  await store.close().catch(() => {});
  mark('close index');
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
  return (await missSteps()).runUncached(spec, reason, o, warn);
}

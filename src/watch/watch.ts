import type { FSWatcher } from 'chokidar';
import type { Settings, TaskSpec } from '../config/resolve.js';
import { remoteTier } from '../remote/tier.js';
import { signalExitCode } from '../runner/execute.js';
import { runTask } from '../runner/lookup.js';
import type { Reporter, RunOutcome } from '../runner/types.js';
import { importModule } from '../util/import-module.js';
import { monotonicMs } from '../util/monotonic.js';
import { errorMessage, type Failure, type Result } from '../util/result.js';
import { type Change, type ChangeKind, ChangeSet } from './changes.js';
import { type WatchPlan, watchPlan } from './plan.js';

export interface Resolved {
  settings: Settings;
  spec: TaskSpec;
}

export interface Cycle {
  /** 1 for the initial run. */
  n: number;
  /** Net changes that started this cycle (empty for the initial run). */
  changes: Change[];
  /** The config file was re-read for this cycle. */
  configReloaded: boolean;
}

/** What the loop tells its caller (the CLI prints these; the loop never writes to the terminal). */
export interface WatchEvents {
  cycleStart(cycle: Cycle, resolved: Resolved): void;
  cycleEnd(cycle: Cycle, resolved: Resolved, outcome: RunOutcome, wallMs: number, cancelled: boolean): void;
  /** The config (or the task in it) cannot be resolved; the loop waits for the next change. */
  configError(failure: Failure, changes: Change[]): void;
  /** Idle again: `plan.globs` are being watched. */
  waiting(plan: WatchPlan): void;
  watcherError(message: string): void;
}

export interface WatchOptions {
  /** Resolves settings and the task; called at start and again whenever the config file changes. */
  resolve(): Promise<Result<Resolved>>;
  debounceMs: number;
  /** Poll instead of using fs events (network mounts, some containers and VMs). */
  poll: boolean;
  /** Stop a running command when inputs change, and start over. */
  restart: boolean;
  force: boolean;
  reporter: Reporter;
  events: WatchEvents;
}

export type WatchEnd = { kind: 'stopped'; signal: NodeJS.Signals } | { kind: 'failed'; failure: Failure };

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const POLL_INTERVAL_MS = 100;

/**
 * Runs the task once, then again through the cache each time its inputs (or the config) change,
 * until SIGINT/SIGTERM/SIGHUP. Every cycle goes through runTask, so going back to an earlier
 * state is a cache hit. Bursts of events are debounced into one run; events during a run queue
 * exactly one more run (or, with `restart`, cancel the running one).
 *
 * Signals: while a command runs, execute() forwards the signal to it; this loop only notes that
 * it must stop, lets that run finish (an interrupted run is never cached), and returns.
 */
export async function watchTask(o: WatchOptions): Promise<WatchEnd> {
  const first = await o.resolve();
  if (!first.ok) return { kind: 'failed', failure: first.error };
  let resolved: Resolved = first.value;
  /** The config is broken: every change tries it again, and nothing runs until it resolves. */
  let broken = false;

  const pending = new ChangeSet();
  let configDirty = false;
  let due = false;
  let timer: NodeJS.Timeout | undefined;
  let running: AbortController | undefined;
  let stopSignal: NodeJS.Signals | undefined;
  let wakeUp: (() => void) | undefined;
  const wake = () => {
    wakeUp?.();
    wakeUp = undefined;
  };

  const onSignal = (signal: NodeJS.Signals) => {
    stopSignal ??= signal;
    wake();
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);

  let plan = watchPlan(resolved.settings, resolved.spec);
  const onEvent = (kind: ChangeKind, path: string) => {
    const relevance = plan.relevance(path);
    if (!relevance) return;
    if (relevance === 'config') configDirty = true;
    pending.record(kind, path);
    // Debounce: the run starts once events have been quiet for debounceMs, even if a run is queued.
    due = false;
    clearTimeout(timer);
    timer = setTimeout(() => {
      due = true;
      if (o.restart) running?.abort();
      wake();
    }, o.debounceMs);
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = await startWatcher(plan, o, onEvent);
    for (let n = 1; stopSignal === undefined; ) {
      if (n > 1) {
        o.events.waiting(plan);
        while (stopSignal === undefined && !(due && pending.size > 0)) {
          await new Promise<void>((r) => {
            wakeUp = r;
          });
        }
        if (stopSignal !== undefined) break;
      }
      due = false;
      const changes = pending.take();
      const reload = configDirty || broken;
      configDirty = false;
      if (reload) {
        const next = await o.resolve();
        if (!next.ok) {
          broken = true;
          o.events.configError(next.error, changes);
          // Shown with the run that follows the fix. Not `due`: only a new change retries.
          pending.putBack(changes);
          n = Math.max(n, 2);
          continue;
        }
        broken = false;
        resolved = next.value;
        const nextPlan = watchPlan(resolved.settings, resolved.spec);
        if (nextPlan.signature !== plan.signature) {
          await watcher.close();
          plan = nextPlan;
          watcher = await startWatcher(plan, o, onEvent);
        }
      }
      if (stopSignal !== undefined) break; // Ctrl-C while the config was being re-read
      const cycle: Cycle = { n, changes, configReloaded: reload };
      o.events.cycleStart(cycle, resolved);
      const controller = new AbortController();
      running = controller;
      const started = monotonicMs();
      const outcome = await runTask(resolved.settings, resolved.spec, {
        force: o.force,
        source: 'watch',
        reporter: o.reporter,
        // Built per cycle: a reloaded config may change the remote.
        remote: remoteTier(resolved.settings),
        signal: controller.signal,
        recheckInputs: true,
      });
      running = undefined;
      // Aborted, and the command died of the SIGTERM that the abort sent (not a hit served meanwhile).
      const cancelled =
        controller.signal.aborted &&
        (outcome.kind === 'miss' || outcome.kind === 'uncached') &&
        outcome.exitCode === signalExitCode('SIGTERM');
      o.events.cycleEnd(cycle, resolved, outcome, monotonicMs() - started, cancelled);
      n++;
    }
  } finally {
    clearTimeout(timer);
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    await watcher?.close();
  }
  return { kind: 'stopped', signal: stopSignal ?? 'SIGINT' };
}

async function startWatcher(
  plan: WatchPlan,
  o: Pick<WatchOptions, 'poll' | 'events'>,
  onEvent: (kind: ChangeKind, path: string) => void,
): Promise<FSWatcher> {
  // Imported here: the CLI's bundle must not load chokidar unless a watch starts.
  const { watch } = await importModule<typeof import('chokidar')>('chokidar');
  const watcher = watch(plan.roots, {
    ignoreInitial: true,
    ignored: (p: string) => plan.prune(p),
    usePolling: o.poll,
    interval: POLL_INTERVAL_MS,
    binaryInterval: POLL_INTERVAL_MS,
    // chokidar's own atomic-save handling holds unlink events back for 100 ms, which splits a burst
    // of edits and deletes into two runs. The debounce plus ChangeSet folding already turns an
    // editor's temp-write-and-rename into one change, with no extra delay.
    atomic: false,
  });
  watcher.on('add', (p) => onEvent('add', p));
  watcher.on('change', (p) => onEvent('change', p));
  watcher.on('unlink', (p) => onEvent('unlink', p));
  watcher.on('error', (e) => o.events.watcherError(errorMessage(e)));
  await new Promise<void>((r) => watcher.once('ready', () => r()));
  return watcher;
}

import { errorMessage } from '../../util/result.js';
import { noteUnfinishedWrites } from '../../util/unfinished.js';
import { isIndexCorruption } from '../index-errors.js';

/*
 * How index writes fail in lmdb-js, and how the store keeps such failures from costing the run:
 * best-effort writes (access times, counters) are fired and forgotten, a failed commit is reported
 * once, and shutting down never waits on a promise lmdb-js will not settle.
 */

/** Set once an index write failed in this process (disk full): lmdb-js then leaves promises pending. */
let writeFailed = false;

export const hasWriteFailed = (): boolean => writeFailed;

export function noteWriteFailed(): void {
  writeFailed = true;
}

/**
 * Waits for `p`, but no longer than `ms`: shutting down must never hang the run. Giving up is
 * noted, so that the process is not then ended before those writes (noteUnfinishedWrites).
 */
export async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = Symbol('gave up');
  const first = await Promise.race([
    p,
    new Promise((r) => (timer = setTimeout(() => r(gaveUp), ms))),
  ]).finally(() => clearTimeout(timer));
  if (first === gaveUp) noteUnfinishedWrites();
}

/**
 * Best-effort index writes (access times, counters) must never crash the run: a failed
 * LMDB commit rejects both the write and a separate commitError promise, and either one unhandled
 * would kill the process after the command already ran.
 */
export function background(p: Promise<unknown> | unknown): void {
  if (p instanceof Promise || (p && typeof (p as Promise<unknown>).then === 'function'))
    (p as Promise<unknown>).catch((e: { commitError?: Promise<unknown> }) => {
      writeFailed = true;
      // The same failure as the one just caught: settled here so it is not reported twice.
      e?.commitError?.catch(() => {});
    });
}

/** lmdb-js reports a failed commit as "Commit failed" with the real cause in a commitError promise. */
export async function writeErrorMessage(e: unknown): Promise<string> {
  const inner = (e as { commitError?: Promise<unknown> })?.commitError;
  if (inner && typeof inner.then === 'function') {
    const cause = await inner.then(
      () => undefined,
      (x: unknown) => x,
    );
    if (cause instanceof Error) return cause.message.replace(/: Attempting to write page.*/, '');
  }
  return errorMessage(e);
}

let guarded = false;

/**
 * When a commit fails (disk full), lmdb-js rejects an internal promise nobody can reach, which
 * would crash the process after the user's command already ran (invariant 3), and it prints the
 * error with a stack. Both are swallowed here: the failure reaches us through the awaited commit
 * (one warning) or concerned a best-effort write. Any other unhandled rejection still crashes.
 */
export function guardLmdbWriteFailures(): void {
  if (guarded) return;
  guarded = true;
  // A corrupt index (see index-check.ts) fails lmdb's own transactions the same way.
  const isLmdbWriteFailure = (x: unknown) =>
    x instanceof Error &&
    (/^Commit failed \(see commitError/.test(x.message) ||
      /Attempting to write page|MDB_BAD_TXN/.test(x.message) ||
      isIndexCorruption(x));
  process.on('unhandledRejection', (reason) => {
    if (isLmdbWriteFailure(reason)) {
      writeFailed = true;
      // The cause of the failure just handled: nothing more to learn from it.
      (reason as { commitError?: Promise<unknown> }).commitError?.catch(() => {});
      return;
    }
    // Anything else: if the embedding program has its own handler, it decides; else crash as usual.
    if (process.listenerCount('unhandledRejection') === 1) throw reason;
  });
  const consoleError = console.error.bind(console);
  console.error = (...args: unknown[]) => {
    if (args.length === 1 && isLmdbWriteFailure(args[0])) return;
    consoleError(...args);
  };
}

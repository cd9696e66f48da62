import type { RootDatabase } from 'lmdb';
import { errorMessage } from '../../util/result.js';
import { noteUnfinishedWrites } from '../../util/unfinished.js';

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

/**
 * An awaited write transaction. lmdb-js rejects a failed commit with "Commit failed" and puts the
 * cause in a second promise (commitError), rejected at the same time: handled here, or it would be
 * an unhandled rejection in whatever program uses the store (the CLI, or one using the SDK).
 */
export function transact<T>(env: RootDatabase, body: () => T): Promise<T> {
  return env.transaction(body).catch((e: { commitError?: Promise<unknown> }) => {
    writeFailed = true;
    e?.commitError?.catch(() => {}); // commit() reads the cause from it (writeErrorMessage)
    throw e;
  });
}

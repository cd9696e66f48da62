import { isIndexCorruption } from '../store/index-errors.js';

/** lmdb-js's own errors for a failed write: a commit that could not be written, or a corrupt index. */
const isLmdbWriteFailure = (x: unknown): boolean =>
  x instanceof Error &&
  (/^Commit failed \(see commitError/.test(x.message) ||
    /Attempting to write page|MDB_BAD_TXN/.test(x.message) ||
    isIndexCorruption(x));

let guarded = false;

/**
 * For the CLI process only (it owns its console and its process; the SDK must never do this to its
 * host): when an index commit fails (disk full, corrupt index), lmdb-js prints the error with its
 * stack through console.error, and the store reports it as one warning. The print is dropped here.
 * The store handles every rejection of a failed write itself (store.ts `write`, `background`);
 * should one of lmdb's own still go unhandled, it must not end the process after the user's command
 * ran (invariant 3). Any other unhandled rejection still crashes as usual.
 */
export function guardLmdbWriteFailures(): void {
  if (guarded) return;
  guarded = true;
  process.on('unhandledRejection', (reason) => {
    if (isLmdbWriteFailure(reason)) {
      (reason as { commitError?: Promise<unknown> }).commitError?.catch(() => {});
      return;
    }
    // Anything else: if another handler was added, it decides; else crash as usual.
    if (process.listenerCount('unhandledRejection') === 1) throw reason;
  });
  const consoleError = console.error.bind(console);
  console.error = (...args: unknown[]) => {
    if (args.length === 1 && isLmdbWriteFailure(args[0])) return;
    consoleError(...args);
  };
}

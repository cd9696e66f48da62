/**
 * Whether shutting down gave up waiting for index writes (Store.flush/close are bounded, so that a
 * stuck disk never hangs a run). The bin then lets Node wind down on its own, which waits for
 * them, instead of exiting at once (src/cli.cts). Its own module: the hit path reads it without
 * loading the store.
 */
let unfinished = false;

export const noteUnfinishedWrites = (): void => {
  unfinished = true;
};

export const writesUnfinished = (): boolean => unfinished;

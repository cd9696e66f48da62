/**
 * How many commands this process has started (execute.ts counts them). The bin keeps the miss
 * path's compiled code in its code cache when any did (src/cli.cts). Its own module: the hit path
 * reads it and must not load execute.ts (which loads child_process).
 */
let count = 0;

export const noteCommandStarted = (): void => {
  count++;
};

export const commandsStarted = (): number => count;

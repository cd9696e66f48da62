/**
 * Whether a process with this pid exists on this host. EPERM means it does, but belongs to another
 * user. A recycled pid reads as alive: callers err on the side of keeping what it might own.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Signals whose default action ends a process without dumping core: the ones `reraiseAtExit`
 * passes on. (Ending by SIGQUIT, SIGSEGV, SIGABRT and the like would leave a core file of
 * TaskVault's own.)
 */
const ENDING_SIGNALS = new Set<NodeJS.Signals>([
  'SIGHUP',
  'SIGINT',
  'SIGKILL',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGUSR1',
  'SIGUSR2',
  'SIGVTALRM',
  'SIGPROF',
  'SIGIO',
  'SIGPOLL',
  'SIGPWR',
  'SIGSTKFLT',
]);

/**
 * Makes this process end by `signal` once it exits, after its other 'exit' listeners (so once its
 * output is written and its files closed), as the command that `signal` killed ended: whoever
 * waits for it then sees death by that signal rather than an exit code of 128 + N, and reacts as to
 * the bare command (bash stops a loop on Ctrl-C only when the process it waited for died of
 * SIGINT). The exit code already set stays where that cannot be done: on Windows, for a signal
 * whose default action dumps core (ENDING_SIGNALS), or if the signal does not end the process.
 * Returns whether it will try.
 */
export function reraiseAtExit(signal: NodeJS.Signals): boolean {
  if (process.platform === 'win32' || !ENDING_SIGNALS.has(signal)) return false;
  process.once('exit', () => {
    try {
      process.removeAllListeners(signal);
      if (signal !== 'SIGKILL') {
        // Node acts on some signals itself (SIGPIPE is ignored, SIGUSR1 starts the inspector): a
        // listener added and removed leaves the default action in place (libuv restores it).
        const none = () => {};
        process.on(signal, none);
        process.off(signal, none);
      }
      process.kill(process.pid, signal);
    } catch {
      // The exit code stays.
    }
  });
  return true;
}

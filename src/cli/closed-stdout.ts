/*
 * `taskvault ls | head`: once the reader has gone, a write to stdout fails with EPIPE, which Node
 * emits as an 'error' event and, with no listener, prints as a crash with a stack. The CLI notes it
 * instead, and commands that print a lot stop at the next page (cli/ls.ts).
 */

let closed = false;

/** Whether stdout's reader has gone (a write failed with EPIPE). */
export const stdoutClosed = (): boolean => closed;

let guarded = false;

export function guardClosedStdout(): void {
  if (guarded) return;
  guarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    closed = true;
  });
}

/** Writes `text` to stdout and waits until it is handed over; false once the reader has gone. */
export function writeOut(text: string): Promise<boolean> {
  if (closed) return Promise.resolve(false);
  return new Promise((resolve) => process.stdout.write(text, (e) => resolve(!e && !closed)));
}

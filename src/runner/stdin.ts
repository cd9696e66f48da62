import { fstatSync, readSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { HashAlgorithm, StdinMode } from '../config/types.js';
import { hashBytes } from '../fingerprint/hash.js';

/*
 * What the command may read on its standard input, decided before the key is looked up (a key
 * must be known before the lookup, so keyed stdin is read to its end first).
 *
 * - A terminal, /dev/null (any character device), a closed or absent stdin: as before, untouched,
 *   not part of the key; the command inherits it. Costs one fstat.
 * - A pipe, a socket or a regular file (`auto`, the default, and `key`): read to its end, up to
 *   MAX_STDIN_BYTES, in memory; its hash is part of the key and the command reads the same bytes
 *   from a pipe on a miss. An empty one is no stdin at all (the key of `</dev/null`).
 * - `auto` never waits long: a pipe with neither data nor its end within STDIN_WAIT_MS (a CI runner
 *   holding one open, a slow producer), or one that stops sending for STDIN_STALL_MS before its
 *   end, or one past MAX_STDIN_BYTES, runs the command uncached with a warning, and the command
 *   gets what was read and everything after it, as it arrives. Never a hit that might not match.
 * - `key` waits for the end however long it takes; `ignore` leaves stdin alone (not in the key).
 */

export type { StdinMode };

/** Stdin past this is not keyed: the run is not cached. */
export const MAX_STDIN_BYTES = 64 * 1024 * 1024;
/** `auto`: how long a pipe may take to give its first byte or its end. */
export const STDIN_WAIT_MS = 100;
/** `auto`: how long a pipe that gave data may then go quiet before its end. */
export const STDIN_STALL_MS = 1000;

export type PreparedStdin =
  /** Not read: the command inherits it (and it is not part of the key). */
  | { kind: 'untouched' }
  /** Read, and it held nothing: the command gets an empty stdin; not part of the key. */
  | { kind: 'empty' }
  /** Read to its end: `hash` goes into the key, the command gets `data`. */
  | { kind: 'keyed'; hash: string; data: Buffer }
  /** Not keyable: the run is not cached (`reason`); the command gets `data`, then `rest` live. */
  | { kind: 'uncached'; reason: string; data: Buffer; rest?: Readable; inherit?: boolean };

const HINT = 'pass --stdin=ignore if the command does not read it, or --stdin=key to wait for its end';

/** How the process's stdin is given to the command; set once per run (stdin is per process). */
let prepared: PreparedStdin | undefined;

/**
 * Decides what the command's stdin is and what of it goes into the key (see above). `ignore`, and
 * any stdin that is not a pipe, socket or regular file, is left untouched at the cost of one fstat.
 */
export async function prepareStdin(mode: StdinMode, algorithm: HashAlgorithm): Promise<PreparedStdin> {
  prepared = await decide(mode, algorithm);
  return prepared;
}

async function decide(mode: StdinMode, algorithm: HashAlgorithm): Promise<PreparedStdin> {
  if (mode === 'ignore') return { kind: 'untouched' };
  let st: ReturnType<typeof fstatSync>;
  try {
    st = fstatSync(0);
  } catch {
    return { kind: 'untouched' }; // closed (EBADF): nothing to read, as before
  }
  if (st.isFile()) return readFile(st.size, algorithm);
  if (!st.isFIFO() && !st.isSocket()) return { kind: 'untouched' }; // a terminal, /dev/null, ...
  return readStream(mode, algorithm);
}

/** A regular file: read from where it stands to its end (always there, so nothing waits). */
function readFile(size: number, algorithm: HashAlgorithm): PreparedStdin {
  if (size > MAX_STDIN_BYTES)
    return {
      kind: 'uncached',
      reason: `stdin is a file of more than ${MAX_STDIN_BYTES / 1048576} MiB, too large to key`,
      data: Buffer.alloc(0),
      inherit: true,
    };
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(Math.max(size, 65536), MAX_STDIN_BYTES + 1));
      const n = readSync(0, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      // Grown while read: what was read goes to the command, uncached.
      if (total > MAX_STDIN_BYTES) return tooLarge(Buffer.concat(chunks));
    }
  } catch (e) {
    return {
      kind: 'uncached',
      reason: `stdin could not be read: ${(e as Error).message}`,
      data: Buffer.concat(chunks),
    };
  }
  const data = Buffer.concat(chunks);
  return data.length === 0 ? { kind: 'empty' } : { kind: 'keyed', hash: hashBytes(algorithm, data), data };
}

const tooLarge = (data: Buffer, rest?: Readable): PreparedStdin => ({
  kind: 'uncached',
  reason: `stdin holds more than ${MAX_STDIN_BYTES / 1048576} MiB, too much to key`,
  data,
  ...(rest ? { rest } : {}),
});

/**
 * A pipe or socket, through process.stdin (libuv, non-blocking, so a wait can end: a blocking read
 * in the thread pool could not be taken back and would steal bytes from the command). Node leaves
 * fd 0 open when the stream is done with it, and restores its flags at exit.
 */
async function readStream(mode: StdinMode, algorithm: HashAlgorithm): Promise<PreparedStdin> {
  // process.stdin itself, not a Socket of our own on fd 0: execa's (ESM) import of node:process
  // reads process.stdin, whose second handle on fd 0 would fail with EEXIST.
  let sock: NodeJS.ReadStream;
  try {
    sock = process.stdin;
  } catch (e) {
    return {
      kind: 'uncached',
      reason: `stdin could not be read: ${(e as Error).message}`,
      data: Buffer.alloc(0),
    };
  }
  return new Promise<PreparedStdin>((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (r: PreparedStdin, keepReading = false) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('error', onError);
      if (keepReading) sock.pause();
      else sock.destroy();
      resolve(r);
    };
    const data = () => Buffer.concat(chunks);
    let armed = 0;
    const arm = (ms: number, why: () => string) => {
      if (mode !== 'auto') return;
      if (timer) clearTimeout(timer);
      const generation = ++armed;
      // The timer phase runs before the poll phase: after a long synchronous stretch (a loaded
      // machine) the wait can expire with the pipe's end already in the kernel. One poll round
      // (setImmediate) lets that end or data arrive before the run is given up as uncached.
      timer = setTimeout(
        () =>
          setImmediate(() => {
            if (generation === armed)
              settle({ kind: 'uncached', reason: `${why()}; ${HINT}`, data: data(), rest: sock }, true);
          }),
        ms,
      );
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      if (total > MAX_STDIN_BYTES) return settle(tooLarge(data(), sock), true);
      arm(
        STDIN_STALL_MS,
        () => `stdin sent ${total} bytes, then nothing for ${STDIN_STALL_MS} ms before its end`,
      );
    };
    const onEnd = () =>
      settle(
        total === 0 ? { kind: 'empty' } : { kind: 'keyed', hash: hashBytes(algorithm, data()), data: data() },
      );
    const onError = (e: Error) =>
      settle({ kind: 'uncached', reason: `stdin could not be read: ${e.message}`, data: data() });
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.on('error', onError);
    arm(STDIN_WAIT_MS, () => `stdin is a pipe that sent nothing and did not end within ${STDIN_WAIT_MS} ms`);
  });
}

/** The `stdin` option for spawning the command: as prepared, or inherited when nothing was. */
export function childStdin(): 'inherit' | 'ignore' | 'pipe' {
  const p = prepared;
  if (!p || p.kind === 'untouched' || (p.kind === 'uncached' && p.inherit)) return 'inherit';
  return p.kind === 'empty' ? 'ignore' : 'pipe';
}

/**
 * Feeds the command's stdin pipe (when childStdin() said 'pipe'): the bytes read, then whatever
 * else arrives. The command may exit without reading it all (EPIPE): that is its business.
 * Returns a function that stops forwarding, to call once the command has exited.
 */
export function feedChild(sink: Writable | null | undefined): () => void {
  const p = prepared;
  if (!sink || !p || (p.kind !== 'keyed' && p.kind !== 'uncached') || childStdin() !== 'pipe')
    return () => {};
  sink.on('error', () => {}); // EPIPE: the command stopped reading, as it may
  const rest = p.kind === 'uncached' ? p.rest : undefined;
  if (p.data.length > 0) sink.write(p.data);
  if (!rest) {
    sink.end();
    return () => {};
  }
  rest.pipe(sink);
  rest.resume();
  return () => {
    rest.unpipe(sink);
    rest.destroy();
  };
}

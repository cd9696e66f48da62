import { closeSync, openSync, readSync } from 'node:fs';
import { STREAM_THRESHOLD } from '../fingerprint/hash.js';
import type { BlobProblem, BlobStore } from '../store/blobs.js';
import type { Entry, StreamId } from '../store/entry.js';
import { passedThrough } from '../util/term.js';

export interface ReplayTarget {
  write(stream: StreamId, chunk: Uint8Array): Promise<void>;
}

const closedStreams = new Set<StreamId>();
let watchingErrors = false;

/** Writes to the process's own stdout/stderr, waiting for each write to be accepted. */
export const processTarget: ReplayTarget = {
  write: (stream, chunk) => {
    if (!watchingErrors) {
      // A reader that went away (`| head -1`) ends the replay, as it would have ended the command.
      // The 'error' event can come after the write callback, so the listeners stay for good.
      watchingErrors = true;
      process.stdout.on('error', () => closedStreams.add(1));
      process.stderr.on('error', () => closedStreams.add(2));
    }
    if (closedStreams.has(stream)) return Promise.reject(new ReplayClosed());
    passedThrough(stream, chunk);
    return new Promise((resolve, reject) => {
      (stream === 1 ? process.stdout : process.stderr).write(chunk, (e) => {
        if (!e) resolve();
        else if ((e as NodeJS.ErrnoException).code === 'EPIPE') reject(new ReplayClosed());
        else reject(e);
      });
    });
  },
};

/** The reader of our stdout or stderr closed it: stop replaying; not a cache problem. */
export class ReplayClosed extends Error {}

/** Verified logs: small ones held in memory (read once), large ones checked and left in the store. */
export type VerifiedLogs = Partial<Record<StreamId, Buffer | 'in-store'>>;

/**
 * Checks the log blobs of an entry before a single byte is replayed (invariant 1). Logs up to
 * STREAM_THRESHOLD are read once and replayed from that same buffer; larger ones are hashed in a
 * streaming pass and replayed from the (immutable) blob in slices, so memory stays bounded.
 */
export async function verifyLogs(
  blobs: BlobStore,
  entry: Entry,
): Promise<{ ok: true; logs: VerifiedLogs } | { ok: false; problem: BlobProblem }> {
  const logs: VerifiedLogs = {};
  for (const [stream, ref] of [
    [1, entry.logs.stdout],
    [2, entry.logs.stderr],
  ] as const) {
    if (!ref) continue;
    if (ref.size <= STREAM_THRESHOLD) {
      const read = await blobs.readVerified(entry.algorithm, ref);
      if (!read.ok) return { ok: false, problem: read.error };
      logs[stream] = read.value;
    } else {
      const problem = await blobs.verify(entry.algorithm, ref);
      if (problem) return { ok: false, problem };
      logs[stream] = 'in-store';
    }
  }
  return { ok: true, logs };
}

/** Replays stdout and stderr, verified by verifyLogs, in the order the original run produced them. */
export async function replayLogs(
  blobs: BlobStore,
  entry: Entry,
  logs: VerifiedLogs,
  target: ReplayTarget = processTarget,
): Promise<void> {
  const fds: Partial<Record<StreamId, number>> = {};
  const offsets: Record<StreamId, number> = { 1: 0, 2: 0 };
  let slice: Buffer | undefined;
  const write = async (stream: StreamId, chunk: Buffer): Promise<boolean> => {
    try {
      await target.write(stream, chunk);
      return true;
    } catch (e) {
      if (e instanceof ReplayClosed) return false;
      throw e;
    }
  };
  try {
    for (const [stream, length] of entry.logs.chunks) {
      const log = logs[stream];
      const ref = stream === 1 ? entry.logs.stdout : entry.logs.stderr;
      if (log === undefined || !ref) continue;
      if (log !== 'in-store') {
        const at = offsets[stream];
        offsets[stream] += length;
        if (!(await write(stream, log.subarray(at, at + length)))) return;
        continue;
      }
      fds[stream] ??= openSync(blobs.path(ref.hash), 'r');
      slice ??= Buffer.allocUnsafe(STREAM_THRESHOLD);
      for (let left = length; left > 0; ) {
        const n = readSync(fds[stream], slice, 0, Math.min(left, slice.length), offsets[stream]);
        if (n === 0) return;
        offsets[stream] += n;
        left -= n;
        if (!(await write(stream, Buffer.from(slice.subarray(0, n))))) return;
      }
    }
  } finally {
    for (const fd of Object.values(fds)) closeSync(fd);
  }
}

import { closeSync, openSync, readSync } from 'node:fs';
import { STREAM_THRESHOLD } from '../fingerprint/hash.js';
import type { BlobProblem, BlobStore } from '../store/blobs.js';
import type { Entry, StreamId } from '../store/entry.js';

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

/** Checks the log blobs of an entry before a single byte is replayed (invariant 1). */
export async function verifyLogs(blobs: BlobStore, entry: Entry): Promise<BlobProblem | undefined> {
  for (const ref of [entry.logs.stdout, entry.logs.stderr]) {
    if (!ref) continue;
    const problem = await blobs.verify(entry.algorithm, ref);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Replays stdout and stderr in the order the original run produced them. Logs must have been
 * verified first; large logs are read in slices so memory stays bounded.
 */
export async function replayLogs(
  blobs: BlobStore,
  entry: Entry,
  target: ReplayTarget = processTarget,
): Promise<void> {
  const { stdout, stderr } = entry.logs;
  const fds: Partial<Record<StreamId, number>> = {};
  const offsets: Record<StreamId, number> = { 1: 0, 2: 0 };
  try {
    if (stdout) fds[1] = openSync(blobs.path(stdout.hash), 'r');
    if (stderr) fds[2] = openSync(blobs.path(stderr.hash), 'r');
    const buf = Buffer.allocUnsafe(
      Math.min(STREAM_THRESHOLD, Math.max(stdout?.size ?? 0, stderr?.size ?? 0, 1)),
    );
    for (const [stream, length] of entry.logs.chunks) {
      const fd = fds[stream];
      if (fd === undefined) continue;
      let left = length;
      while (left > 0) {
        const n = readSync(fd, buf, 0, Math.min(left, buf.length), offsets[stream]);
        if (n === 0) return;
        offsets[stream] += n;
        left -= n;
        try {
          await target.write(stream, Buffer.from(buf.subarray(0, n)));
        } catch (e) {
          if (e instanceof ReplayClosed) return;
          throw e;
        }
      }
    }
  } finally {
    for (const fd of Object.values(fds)) closeSync(fd);
  }
}

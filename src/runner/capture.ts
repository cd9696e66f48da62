import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import type { HashAlgorithm } from '../config/types.js';
import { createHasher, type Hasher } from '../fingerprint/hash.js';
import type { StreamId } from '../store/entry.js';
import { errorMessage } from '../util/result.js';

export interface CapturedStream {
  /** Temp file holding the bytes, or undefined if nothing was written. */
  path: string | undefined;
  hash: string;
  size: number;
}

export interface Captured {
  stdout: CapturedStream;
  stderr: CapturedStream;
  chunks: Array<[StreamId, number]>;
}

/**
 * Records a child's stdout and stderr as they arrive: bytes to one temp file per stream (so a
 * 1 GB log never sits in memory), hashed on the way, plus the order in which runs of bytes from
 * each stream arrived so a hit can replay the interleaving.
 */
export class LogCapture {
  private readonly fds: [number | undefined, number | undefined] = [undefined, undefined];
  private readonly hashers: [Hasher, Hasher];
  private readonly sizes: [number, number] = [0, 0];
  private readonly chunks: Array<[StreamId, number]> = [];
  private failed = false;
  /** Why capture stopped (e.g. ENOSPC), if it did. */
  error: string | undefined;

  constructor(
    readonly algorithm: HashAlgorithm,
    /** Returns a fresh temp path for each stream; undefined disables capture (pass-through). */
    private readonly tempPath: ((tag: string) => string) | undefined,
    private readonly paths: [string | undefined, string | undefined] = [undefined, undefined],
  ) {
    this.hashers = [createHasher(algorithm), createHasher(algorithm)];
  }

  write(stream: StreamId, chunk: Uint8Array): void {
    if (!this.tempPath || this.failed) return;
    const i = stream - 1;
    try {
      if (this.fds[i] === undefined) {
        this.paths[i] = this.tempPath(i === 0 ? 'stdout' : 'stderr');
        this.fds[i] = openSync(this.paths[i]!, 'wx');
      }
      writeSync(this.fds[i]!, chunk);
    } catch (e) {
      // Disk full or cache dir gone: keep streaming to the terminal, just don't cache this run.
      this.failed = true;
      this.error = errorMessage(e);
      return;
    }
    this.hashers[i]!.update(chunk);
    this.sizes[i]! += chunk.byteLength;
    const last = this.chunks.at(-1);
    if (last && last[0] === stream) last[1] += chunk.byteLength;
    else this.chunks.push([stream, chunk.byteLength]);
  }

  /** Closes the temp files. undefined if capture failed part way (the run is then not cached). */
  finish(): Captured | undefined {
    for (const fd of this.fds) if (fd !== undefined) closeSync(fd);
    if (this.failed) for (const p of this.paths) if (p) rmSync(p, { force: true });
    if (this.failed || !this.tempPath) return undefined;
    const stream = (i: 0 | 1): CapturedStream => ({
      path: this.paths[i],
      hash: this.hashers[i].digest(),
      size: this.sizes[i],
    });
    return { stdout: stream(0), stderr: stream(1), chunks: this.chunks };
  }
}

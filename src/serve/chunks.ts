/**
 * A value sent as a stream of chunk frames (a file object on the Python side), handed to the SDK
 * as an AsyncIterable. Bounded: the frame reader waits while `LIMIT` chunks are queued, so a fast
 * sender cannot fill the service's memory. Once the request is over, later chunks are dropped, so
 * a request that failed before reading its stream never stalls the reader. If the client goes
 * away mid-stream, the reader fails (never a short value taken for the whole).
 */
const LIMIT = 4;

export class ChunkQueue implements AsyncIterable<Uint8Array> {
  private readonly queue: Buffer[] = [];
  private ended = false;
  private discarding = false;
  private failure: Error | undefined;
  private wakeReader: (() => void) | undefined;
  private wakeWriter: (() => void) | undefined;

  /** Queues a chunk; resolves once there is room for the next. */
  async push(chunk: Buffer): Promise<void> {
    if (this.discarding || this.ended) return;
    this.queue.push(chunk);
    this.wakeReader?.();
    while (this.queue.length >= LIMIT && !this.discarding) {
      await new Promise<void>((r) => {
        this.wakeWriter = r;
      });
    }
  }

  end(): void {
    this.ended = true;
    this.wakeReader?.();
  }

  /** The request is over: drop what is queued and whatever still comes. */
  discard(): void {
    this.discarding = true;
    this.queue.length = 0;
    this.wakeWriter?.();
  }

  /** The value will never be whole: its reader throws `e`. */
  fail(e: Error): void {
    this.failure = e;
    this.discard();
    this.wakeReader?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.failure) throw this.failure;
      const next = this.queue.shift();
      if (next) {
        this.wakeWriter?.();
        yield next;
        continue;
      }
      if (this.ended || this.discarding) return;
      await new Promise<void>((r) => {
        this.wakeReader = r;
      });
      this.wakeReader = undefined;
    }
  }
}

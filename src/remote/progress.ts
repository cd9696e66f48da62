import { formatBytes } from '../util/format.js';

/** Shown only on a TTY, and only once a transfer has taken this long: quick ones stay silent. */
export const PROGRESS_AFTER_MS = 1000;

/**
 * A one-line transfer meter on stderr ("taskvault: downloading 12 MB / 40 MB (3/9 blobs)"),
 * redrawn in place and erased when done. Nothing at all is written when stderr is not a TTY.
 */
export class Progress {
  private bytes = 0;
  private blobs = 0;
  private shown = false;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly verb: string,
    private readonly totalBytes: number,
    private readonly totalBlobs: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    if (stream.isTTY !== true || totalBlobs === 0) return;
    const started = Date.now();
    this.timer = setInterval(() => {
      if (Date.now() - started >= PROGRESS_AFTER_MS) this.draw();
    }, 200);
    this.timer.unref();
  }

  add(bytes: number): void {
    this.bytes += bytes;
  }

  blobDone(): void {
    this.blobs++;
  }

  private draw(): void {
    this.shown = true;
    this.stream.write(
      `\r\x1b[Ktaskvault: ${this.verb} ${formatBytes(this.bytes)} / ${formatBytes(this.totalBytes)} (${this.blobs}/${this.totalBlobs} blobs)`,
    );
  }

  finish(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.shown) this.stream.write('\r\x1b[K');
  }
}

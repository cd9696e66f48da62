import {
  appendFileSync,
  closeSync,
  fstatSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';

export type AuditEvent = 'HIT' | 'MISS' | 'SAVE' | 'EVICT' | 'ERROR';

/** Rotate to audit.log.1 past this size, so the trail never grows without bound. */
export const AUDIT_MAX_BYTES = 10 * 1024 * 1024;
/** Rotated files kept: audit.log.1 (newest) … audit.log.N (oldest). */
export const AUDIT_KEEP = 3;
/** A rotation lock older than this was left by a process that died mid-rotation. */
const STALE_LOCK_MS = 30_000;
/**
 * The logs kept open, closed (their held lines written) when the process exits: one listener
 * while there are any, none after the last is closed (a host program's listeners stay its own).
 */
const keptOpen = new Set<AuditLog>();
const closeAllKept = () => {
  for (const log of keptOpen) log.close();
};

/** A kept-open log looks at its path (rotated? by whom?) at most this often. */
const RECHECK_MS = 1_000;
/** A kept-open log holds lines this long, or up to this many bytes, and writes them at once. */
const HOLD_MS = 20;
const HOLD_BYTES = 64 * 1024;

/**
 * One line per event, appended with O_APPEND in a single write: lines from concurrent processes
 * never interleave (a write to a regular file is not split unless the disk fills up).
 * Auditing must never break a run, so failures are swallowed.
 *
 * A one-shot CLI run opens the file per append. A long-lived writer (an SDK client, the Python
 * SDK's service: one line per hit) keeps it open (`keepOpen()`) and holds its lines for up to
 * 20 ms, as its hit counts are held: one write per batch of lines instead of a stat, an open, a
 * write and a close per line, ~45 µs of a ~300 µs Python hit (bench/python). A crash of the
 * process loses at most those 20 ms of lines; close() and the process's exit write them. It looks
 * at the path at most once a second: past maxBytes it rotates, and once the path is another file
 * (another process rotated it, or it was removed) it reopens. Lines written in that second land
 * in the renamed file, whole, as lines appended during any rotation do.
 */
export class AuditLog {
  private kept: { fd: number; ino: number; checkedAt: number } | undefined;
  private keeping = false;
  private held = '';
  private holdTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    readonly maxBytes = AUDIT_MAX_BYTES,
    readonly keep = AUDIT_KEEP,
  ) {}

  /** From now on the file stays open between lines (see the class comment) until close(). */
  keepOpen(): void {
    if (this.keeping) return;
    this.keeping = true;
    if (keptOpen.size === 0) process.on('exit', closeAllKept);
    keptOpen.add(this);
  }

  close(): void {
    this.writeHeld();
    this.keeping = false;
    if (keptOpen.delete(this) && keptOpen.size === 0) process.removeListener('exit', closeAllKept);
    this.drop();
  }

  /** Writes the lines a kept-open log holds, now. */
  private writeHeld(): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    const text = this.held;
    this.held = '';
    if (!text) return;
    const bytes = Buffer.from(text);
    let written = 0;
    try {
      const fd = this.keptFd(Date.now());
      while (written < bytes.length) {
        const n = writeSync(fd, bytes, written);
        if (n === 0) throw new Error('audit log write made no progress');
        written += n;
      }
    } catch {
      // The rest the one-shot way; the next batch tries the descriptor again.
      this.drop();
      this.append(bytes.subarray(written));
    }
  }

  private drop(): void {
    if (!this.kept) return;
    try {
      closeSync(this.kept.fd);
    } catch {
      // Already closed: nothing held.
    }
    this.kept = undefined;
  }

  /** The open descriptor for a kept-open log, (re)opened when the path is no longer that file. */
  private keptFd(now: number): number {
    if (this.kept && now - this.kept.checkedAt < RECHECK_MS) return this.kept.fd;
    try {
      this.rotateIfLarge();
    } catch {
      // As in writeAll: the line is written all the same.
    }
    const at = statSync(this.path, { throwIfNoEntry: false });
    if (this.kept && at?.ino === this.kept.ino) {
      this.kept.checkedAt = now;
      return this.kept.fd;
    }
    this.drop();
    const fd = openSync(this.path, 'a');
    this.kept = { fd, ino: fstatSync(fd).ino, checkedAt: now };
    return fd;
  }

  write(
    event: AuditEvent,
    source: string,
    fields: Record<string, string | number | undefined>,
    now = new Date(),
  ): void {
    this.writeAll([{ event, source, fields }], now);
  }

  /** Several lines in one append (eviction of thousands of entries stays one write per batch). */
  writeAll(
    lines: Array<{ event: AuditEvent; source: string; fields: Record<string, string | number | undefined> }>,
    now = new Date(),
  ): void {
    if (lines.length === 0) return;
    const text = lines
      .map(({ event, source, fields }) => `${formatAuditLine(event, source, fields, now)}\n`)
      .join('');
    if (this.keeping) {
      this.held += text;
      if (this.held.length >= HOLD_BYTES) this.writeHeld();
      else if (!this.holdTimer) {
        this.holdTimer = setTimeout(() => this.writeHeld(), HOLD_MS);
        this.holdTimer.unref(); // never what keeps a process alive: close() and exit write them
      }
      return;
    }
    this.append(text);
  }

  /** One append the one-shot way: open, write, close (after a rotation if the log is full). */
  private append(text: string | Uint8Array): void {
    try {
      this.rotateIfLarge();
    } catch {
      // A failed rotation (e.g. another process rotated first) must never cost the line itself.
    }
    try {
      appendFileSync(this.path, text);
    } catch {
      // The cache dir may be read-only or gone; the run itself reports that once.
    }
  }

  /**
   * Renames audit.log → .1 (→ .2 …) once it is over maxBytes. Only the holder of an O_EXCL lock file
   * rotates, and it re-checks the size under the lock: without that, two writers that both saw a full
   * log would rotate twice and the second rename would clobber the first one's audit.log.1. Writers
   * never wait for the lock; a line appended during a rotation lands in one file or the other, whole.
   */
  private rotateIfLarge(): void {
    try {
      if (statSync(this.path).size < this.maxBytes) return;
    } catch {
      return; // no log yet
    }
    const lock = `${this.path}.lock`;
    let fd: number;
    try {
      fd = openSync(lock, 'wx');
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { force: true });
      } catch {
        // the holder just finished
      }
      return;
    }
    try {
      // Someone rotated just before us (the log may not even exist yet): nothing to do.
      if ((statSync(this.path, { throwIfNoEntry: false })?.size ?? 0) < this.maxBytes) return;
      for (let i = this.keep - 1; i >= 1; i--) {
        try {
          renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        } catch {
          // that generation does not exist yet
        }
      }
      renameSync(this.path, `${this.path}.1`);
    } finally {
      closeSync(fd);
      rmSync(lock, { force: true });
    }
  }
}

/** One audit line, without its newline: `[time] EVENT source k=v ...` (also the team audit's format). */
export function formatAuditLine(
  event: AuditEvent,
  source: string,
  fields: Record<string, string | number | undefined>,
  now: Date,
): string {
  const ts = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const parts = Object.entries(fields)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${formatValue(String(v))}`);
  return `[${ts}] ${event} ${source} ${parts.join(' ')}`.trimEnd().replace(/[\r\n]+/g, ' ');
}

const formatValue = (v: string): string => (/[\s"]/.test(v) ? JSON.stringify(v) : v);

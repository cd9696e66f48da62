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
/** A kept-open log looks at its path (rotated? by whom?) at most this often. */
const RECHECK_MS = 1_000;

/**
 * One line per event, appended with O_APPEND in a single write: lines from concurrent processes
 * never interleave (each write is far below the size at which the kernel could split it).
 * Auditing must never break a run, so failures are swallowed.
 *
 * A one-shot CLI run opens the file per append. A long-lived writer (an SDK client, the Python
 * SDK's service: one line per hit) keeps it open (`keepOpen()`): per line, one write instead of a
 * stat, an open, a write and a close, ~35 µs of a ~300 µs Python hit (bench/python). It looks at
 * the path at most once a second: past maxBytes it rotates, and once the path is another file
 * (another process rotated it, or it was removed) it reopens. Lines written in that second land
 * in the renamed file, whole, as lines appended during any rotation do.
 */
export class AuditLog {
  private kept: { fd: number; ino: number; checkedAt: number } | undefined;
  private keeping = false;

  constructor(
    readonly path: string,
    readonly maxBytes = AUDIT_MAX_BYTES,
    readonly keep = AUDIT_KEEP,
  ) {}

  /** From now on the file stays open between lines (see the class comment) until close(). */
  keepOpen(): void {
    this.keeping = true;
  }

  close(): void {
    this.keeping = false;
    this.drop();
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
      try {
        writeSync(this.keptFd(Date.now()), text);
        return;
      } catch {
        // Written the one-shot way below; the next line tries the descriptor again.
        this.drop();
      }
    }
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

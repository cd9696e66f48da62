import { appendFileSync, renameSync, statSync } from 'node:fs';

export type AuditEvent = 'HIT' | 'MISS' | 'SAVE' | 'EVICT' | 'ERROR';

/** Rotate to audit.log.1 past this size, so the trail never grows without bound. */
export const AUDIT_MAX_BYTES = 10 * 1024 * 1024;

/**
 * One line per event, appended with O_APPEND in a single write: lines from concurrent processes
 * never interleave (each write is far below the size at which the kernel could split it).
 * Auditing must never break a run, so failures are swallowed.
 */
export class AuditLog {
  constructor(
    readonly path: string,
    readonly maxBytes = AUDIT_MAX_BYTES,
  ) {}

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
    const ts = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const text = lines
      .map(({ event, source, fields }) => {
        const parts = Object.entries(fields)
          .filter(([, v]) => v !== undefined && v !== '')
          .map(([k, v]) => `${k}=${formatValue(String(v))}`);
        const line = `[${ts}] ${event} ${source} ${parts.join(' ')}`.trimEnd();
        return `${line.replace(/[\r\n]+/g, ' ')}\n`;
      })
      .join('');
    try {
      this.rotateIfLarge();
      appendFileSync(this.path, text);
    } catch {
      // The cache dir may be read-only or gone; the run itself reports that once.
    }
  }

  private rotateIfLarge(): void {
    try {
      if (statSync(this.path).size < this.maxBytes) return;
      // Only one concurrent writer wins the rename; the others append to the fresh file.
      renameSync(this.path, `${this.path}.1`);
    } catch {
      // missing file or lost the race: nothing to rotate
    }
  }
}

const formatValue = (v: string): string => (/[\s"]/.test(v) ? JSON.stringify(v) : v);

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
    const ts = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const parts = Object.entries(fields)
      .filter(([, v]) => v !== undefined && v !== '')
      .map(([k, v]) => `${k}=${formatValue(String(v))}`);
    const line = `[${ts}] ${event} ${source} ${parts.join(' ')}`.trimEnd();
    try {
      this.rotateIfLarge();
      appendFileSync(this.path, `${line.replace(/[\r\n]+/g, ' ')}\n`);
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

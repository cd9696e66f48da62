import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { AuditEvent } from './audit.js';

/*
 * The recent past as the audit log tells it (audit.ts writes one line per hit, miss, save,
 * eviction and error): what the dashboard lists as a task's recent runs. Only the log's tail is
 * read; the hourly time series (timeseries.ts) covers longer spans.
 */

export interface AuditLine {
  at: number;
  event: AuditEvent;
  source: string;
  fields: Record<string, string>;
}

const LINE = /^\[([^\]]+)\] (HIT|MISS|SAVE|EVICT|ERROR) (\S+)(.*)$/;
const FIELD = /([A-Za-z]+)=("(?:[^"\\]|\\.)*"|\S*)/g;

/** Parses one audit line; undefined for anything else (a torn line, garbage). */
export function parseAuditLine(line: string): AuditLine | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  const at = Date.parse(m[1]!);
  if (!Number.isFinite(at)) return undefined;
  const fields: Record<string, string> = {};
  for (const [, k, v] of m[4]!.matchAll(FIELD)) {
    let value = v!;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        // a quoted value cut short: keep it as written
      }
    }
    fields[k!] = value;
  }
  return { at, event: m[2] as AuditEvent, source: m[3]!, fields };
}

/** The complete lines in the last `bytes` of a file, oldest first (none if it cannot be read). */
function tail(path: string, bytes: number): string[] {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const from = Math.max(0, size - bytes);
    const buf = Buffer.alloc(size - from);
    readSync(fd, buf, 0, buf.length, from);
    const lines = buf.toString('utf8').split('\n');
    if (from > 0) lines.shift(); // the first line is likely cut
    return lines.filter(Boolean);
  } finally {
    closeSync(fd);
  }
}

/**
 * The newest audit lines (up to the last `bytes` of audit.log, and of its previous generation when
 * the current one is short), oldest first, those that `keep` accepts.
 */
export function recentAudit(
  auditPath: string,
  keep: (line: AuditLine) => boolean = () => true,
  bytes = 2 * 1024 * 1024,
): AuditLine[] {
  const current = tail(auditPath, bytes);
  const size = current.reduce((n, l) => n + l.length + 1, 0);
  const older = size < bytes ? tail(`${auditPath}.1`, bytes - size) : [];
  const out: AuditLine[] = [];
  for (const text of [...older, ...current]) {
    const line = parseAuditLine(text);
    if (line && keep(line)) out.push(line);
  }
  return out;
}

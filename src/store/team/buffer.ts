import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from '../../util/process.js';

/*
 * The local side of the team index: each run appends its event as one line to
 * <cacheDir>/team/events.jsonl (no network, no pg). A flusher claims the file by renaming it to
 * sending-<pid>-<n>.jsonl, sends it and deletes it; a claim whose process died is taken over by the
 * next flush, and each event's id makes a resend after a crash insert nothing twice.
 */

/** One run as the team index records it. */
export interface TeamEvent {
  /** Random, unique: a resent event is recognised and not inserted again. */
  id: string;
  /** ISO time the run finished. */
  at: string;
  task: string;
  /** The full key; '' when the run failed before it had one. */
  key: string;
  outcome: 'hit' | 'miss' | 'error';
  /** Where a hit came from; a miss is 'local'. */
  source: 'local' | 'remote';
  /** What ran the task: 'run' (the CLI) or 'sdk'. */
  via: string;
  durationMs: number;
  savedMs: number;
  exitCode: number | null;
  /** Bytes of the entry a miss stored (it becomes an entry in the team index), else null. */
  stored: number | null;
  host: string;
  user: string;
  ci: boolean;
  commit: string | null;
}

export const teamPaths = (teamDir: string) => ({
  buffer: join(teamDir, 'events.jsonl'),
  /** Touched by each flush when it starts: runs hand over a flush at most every FLUSH_EVERY_MS. */
  stamp: join(teamDir, 'flushed'),
  /** What the last failed flush said; the next run that starts a flush warns once and removes it. */
  lastError: join(teamDir, 'last-error'),
});

/** Past this, a buffer the database never took is dropped rather than filling the disk. */
export const MAX_BUFFER_BYTES = 64 * 1024 * 1024;

export const newEventId = (): string => randomBytes(12).toString('hex');

/** Appends one event: one write with O_APPEND, so concurrent runs never interleave lines. */
export function appendEvent(teamDir: string, event: TeamEvent): void {
  const line = `${JSON.stringify(event)}\n`;
  const file = teamPaths(teamDir).buffer;
  try {
    appendFileSync(file, line);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(teamDir, { recursive: true });
    appendFileSync(file, line);
  }
}

/** Whether a run should hand the buffer to a flusher now: there is one, and no flush started lately. */
export function flushDue(teamDir: string, now: number, everyMs: number): boolean {
  const paths = teamPaths(teamDir);
  const buffer = statSync(paths.buffer, { throwIfNoEntry: false });
  if (!buffer) return false;
  if (buffer.size > 1024 * 1024) return true;
  const stamp = statSync(paths.stamp, { throwIfNoEntry: false });
  return !stamp || now - stamp.mtimeMs >= everyMs;
}

export function touchStamp(teamDir: string): void {
  mkdirSync(teamDir, { recursive: true });
  writeFileSync(teamPaths(teamDir).stamp, String(process.pid));
}

/** A batch this process claimed: its events, and how to finish it (sent, or dropped for good). */
export interface Claimed {
  file: string;
  events: TeamEvent[];
}

/**
 * Claims the buffer and every batch a dead flusher left: renamed to this process's name, so no two
 * flushers send the same file. Lines that do not parse (a torn write on a full disk) are skipped.
 */
export function claimBatches(teamDir: string): Claimed[] {
  let names: string[];
  try {
    names = readdirSync(teamDir);
  } catch {
    return []; // no team directory: nothing was ever recorded here
  }
  let n = 0;
  const claim = (from: string): string | undefined => {
    const to = join(teamDir, `sending-${process.pid}-${Date.now()}-${n++}.jsonl`);
    try {
      renameSync(from, to);
      return to;
    } catch {
      return undefined; // another flusher claimed it first
    }
  };
  const files: string[] = [];
  for (const name of names) {
    const m = name.match(/^sending-(\d+)-/);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
      const f = claim(join(teamDir, name));
      if (f) files.push(f);
    }
  }
  const fresh = claim(teamPaths(teamDir).buffer);
  if (fresh) files.push(fresh);
  return files.map((file) => ({ file, events: readEvents(file) }));
}

/** Batches other live processes are sending right now (a foreground flush waits for them). */
export function othersSending(teamDir: string): number {
  try {
    return readdirSync(teamDir).filter((name) => {
      const m = name.match(/^sending-(\d+)-/);
      return m !== null && Number(m[1]) !== process.pid && pidAlive(Number(m[1]));
    }).length;
  } catch {
    return 0; // no team directory
  }
}

function readEvents(file: string): TeamEvent[] {
  let text: string;
  try {
    if (statSync(file).size > MAX_BUFFER_BYTES) return [];
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const events: TeamEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const e = JSON.parse(line) as TeamEvent;
      if (typeof e.id === 'string' && typeof e.task === 'string') events.push(e);
    } catch {
      // a line torn by a full disk or a crash mid-write: the rest of the batch is still good
    }
  }
  return events;
}

export function finishBatch(c: Claimed): void {
  rmSync(c.file, { force: true });
}

export function writeLastError(teamDir: string, message: string): void {
  try {
    writeFileSync(teamPaths(teamDir).lastError, message);
  } catch {
    // the next flush will fail the same way and try again to say so
  }
}

/** What the last failed flush said, removed as it is read (so it is warned about once). */
export function takeLastError(teamDir: string): string | undefined {
  const file = teamPaths(teamDir).lastError;
  try {
    const text = readFileSync(file, 'utf8');
    rmSync(file, { force: true });
    return text;
  } catch {
    return undefined; // no failure recorded
  }
}

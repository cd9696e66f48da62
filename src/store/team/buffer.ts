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
import { createRequire } from 'node:module';
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
  /** The git branch (absent in events buffered by a version before it was recorded). */
  branch?: string | null;
}

export const teamPaths = (teamDir: string) => ({
  buffer: join(teamDir, 'events.jsonl'),
  /** Touched by each flush when it starts: runs hand over a flush at most every FLUSH_EVERY_MS. */
  stamp: join(teamDir, 'flushed'),
  /** What the last failed flush said; the next run that starts a flush warns once and removes it. */
  lastError: join(teamDir, 'last-error'),
  /** Events dropped by the buffer cap while the database was unreachable (JSON, see DropTally). */
  dropped: join(teamDir, 'dropped.json'),
});

/** At most this many events wait for the database; past it the oldest go (TASKVAULT_TEAM_BUFFER_MAX). */
export const DEFAULT_BUFFER_MAX = 100_000;

/** The buffer cap from the environment: a whole number of events, else the default. */
export function bufferMax(env: NodeJS.ProcessEnv): number {
  const v = env.TASKVAULT_TEAM_BUFFER_MAX;
  return v !== undefined && /^\d{1,9}$/.test(v) && Number(v) > 0 ? Number(v) : DEFAULT_BUFFER_MAX;
}

/** Past this, a buffer the database never took is dropped rather than filling the disk. */
export const MAX_BUFFER_BYTES = 64 * 1024 * 1024;

// node:crypto is loaded on the first event, not with this module: the SDK's service and every
// run load it, and most caches have no team index.
const require = createRequire(import.meta.url);
export const newEventId = (): string =>
  (require('node:crypto') as typeof import('node:crypto')).randomBytes(12).toString('hex');

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

/** What the buffer cap dropped: in all, in this episode (the database unreachable), and when. */
export interface DropTally {
  total: number;
  /** Dropped since the database was last reached; `since` is the first of them. */
  episode: number;
  since: string;
  last: string;
  /** Whether a run has warned about this episode yet. */
  warned: boolean;
}

export function readDropTally(teamDir: string): DropTally | undefined {
  try {
    const t = JSON.parse(readFileSync(teamPaths(teamDir).dropped, 'utf8')) as DropTally;
    return typeof t.total === 'number' && typeof t.episode === 'number' ? t : undefined;
  } catch {
    return undefined; // nothing dropped (or a torn file: the next drop writes it again)
  }
}

function writeDropTally(teamDir: string, t: DropTally): void {
  try {
    const tmp = `${teamPaths(teamDir).dropped}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify(t));
    renameSync(tmp, teamPaths(teamDir).dropped);
  } catch {
    // the cap still held; only the count of what it dropped is lost
  }
}

/**
 * Keeps the newest `max` of the claimed events, dropping the oldest (rewriting the claimed files,
 * which are this process's), and adds what it dropped to the tally. Returns how many it dropped.
 */
export function capBatches(teamDir: string, batches: Claimed[], max: number, now = Date.now()): number {
  const total = batches.reduce((n, b) => n + b.events.length, 0);
  if (total <= max) return 0;
  // The newest events win: find the time at or after which `max` of them lie.
  const times = batches.flatMap((b) => b.events.map((e) => Date.parse(e.at) || 0)).sort((a, b) => b - a);
  const cutoff = times[max - 1]!;
  let room = times.slice(0, max).filter((t) => t === cutoff).length; // ties at the cutoff kept
  let dropped = 0;
  for (const b of batches) {
    const kept = b.events.filter((e) => {
      const t = Date.parse(e.at) || 0;
      if (t > cutoff) return true;
      if (t === cutoff && room > 0) {
        room--;
        return true;
      }
      return false;
    });
    if (kept.length === b.events.length) continue;
    dropped += b.events.length - kept.length;
    b.events = kept;
    writeFileSync(b.file, kept.map((e) => `${JSON.stringify(e)}\n`).join(''));
  }
  const at = new Date(now).toISOString();
  const before = readDropTally(teamDir);
  const fresh = !before || before.episode === 0;
  writeDropTally(teamDir, {
    total: (before?.total ?? 0) + dropped,
    episode: (fresh ? 0 : before.episode) + dropped,
    since: fresh ? at : before.since,
    last: at,
    warned: fresh ? false : before.warned,
  });
  return dropped;
}

/**
 * The one warning about dropped events, the first time a run asks after a drop; later drops of the
 * same episode are only counted (for `taskvault team status`).
 */
export function takeDropWarning(teamDir: string, max: number): string | undefined {
  const t = readDropTally(teamDir);
  if (!t || t.warned || t.episode === 0) return undefined;
  writeDropTally(teamDir, { ...t, warned: true });
  return `team index: the local buffer is full (${max} events): ${t.episode} oldest event(s) dropped since ${t.since}; they will not reach the database`;
}

/** After a flush that reached the database: the next drop starts a new episode, warned about again. */
export function endDropEpisode(teamDir: string): void {
  const t = readDropTally(teamDir);
  if (t && t.episode > 0) writeDropTally(teamDir, { ...t, episode: 0, warned: false });
}

/** Events waiting in the buffer and in claimed batches (for `taskvault team status`). */
export function bufferedCount(teamDir: string): number {
  let names: string[];
  try {
    names = readdirSync(teamDir);
  } catch {
    return 0; // no team directory: nothing buffered
  }
  return names
    .filter((n) => n === 'events.jsonl' || /^sending-.*\.jsonl$/.test(n))
    .reduce((n, name) => n + readEvents(join(teamDir, name)).length, 0);
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

/** What the last failed flush said, left in place (for `taskvault team status`). */
export function peekLastError(teamDir: string): string | undefined {
  try {
    return readFileSync(teamPaths(teamDir).lastError, 'utf8');
  } catch {
    return undefined; // no failure recorded
  }
}

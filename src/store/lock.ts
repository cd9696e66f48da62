import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseDuration } from '../util/format.js';
import { mkdirsSync } from '../util/mkdirs.js';
import { pidAlive } from '../util/process.js';
import { tempSuffix } from '../util/temp-name.js';

/**
 * Tells two takers of one lock apart (with pid, host and time): it need not be secret, so
 * Math.random (tempSuffix) does, sparing a miss the loading of node:crypto (~2 ms).
 */
const nonce = (): string => tempSuffix() + tempSuffix();

/** What a lock file holds: who took it and when, plus a nonce that tells two takers apart. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt: number;
  nonce: string;
}

export interface LockOptions {
  /** Give up waiting after this long (then the caller runs anyway). */
  timeoutMs: number;
  /** A lock whose file has not been refreshed for this long is stale, whoever holds it. */
  staleMs?: number;
  /** How often the holder refreshes its lock file's mtime. */
  heartbeatMs?: number;
  /** Called once, when the lock turns out to be held by someone else. */
  onWait?: (holder: LockHolder | undefined) => void;
  now?: () => number;
}

export type LockResult =
  | { kind: 'acquired'; waited: boolean; release: () => void }
  | { kind: 'timeout'; holder: LockHolder | undefined; waitedMs: number }
  /** The lock directory cannot be used (read-only, gone, …): run without single-flight. */
  | { kind: 'unavailable'; message: string };

export const DEFAULT_LOCK_TIMEOUT_MS = 15 * 60_000;
export const DEFAULT_STALE_MS = 30_000;
const DEFAULT_HEARTBEAT_MS = 5_000;

/** TASKVAULT_LOCK_TIMEOUT (seconds or a duration like '90s', '10m'); undefined if unset or invalid. */
export function lockTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.TASKVAULT_LOCK_TIMEOUT;
  if (v === undefined || v === '') return undefined;
  return parseDuration(v);
}

const HOST = hostname();

function readHolder(path: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    if (typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.startedAt === 'number')
      return { pid: h.pid, host: h.host, startedAt: h.startedAt, nonce: String(h.nonce ?? '') };
  } catch {
    // being written right now, or just removed
  }
  return undefined;
}

/**
 * A lock file is stale when its holder on this host is dead (kill -9, crash, power loss of a
 * container), or when nobody has refreshed it for `staleMs` (a holder on another host, or a
 * recycled pid). A file without readable content is judged by its age alone: its creator may be
 * between open and write.
 */
function isStale(path: string, staleMs: number, now: number): { stale: boolean; holder?: LockHolder } {
  let mtimeMs: number;
  try {
    mtimeMs = statSync(path).mtimeMs;
  } catch {
    return { stale: false }; // gone: the next attempt to take it decides
  }
  const holder = readHolder(path);
  if (now - mtimeMs > staleMs) return holder ? { stale: true, holder } : { stale: true };
  if (holder && holder.host === HOST && !pidAlive(holder.pid)) return { stale: true, holder };
  return holder ? { stale: false, holder } : { stale: false };
}

/**
 * Breaks a stale lock without ever deleting a fresh one: the file is renamed aside (atomic), and
 * if what was moved turns out not to be the stale holder we judged (someone broke and re-took it
 * in between), it is linked back. The worst a lost race can cause is one duplicate run of the
 * command, never a corrupt cache: commits are atomic and blobs content-addressed.
 */
function breakStale(path: string, judged: LockHolder | undefined): void {
  const aside = `${path}.${process.pid}-${tempSuffix()}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return; // someone else broke it first
  }
  const moved = readHolder(aside);
  if (judged && moved && moved.nonce !== judged.nonce) {
    try {
      linkSync(aside, path);
    } catch {
      // a third process holds it now; the displaced holder merely loses exclusivity
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    // A leftover *.stale file holds no lock; verify --repair removes it.
  }
}

function tryCreate(path: string, holder: LockHolder): boolean {
  // Created with its content in one step (a hard link of a complete temp file), so that a waiter
  // never reads an empty lock and cannot say whom it waits for. Filesystems without hard links
  // fall back to create-then-write.
  const tmp = `${path}.${process.pid}-${tempSuffix()}.new`;
  try {
    writeFileSync(tmp, JSON.stringify(holder), { flag: 'wx' });
  } catch {
    return tryCreateInPlace(path, holder);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS')
      return tryCreateInPlace(path, holder);
    throw e;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // A leftover *.new file holds no lock (only `path` does); verify --repair removes it.
    }
  }
}

function tryCreateInPlace(path: string, holder: LockHolder): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, JSON.stringify(holder));
  } catch (e) {
    // e.g. ENOSPC: an empty lock file would make others wait until it counts as stale.
    closeSync(fd);
    try {
      unlinkSync(path);
    } catch {
      // Left empty, it counts as stale once its mtime is older than staleMs.
    }
    throw e;
  }
  closeSync(fd);
  return true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Single-flight lock for one cache key: an O_EXCL file `locks/<key>` holding pid, host, start time
 * and a nonce. The holder refreshes its mtime while it works; waiters poll with backoff, break the
 * lock when it is stale, and give up after `timeoutMs`.
 */
export async function acquireLock(locksDir: string, key: string, o: LockOptions): Promise<LockResult> {
  const now = o.now ?? Date.now;
  const staleMs = o.staleMs ?? DEFAULT_STALE_MS;
  const path = join(locksDir, key);
  const me: LockHolder = {
    pid: process.pid,
    host: HOST,
    startedAt: now(),
    nonce: nonce(),
  };
  const started = now();
  let announced = false;
  /** Someone else held it at some point: they may have committed what we are about to run. */
  let contended = false;
  let delay = 25;
  try {
    mkdirsSync(locksDir);
    for (;;) {
      me.startedAt = now();
      const tried = attempt(path, me, staleMs, now);
      if (tried.taken) return { kind: 'acquired', waited: contended, release: holdLock(path, me, o) };
      contended = true;
      if (!announced) {
        announced = true;
        o.onWait?.(tried.holder);
      }
      const waitedMs = now() - started;
      if (waitedMs >= o.timeoutMs) return { kind: 'timeout', holder: tried.holder, waitedMs };
      await sleep(Math.min(delay, Math.max(1, o.timeoutMs - waitedMs)));
      delay = Math.min(delay * 2, 250);
    }
  } catch (e) {
    return { kind: 'unavailable', message: (e as Error).message };
  }
}

/**
 * One try without waiting: the lock is created, or broken if stale and created. A stale lock that
 * cannot be broken (no permission to rename, say) is left after 3 tries rather than spun on.
 */
function attempt(
  path: string,
  me: LockHolder,
  staleMs: number,
  now: () => number,
): { taken: true } | { taken: false; holder: LockHolder | undefined } {
  for (let breaks = 0; ; breaks++) {
    if (tryCreate(path, me)) return { taken: true };
    const seen = isStale(path, staleMs, now());
    if (!seen.stale || breaks >= 3) return { taken: false, holder: seen.holder };
    breakStale(path, seen.holder);
  }
}

/**
 * The lock `locksDir/name` if it is free (or stale, and then broken), without waiting: its release
 * function, or undefined when someone else holds it or the directory cannot be used.
 */
export function tryLock(
  locksDir: string,
  name: string,
  o: Pick<LockOptions, 'staleMs' | 'heartbeatMs'> = {},
) {
  const path = join(locksDir, name);
  const me: LockHolder = {
    pid: process.pid,
    host: HOST,
    startedAt: Date.now(),
    nonce: nonce(),
  };
  try {
    mkdirsSync(locksDir);
    return attempt(path, me, o.staleMs ?? DEFAULT_STALE_MS, Date.now).taken
      ? holdLock(path, me, o)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Starts the heartbeat and returns the release function (idempotent; never throws). */
function holdLock(path: string, me: LockHolder, o: Pick<LockOptions, 'heartbeatMs'>): () => void {
  const beat = setInterval(() => {
    try {
      const t = new Date();
      utimesSync(path, t, t);
    } catch {
      // Broken by a waiter or the dir is gone: the release below finds it no longer ours.
    }
  }, o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
  beat.unref();
  let released = false;
  return () => {
    if (released) return;
    released = true;
    clearInterval(beat);
    // Only remove the file if it is still ours: a waiter may have judged us stale and re-taken it.
    if (readHolder(path)?.nonce === me.nonce) {
      try {
        unlinkSync(path);
      } catch {
        // Already removed (a waiter broke it as stale): nothing is held either way.
      }
    }
  };
}

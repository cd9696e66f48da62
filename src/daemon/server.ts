import {
  appendFileSync,
  chmodSync,
  closeSync,
  type FSWatcher,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { HashAlgorithm } from '../config/types.js';
import {
  ask,
  ownedPrivately,
  RESIDENT_BUILD,
  type ResidentReply,
  residentSocket,
  residentSocketPath,
} from '../fingerprint/resident.js';
import type { CacheLayout } from '../store/layout.js';
import { tryLock } from '../store/lock.js';
import { mkdirsSync } from '../util/mkdirs.js';
import { pidAlive } from '../util/process.js';
import { errorMessage, failure, ok, type Result } from '../util/result.js';
import { Vouch } from './vouch.js';
import { Watches } from './watches.js';

/*
 * The resident helper: a process per cache directory that keeps the inputs of the manifests it is
 * asked about watched, and answers "unchanged?" over a Unix socket only the owner can reach.
 *
 * The sync cookie (as watchman does): for each question the daemon creates a new file in its
 * cookies/ directory and answers only once that file's event has come through the same inotify
 * queue as the inputs' events. The question was sent after every change the asking run could
 * depend on, so those changes were queued before the cookie and have been applied when it shows.
 */

export interface ServeOptions {
  /** Exit after this long without a question (0: never). */
  idleMs: number;
  /** Where a line per start, stop and failure goes. */
  log?: (line: string) => void;
}

export interface DaemonInfo {
  pid: number;
  build: string;
  socket: string;
  startedAt: number;
}

/** How long a question waits for its cookie before the answer is "not known". */
const COOKIE_TIMEOUT_MS = 1000;

/** Watches for input directories at most: a fraction of the user's inotify allowance. */
function maxDirs(): number {
  try {
    const n = Number(readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8'));
    if (Number.isFinite(n) && n > 0) return Math.floor(n / 2);
  } catch {
    // Not readable: the kernel default's half.
  }
  return 4096;
}

export class Resident {
  private readonly watches = new Watches();
  private readonly vouches = new Map<string, Vouch>();
  private readonly cookiesDir: string;
  private cookieWatch: FSWatcher | undefined;
  private manifestsWatch: FSWatcher | undefined;
  private cookieSeq = 0;
  private readonly waiting = new Map<number, () => void>();
  private server: Server | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly answered = { unchanged: 0, other: 0 };
  private readonly maxDirs = maxDirs();
  readonly info: DaemonInfo;
  private stopped = false;
  /** Resolves when the daemon has stopped. */
  readonly done: Promise<void>;
  private finish: () => void = () => {};

  constructor(
    private readonly layout: CacheLayout,
    private readonly o: ServeOptions,
  ) {
    this.cookiesDir = join(layout.daemon, 'cookies');
    this.info = {
      pid: process.pid,
      build: RESIDENT_BUILD,
      socket: residentSocketPath(layout.daemon),
      startedAt: Date.now(),
    };
    this.done = new Promise((r) => {
      this.finish = r;
    });
    this.watches.onOverflow = () => {
      this.o.log?.('inotify queue may have overflowed: every manifest is checked afresh');
      for (const v of this.vouches.values()) v.changed();
    };
  }

  /** Takes the pid file, watches cookies/ and manifests/, listens. A failure is one line. */
  async start(): Promise<Result<DaemonInfo>> {
    const dirs = privateDirs(this.layout.daemon, this.info.socket);
    if (!dirs.ok) return dirs;
    const pidFile = join(this.layout.daemon, 'pid');
    const claimed = claimPidFile(pidFile, this.info);
    if (!claimed.ok) return claimed;
    try {
      mkdirsSync(this.cookiesDir);
      mkdirsSync(this.layout.manifests);
      // Cookies left by a daemon that was killed: not ours to wait for.
      rmSync(this.cookiesDir, { recursive: true, force: true });
      mkdirsSync(this.cookiesDir);
      this.watchCookies();
      this.manifestsWatch = watch(this.layout.manifests, { persistent: false }, (_t, name) =>
        this.manifestChanged(name),
      );
      this.manifestsWatch.on('error', () => this.everythingChanged());
      rmSync(this.info.socket, { force: true }); // a socket of a dead daemon (the pid file was stale)
      this.server = createServer((socket) => this.serve(socket));
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        this.server!.listen(this.info.socket, () => resolve());
      });
      // Its directory is already 0700; the socket too, in case the directory's mode is changed.
      chmodSync(this.info.socket, 0o600);
    } catch (e) {
      this.stop();
      return { ok: false, error: failure('cache', `daemon: cannot start: ${errorMessage(e)}`) };
    }
    process.once('SIGTERM', () => this.stop());
    process.once('SIGINT', () => this.stop());
    this.bumpIdle();
    this.o.log?.(`started pid ${process.pid} build ${RESIDENT_BUILD} socket ${this.info.socket}`);
    return ok(this.info);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.idleTimer);
    this.server?.close();
    for (const v of this.vouches.values()) v.close();
    this.watches.closeAll();
    this.cookieWatch?.close();
    this.manifestsWatch?.close();
    for (const resolve of this.waiting.values()) resolve();
    this.waiting.clear();
    // Only what is still ours: a newer daemon may have taken the pid file over.
    const pidFile = join(this.layout.daemon, 'pid');
    if (readPidFile(pidFile)?.pid === process.pid) {
      rmSync(this.info.socket, { force: true });
      rmSync(pidFile, { force: true });
    }
    rmSync(this.cookiesDir, { recursive: true, force: true });
    this.o.log?.(`stopped pid ${process.pid}`);
    this.finish();
  }

  private bumpIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.o.idleMs > 0) {
      this.idleTimer = setTimeout(() => {
        this.o.log?.('idle: stopping');
        this.stop();
      }, this.o.idleMs);
      this.idleTimer.unref?.();
    }
  }

  private serve(socket: Socket): void {
    socket.setEncoding('utf8');
    let text = '';
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 64 * 1024) return socket.destroy(); // not a client of ours
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n')) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        void this.answer(line).then((reply) => {
          if (!socket.destroyed) socket.write(`${JSON.stringify({ build: RESIDENT_BUILD, ...reply })}\n`);
          if (reply.stopping) socket.end(() => this.stop());
        });
      }
    });
  }

  private async answer(line: string): Promise<Omit<ResidentReply, 'build'>> {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return { why: 'not JSON' };
    }
    // Any build may ask one to stop (a newer CLI replacing an older daemon), or for its status.
    if (msg.op === 'stop') return { stopping: true };
    if (msg.op === 'status') return this.status();
    if (msg.build !== RESIDENT_BUILD) return { unchanged: false, why: 'another build' };
    if (msg.op !== 'check') return { why: `unknown op ${String(msg.op)}` };
    this.bumpIdle();
    const reply = await this.check(msg);
    if (reply.unchanged) this.answered.unchanged++;
    else this.answered.other++;
    return reply;
  }

  private async check(msg: Record<string, unknown>): Promise<{ unchanged: boolean; why?: string }> {
    const { id, stamp, root, cwd, algorithm } = msg;
    if (
      typeof id !== 'string' ||
      !/^[0-9a-f]{64}$/.test(id) ||
      typeof stamp !== 'string' ||
      typeof root !== 'string' ||
      typeof cwd !== 'string' ||
      (algorithm !== 'blake3' && algorithm !== 'sha256')
    )
      return { unchanged: false, why: 'bad question' };
    const where = { root, cwd, algorithm: algorithm as HashAlgorithm };
    let v = this.vouches.get(id);
    if (v && (v.where.root !== root || v.where.cwd !== cwd || v.where.algorithm !== algorithm)) {
      v.close();
      v = undefined;
    }
    if (!v) {
      v = new Vouch(id, where, this.layout.manifests, this.watches, this.maxDirs);
      this.vouches.set(id, v);
    }
    // Every change made before the question has come through the watcher once the cookie has.
    if (!(await this.sync())) return { unchanged: false, why: 'watcher not keeping up' };
    if (v.holds(stamp)) return { unchanged: true };
    const why = v.why || 'inputs changed';
    void v.check(); // for the next question
    return { unchanged: false, why };
  }

  /** Resolves true once a cookie created now has come through the watcher, false if it does not. */
  private sync(): Promise<boolean> {
    if (!this.cookieWatch && !this.watchCookies()) return Promise.resolve(false);
    const n = ++this.cookieSeq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(n);
        resolve(false);
      }, COOKIE_TIMEOUT_MS);
      this.waiting.set(n, () => {
        clearTimeout(timer);
        resolve(!this.stopped);
      });
      try {
        closeSync(openSync(join(this.cookiesDir, String(n)), 'w'));
      } catch {
        // cookies/ not writable: no cookie, no answer.
        this.waiting.delete(n);
        clearTimeout(timer);
        resolve(false);
      }
    });
  }

  private watchCookies(): boolean {
    try {
      mkdirsSync(this.cookiesDir);
      this.cookieWatch = watch(this.cookiesDir, { persistent: false }, (_t, name) => this.cookieSeen(name));
      this.cookieWatch.on('error', () => {
        // cookies/ removed (e.g. the cache was cleaned): remade on the next question.
        this.cookieWatch?.close();
        this.cookieWatch = undefined;
        this.everythingChanged();
      });
      return true;
    } catch {
      return false; // no cookie, no answer: every question is "not known"
    }
  }

  private cookieSeen(name: string | Buffer | null): void {
    const n = Number(name);
    if (!Number.isSafeInteger(n) || !this.waiting.has(n)) return;
    // Events come in order: every cookie made before this one has been passed as well.
    for (const [k, resolve] of this.waiting) {
      if (k > n) continue;
      this.waiting.delete(k);
      resolve();
    }
    try {
      unlinkSync(join(this.cookiesDir, String(n)));
    } catch {
      // Already gone: removed with cookies/ itself.
    }
  }

  private manifestChanged(name: string | Buffer | null): void {
    const v = typeof name === 'string' ? this.vouches.get(name) : undefined;
    if (name === null) this.everythingChanged();
    if (!v) return;
    v.changed();
    void v.check(); // a miss wrote it: ready for the next hit
  }

  private everythingChanged(): void {
    for (const v of this.vouches.values()) v.changed();
  }

  status(): Record<string, unknown> {
    const vouches = [...this.vouches.values()];
    return {
      ...this.info,
      idleTimeoutMs: this.o.idleMs,
      manifests: vouches.length,
      vouching: vouches.filter((v) => v.vouching).length,
      notVouching: vouches.filter((v) => !v.vouching).map((v) => ({ id: v.id.slice(0, 12), why: v.why })),
      watches: this.watches.size,
      answered: { ...this.answered },
    };
  }
}

/** The daemon directory (and the socket's, when that is elsewhere): made 0700, and checked to be. */
function privateDirs(daemonDir: string, socket: string): Result<void> {
  for (const dir of new Set([daemonDir, dirname(socket)])) {
    try {
      mkdirsSync(dir);
      chmodSync(dir, 0o700);
    } catch (e) {
      return { ok: false, error: failure('cache', `daemon: cannot make ${dir}: ${errorMessage(e)}`) };
    }
    if (!ownedPrivately(dir, 'dir'))
      return {
        ok: false,
        error: failure(
          'cache',
          `daemon: ${dir} is not a directory of this user closed to others`,
          'remove it, or point TASKVAULT_CACHE_DIR elsewhere',
        ),
      };
  }
  return ok(undefined);
}

export function readPidFile(path: string): DaemonInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as DaemonInfo;
    return Number.isSafeInteger(info.pid) ? info : undefined;
  } catch {
    return undefined; // none, or torn: as if none
  }
}

/**
 * One daemon per cache directory: the pid file is checked and taken over under a short-lived claim
 * lock (store/lock.ts: a starter killed while holding it is judged dead and its lock broken), so
 * that of starters racing over a dead owner's file exactly one wins. The file is written whole
 * (temp + rename): a reader never finds it empty.
 */
function claimPidFile(path: string, info: DaemonInfo): Result<void> {
  const release = tryLock(dirname(path), 'pid.claim');
  if (!release) return { ok: false, error: failure('cache', 'daemon: another daemon is starting') };
  try {
    const other = readPidFile(path);
    if (other && other.pid !== process.pid && pidAlive(other.pid))
      return { ok: false, error: failure('cache', `daemon: already running (pid ${other.pid})`) };
    const tmp = `${path}.${process.pid}.new`;
    writeFileSync(tmp, JSON.stringify(info), { mode: 0o600 });
    renameSync(tmp, path);
    return ok(undefined);
  } catch (e) {
    return { ok: false, error: failure('cache', `daemon: cannot write ${path}: ${errorMessage(e)}`) };
  } finally {
    release();
  }
}

/** Appends to daemon/log; never throws (a log that cannot be written is no reason to stop). */
export function logTo(path: string): (line: string) => void {
  return (line) => {
    try {
      appendFileSync(path, `${new Date().toISOString()} ${line}\n`);
    } catch {
      // See above.
    }
  };
}

/** Status of the daemon of `layout`, or undefined when none answers. */
export async function daemonStatus(
  layout: CacheLayout,
  timeoutMs = 1000,
): Promise<Record<string, unknown> | undefined> {
  const socket = residentSocket(layout.daemon);
  return 'path' in socket ? ask(socket.path, { op: 'status' }, timeoutMs) : undefined;
}

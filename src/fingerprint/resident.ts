import { lstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VERSION } from '../version.js';
import { hashBytes } from './hash.js';

/*
 * The client side of the resident helper (`taskvault daemon`, src/daemon/): one question over a
 * Unix socket, "are the inputs of manifest <id>, as stored in this file, unchanged?", asked before
 * the stat walk a hit would otherwise make. Anything but a clear "unchanged" from a daemon of this
 * very build, within the time limit, means: walk as if there were no daemon. The daemon answers only
 * after its own cookie file's event has come through its watcher, so every change made before the
 * question was asked has been seen (docs/daemon.md).
 *
 * Kept small on purpose: it is on the hit path. node:net is loaded only when a socket is there.
 */

// require, not import(): the CLI bundle runs from V8's code cache, where import() is unavailable
// (util/import-module.ts); node:net is built in, so this loads no file.
const require = createRequire(import.meta.url);

/** Bumped whenever the messages change; a daemon of another build is never believed. */
export const RESIDENT_PROTOCOL = 1;
export const RESIDENT_BUILD = `${VERSION}+p${RESIDENT_PROTOCOL}`;

/** sun_path holds 108 bytes with its NUL on Linux; longer paths go under the temp directory. */
const MAX_SOCKET_PATH = 100;

/** What the client sends (`op: 'check'`); the daemon reads the manifest itself. */
export interface ResidentCheck {
  id: string;
  /** dev:ino:size:mtimeMs:ctimeMs of the manifest file read (see manifestStamp). */
  stamp: string;
  root: string;
  cwd: string;
  algorithm: string;
}

export interface ResidentReply {
  build: string;
  unchanged?: boolean;
  why?: string;
  [k: string]: unknown;
}

/** The socket for the daemon of `daemonDir` (one per cache directory). */
export function residentSocketPath(daemonDir: string): string {
  const inside = join(daemonDir, 'sock');
  if (Buffer.byteLength(inside) <= MAX_SOCKET_PATH) return inside;
  return join(privateTempDir(), `${hashBytes('blake3', daemonDir).slice(0, 24)}.sock`);
}

/** $TMPDIR/taskvault-daemon-<uid>: where sockets go whose cache directory's path is too long. */
export function privateTempDir(): string {
  return join(tmpdir(), `taskvault-daemon-${process.getuid?.() ?? 'user'}`);
}

/** The identity of a manifest file as read: a new manifest is a new file (written and renamed). */
export function manifestStamp(s: {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}

/**
 * Whether `path` is ours alone: owned by this user, and (a directory) closed to group and others.
 * A socket someone else could have put there, or could swap, is never asked: its answer could
 * make a stale hit.
 */
export function ownedPrivately(path: string, kind: 'dir' | 'socket'): boolean {
  const uid = process.getuid?.();
  if (uid === undefined) return false;
  try {
    const s = lstatSync(path);
    if (s.uid !== uid) return false;
    return kind === 'dir' ? s.isDirectory() && (s.mode & 0o077) === 0 : s.isSocket();
  } catch {
    return false; // not there (no daemon) or not readable: no daemon to ask
  }
}

/** The socket path when a daemon may be listening there, checked for ownership; else why not. */
export function residentSocket(daemonDir: string): { path: string } | { why: string } {
  if (process.platform !== 'linux') return { why: 'only on Linux (inotify)' };
  const path = residentSocketPath(daemonDir);
  const dir = path.slice(0, path.lastIndexOf('/'));
  if (!ownedPrivately(dir, 'dir') || !ownedPrivately(path, 'socket')) return { why: 'no daemon' };
  return { path };
}

/**
 * Sends one message and resolves with the reply line, or undefined on any error or after
 * `timeoutMs`. Never rejects.
 */
export async function ask(
  path: string,
  message: Record<string, unknown>,
  timeoutMs: number,
): Promise<ResidentReply | undefined> {
  const { createConnection } = require('node:net') as typeof import('node:net');
  return new Promise((resolve) => {
    let socket: Socket | undefined;
    let text = '';
    const done = (reply: ResidentReply | undefined) => {
      clearTimeout(timer);
      socket?.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket = createConnection(path);
    socket.setEncoding('utf8');
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(undefined));
    socket.on('data', (chunk: string) => {
      text += chunk;
      const nl = text.indexOf('\n');
      if (nl === -1) return;
      try {
        const reply = JSON.parse(text.slice(0, nl)) as ResidentReply;
        done(reply && typeof reply === 'object' ? reply : undefined);
      } catch {
        done(undefined); // not our protocol: as if no daemon
      }
    });
    socket.write(`${JSON.stringify({ v: RESIDENT_PROTOCOL, build: RESIDENT_BUILD, ...message })}\n`);
  });
}

/** How long a hit waits for the daemon: about what the walk it saves would cost, within bounds. */
export function checkTimeoutMs(files: number, env: NodeJS.ProcessEnv = process.env): number {
  const set = Number(env.TASKVAULT_DAEMON_TIMEOUT_MS);
  if (env.TASKVAULT_DAEMON_TIMEOUT_MS && Number.isFinite(set) && set > 0) return set;
  // The walk costs ~2.5-5 µs per input; an answer is normally back in well under 1 ms, but a
  // loaded machine may not run the daemon at once.
  return Math.min(500, Math.max(50, files * 0.01));
}

/**
 * "unchanged" only when a daemon of this build says so for exactly this manifest file; otherwise
 * why not (for TASKVAULT_TRACE), and the caller walks.
 */
export async function askUnchanged(
  daemonDir: string,
  check: ResidentCheck,
  timeoutMs: number,
): Promise<ResidentAnswer> {
  const socket = residentSocket(daemonDir);
  if ('why' in socket) return socket;
  const reply = await ask(socket.path, { op: 'check', ...check }, timeoutMs);
  if (!reply) return { why: 'no answer in time' };
  if (reply.build !== RESIDENT_BUILD)
    return { why: `daemon of another build (${reply.build})`, build: String(reply.build) };
  return reply.unchanged === true ? 'unchanged' : { why: String(reply.why ?? 'not known') };
}

/** What a check found: a daemon of this build vouched, or why the run walks. */
export type ResidentAnswer = 'unchanged' | { why: string; build?: string };

/**
 * The check a run's fingerprint asks (FingerprintOptions.unchangedSince), or undefined when the
 * helper is turned off (TASKVAULT_DAEMON=0) or cannot run here.
 */
export function residentCheck(
  daemonDir: string,
  where: { root: string; cwd: string },
  algorithm: string,
  /** Told what the check found (TASKVAULT_TRACE, `run`'s auto-start). */
  seen: (answer: ResidentAnswer) => void,
  env: NodeJS.ProcessEnv = process.env,
): ((id: string, prior: { stamp?: string; count: number }) => Promise<boolean>) | undefined {
  if (env.TASKVAULT_DAEMON === '0' || process.platform !== 'linux') return undefined;
  return async (id, prior) => {
    if (!prior.stamp) return false;
    const check = { id, stamp: prior.stamp, root: where.root, cwd: where.cwd, algorithm };
    const answer = await askUnchanged(daemonDir, check, checkTimeoutMs(prior.count, env));
    seen(answer);
    return answer === 'unchanged';
  };
}

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ask, RESIDENT_BUILD, residentSocket } from '../fingerprint/resident.js';
import { besideCode } from '../package-dir.js';
import type { CacheLayout } from '../store/layout.js';
import { pidAlive } from '../util/process.js';
import { daemonStatus, readPidFile } from './server.js';

/*
 * Starting and stopping the daemon from a command (`taskvault daemon start|stop`, and a `run` with
 * TASKVAULT_DAEMON=auto): it runs as this package's `taskvault daemon run` in a detached process of
 * its own.
 */

export type Started =
  | { kind: 'started' | 'running'; status: Record<string, unknown> }
  | { kind: 'failed'; why: string };

/** Starts a daemon for `layout` unless one of this build answers; replaces one of another build. */
export async function startDaemon(
  layout: CacheLayout,
  o: { cwd: string; idleMinutes: number; waitMs?: number },
): Promise<Started> {
  const now = await daemonStatus(layout);
  if (now?.build === RESIDENT_BUILD) return { kind: 'running', status: now };
  if (now) await stopDaemon(layout);
  const child = spawn(
    process.execPath,
    [
      fileURLToPath(besideCode('cli.cjs')),
      'daemon',
      'run',
      '--cache-dir',
      layout.root,
      '--idle-timeout',
      String(o.idleMinutes),
    ],
    { cwd: o.cwd, detached: true, stdio: 'ignore', env: { ...process.env, TASKVAULT_TRACE: '' } },
  );
  child.unref();
  const deadline = Date.now() + (o.waitMs ?? 5000);
  while (Date.now() < deadline) {
    await sleep(25);
    const status = await daemonStatus(layout, 500);
    if (status?.build === RESIDENT_BUILD) return { kind: 'started', status };
    if (child.exitCode !== null) break;
  }
  return { kind: 'failed', why: lastLogLine(layout) ?? 'it did not answer in time' };
}

/** Stops the daemon of `layout`: asked over its socket, else (not answering) sent SIGTERM. */
export async function stopDaemon(layout: CacheLayout): Promise<{ pid: number } | undefined> {
  const info = readPidFile(join(layout.daemon, 'pid'));
  const socket = residentSocket(layout.daemon);
  const asked = 'path' in socket ? await ask(socket.path, { op: 'stop' }, 1000) : undefined;
  if (!info || !pidAlive(info.pid)) return asked ? { pid: Number(asked.pid ?? 0) } : undefined;
  if (!asked && isOurDaemon(info.pid)) process.kill(info.pid, 'SIGTERM');
  for (let i = 0; i < 100 && pidAlive(info.pid); i++) await sleep(20);
  return { pid: info.pid };
}

/** Whether `pid` is a `taskvault daemon run` (a pid file can outlive its process; pids are reused). */
function isOurDaemon(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const at = argv.indexOf('daemon');
    return at > 0 && argv[at + 1] === 'run';
  } catch {
    return false; // gone, or not ours to read
  }
}

function lastLogLine(layout: CacheLayout): string | undefined {
  try {
    const lines = readFileSync(join(layout.daemon, 'log'), 'utf8').trim().split('\n');
    return lines.at(-1)?.replace(/^\S+ /, '');
  } catch {
    return undefined; // no log: nothing more to say
  }
}

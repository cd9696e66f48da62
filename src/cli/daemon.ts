import type { CAC } from 'cac';
import type { Settings } from '../config/resolve.js';
import type { Started } from '../daemon/control.js';
import { RESIDENT_BUILD } from '../fingerprint/resident.js';
import { cacheLayout } from '../store/layout.js';
import { formatDuration } from '../util/format.js';
import { type Failure, failure } from '../util/result.js';
import { action, type CommonFlags, report, settingsFor, withCommonOptions, writeJson } from './shared.js';

/*
 * `taskvault daemon start|stop|status|run`: the optional resident helper (docs/daemon.md). A run
 * uses a running daemon of its own build to skip the stat walk of its inputs; nothing needs it.
 */

interface DaemonFlags extends CommonFlags {
  idleTimeout?: string | number;
}

/** Minutes without a question after which a daemon exits, unless told otherwise. */
export const DEFAULT_IDLE_MINUTES = 30;
/** The same for one started by a run (TASKVAULT_DAEMON=auto). */
export const AUTO_IDLE_MINUTES = 15;

export function registerDaemon(cli: CAC): void {
  withCommonOptions(
    cli.command(
      'daemon <action>',
      'Resident input watcher that lets hits skip the stat walk: start, stop, status, run',
    ),
  )
    .usage('daemon start|stop|status|run [options]')
    .option(
      '--idle-timeout <minutes>',
      `start, run: exit after this many minutes without a question (default ${DEFAULT_IDLE_MINUTES}; 0: never)`,
    )
    .example('taskvault daemon start')
    .example('taskvault daemon status --json')
    .example('taskvault daemon stop')
    .action(action(daemon));
}

async function daemon(what: string, flags: DaemonFlags): Promise<number | Failure> {
  if (!['start', 'stop', 'status', 'run'].includes(what))
    return failure('usage', `unknown daemon action '${what}'`, 'use start, stop, status or run');
  const idle = idleMinutes(flags.idleTimeout);
  if (typeof idle !== 'number') return idle;
  if (process.platform !== 'linux')
    return failure(
      'usage',
      'the daemon runs only on Linux (it watches inputs with inotify)',
      'runs work without it',
    );
  const settings = await settingsFor(flags);
  const layout = cacheLayout(settings.cacheDir);
  if (what === 'run') return runInForeground(settings, idle);
  if (what === 'start') {
    const { startDaemon } = await import('../daemon/control.js');
    const started = await startDaemon(layout, { cwd: settings.root, idleMinutes: idle });
    return printStarted(started, flags);
  }
  if (what === 'stop') {
    const { stopDaemon } = await import('../daemon/control.js');
    const stopped = await stopDaemon(layout);
    if (flags.json) writeJson({ stopped: stopped !== undefined, pid: stopped?.pid ?? null });
    else process.stdout.write(stopped ? `daemon stopped (pid ${stopped.pid})\n` : 'no daemon running\n');
    return 0;
  }
  const { daemonStatus } = await import('../daemon/server.js');
  const status = await daemonStatus(layout);
  if (flags.json) writeJson(status ? { running: true, ...status } : { running: false });
  else process.stdout.write(status ? statusText(status) : `no daemon running for ${settings.cacheDir}\n`);
  return status ? 0 : 1;
}

function idleMinutes(value: string | number | undefined): number | Failure {
  if (value === undefined) return DEFAULT_IDLE_MINUTES;
  const n = Number(value);
  if (String(value).trim() === '' || !Number.isFinite(n) || n < 0)
    return failure('usage', `--idle-timeout must be a number of minutes, 0 or more (got '${value}')`);
  return n;
}

async function runInForeground(settings: Settings, idle: number): Promise<number | Failure> {
  const { Resident, logTo } = await import('../daemon/server.js');
  const layout = cacheLayout(settings.cacheDir);
  const resident = new Resident(layout, { idleMs: idle * 60_000, log: logTo(`${layout.daemon}/log`) });
  const started = await resident.start();
  if (!started.ok) return report(started.error);
  process.stderr.write(`taskvault: daemon running (pid ${process.pid}, socket ${started.value.socket})\n`);
  await resident.done;
  return 0;
}

function printStarted(started: Started, flags: DaemonFlags): number | Failure {
  if (started.kind === 'failed')
    return failure('cache', `daemon did not start: ${started.why}`, 'runs still work without it');
  if (flags.json) writeJson({ ...started.status, started: started.kind === 'started' });
  else
    process.stdout.write(
      `daemon ${started.kind === 'started' ? 'started' : 'already running'} (pid ${started.status.pid}, socket ${started.status.socket})\n`,
    );
  return 0;
}

function statusText(s: Record<string, unknown>): string {
  const answered = s.answered as { unchanged: number; other: number } | undefined;
  const lines = [
    `daemon running: pid ${s.pid}, up ${formatDuration(Date.now() - Number(s.startedAt))}, socket ${s.socket}`,
    s.build === RESIDENT_BUILD
      ? `  build ${s.build}`
      : `  build ${s.build}: not this CLI's (${RESIDENT_BUILD}), so runs do not use it; 'taskvault daemon start' replaces it`,
    `  vouching for ${s.vouching} of ${s.manifests} input sets, ${s.watches} watches`,
    `  answered: ${answered?.unchanged ?? 0} unchanged, ${answered?.other ?? 0} walk instead`,
  ];
  for (const n of (s.notVouching as Array<{ id: string; why: string }> | undefined) ?? [])
    lines.push(`  ${n.id}: ${n.why}`);
  return `${lines.join('\n')}\n`;
}

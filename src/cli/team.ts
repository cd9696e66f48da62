import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CAC } from 'cac';
import type { Settings } from '../config/resolve.js';
import { besideCode } from '../package-dir.js';
import { cacheLayout } from '../store/layout.js';
import { bufferMax, flushDue, takeDropWarning, takeLastError } from '../store/team/buffer.js';
import { type RecordedOutcome, recordTeamEvent, teamEventOf } from '../store/team/record.js';
import { type Failure, failure } from '../util/result.js';
import { action, type CommonFlags, settingsFor, withCommonOptions, writeJson } from './shared.js';

/** A run hands its buffered events to a background flush at most this often (a miss: always). */
export const FLUSH_EVERY_MS = 30_000;

/**
 * After a run: its event goes to the local buffer (one append), and when a flush is due a
 * detached `taskvault team flush` sends the buffer, so the CLI's exit never waits on the database.
 * A flush that failed last time is reported here, once, as a warning. Never throws.
 */
export function recordRun(
  settings: Settings,
  outcome: RecordedOutcome,
  o: { task: string; warn: (m: string) => void; now?: number },
): void {
  if (!settings.team || settings.disabled) return;
  const now = o.now ?? Date.now();
  const teamDir = cacheLayout(settings.cacheDir).team;
  const event = teamEventOf(outcome, { task: o.task, via: 'run', root: settings.root, at: now });
  if (!event || !recordTeamEvent(teamDir, event)) return;
  try {
    if (outcome.kind !== 'miss' && !flushDue(teamDir, now, FLUSH_EVERY_MS)) return;
    const failed = takeLastError(teamDir);
    if (failed) o.warn(failed);
    const dropped = takeDropWarning(teamDir, bufferMax(process.env));
    if (dropped) o.warn(dropped);
    startBackgroundFlush(settings);
  } catch (e) {
    // Spawning failed (no processes left?): the events stay buffered for the next run.
    o.warn(`team index: could not start a flush: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function startBackgroundFlush(settings: Settings): void {
  // The bin itself, wherever this module runs from (the CLI bundle, dist/cli/, an SDK host).
  const bin = fileURLToPath(besideCode('cli.cjs'));
  const child = spawn(
    process.execPath,
    [bin, 'team', 'flush', '--background', '--cache-dir', settings.cacheDir],
    {
      cwd: settings.root,
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, TASKVAULT_TEAM_DATABASE: settings.team!.database },
    },
  );
  child.on('error', () => {}); // reported by the next run that finds the buffer still full
  child.unref();
}

interface TeamFlags extends CommonFlags {
  background?: boolean;
}

/** `taskvault team flush`: sends the buffered events now; `team status`: what waits to be sent. */
export function registerTeam(cli: CAC): void {
  withCommonOptions(cli.command('team <action>', 'The team index on PostgreSQL: team flush, team status'))
    .option('--background', 'Started by a run: record a failure for the next run to report')
    .example('taskvault team flush')
    .example('taskvault team status --json')
    .action(
      action(async (act: string, flags: TeamFlags) => {
        if (act === 'flush') return flush(flags);
        if (act === 'status') return status(flags);
        return failure('usage', `unknown team action '${act}'`, 'use: team flush, team status');
      }),
    );
}

/** `taskvault team status`: this machine's side of the team index (no database needed). */
async function status(flags: TeamFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  const teamDir = cacheLayout(settings.cacheDir).team;
  const { bufferedCount, peekLastError, readDropTally, teamPaths } = await import('../store/team/buffer.js');
  const { dbErrorText } = await import('../store/team/connect.js');
  const stamp = statSync(teamPaths(teamDir).stamp, { throwIfNoEntry: false });
  const dropped = readDropTally(teamDir);
  const s = {
    configured: settings.team !== undefined,
    database: settings.team ? dbErrorText(settings.team.database) : null,
    buffered: bufferedCount(teamDir),
    bufferMax: bufferMax(process.env),
    dropped: dropped?.total ?? 0,
    droppedSince: dropped && dropped.episode > 0 ? dropped.since : null,
    lastFlush: stamp ? new Date(stamp.mtimeMs).toISOString() : null,
    lastError: peekLastError(teamDir) ?? null,
  };
  if (flags.json) {
    writeJson(s);
    return 0;
  }
  const lines = [
    `team index: ${s.database ?? 'not configured (team.database or TASKVAULT_TEAM_DATABASE)'}`,
    `buffered:   ${s.buffered} event(s) waiting to be sent (cap ${s.bufferMax})`,
    `dropped:    ${s.dropped} event(s)${s.droppedSince ? `, the buffer full since ${s.droppedSince}` : ''}`,
    `last flush: ${s.lastFlush ?? 'never'}${s.lastError ? ` (failed: ${s.lastError})` : ''}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function flush(flags: TeamFlags): Promise<number | Failure> {
  const settings = await settingsFor(flags);
  if (!settings.team)
    return failure(
      'config',
      'no team index is configured',
      "set team: { database: 'postgres://…' } in taskvault.config.ts or TASKVAULT_TEAM_DATABASE",
    );
  const teamDir = cacheLayout(settings.cacheDir).team;
  const { flushTeam } = await import('../store/team/flush.js');
  const r = await flushTeam(teamDir, settings.team, { foreground: !flags.background });
  if (!r.ok) {
    if (flags.background) {
      const { writeLastError } = await import('../store/team/buffer.js');
      writeLastError(teamDir, r.error.message);
      return 0;
    }
    return r.error;
  }
  if (flags.json) writeJson(r.value);
  else if (!flags.background) process.stderr.write(`team index: sent ${r.value.sent} event(s)\n`);
  return 0;
}

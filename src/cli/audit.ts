import { readFileSync } from 'node:fs';
import type { CAC } from 'cac';
import { cacheLayout } from '../store/layout.js';
import { parseDuration } from '../util/format.js';
import { type Failure, failure } from '../util/result.js';
import { action, type CommonFlags, settingsFor, withCommonOptions } from './shared.js';

interface AuditFlags extends CommonFlags {
  team?: boolean;
  task?: string;
  since?: string;
}

/** `taskvault audit [--team] [--task T] [--since 1d]`: the audit log, this machine's or the team's. */
export function registerAudit(cli: CAC): void {
  withCommonOptions(cli.command('audit', "Print the audit log (--team: every machine's, from PostgreSQL)"))
    .option('--team', 'Events of every machine from the team index (team.database)')
    .option('--task <name>', 'Only this task')
    .option('--since <duration>', 'Only events this recent, e.g. 1d, 2h')
    .example('taskvault audit --team --task build --since 1d')
    .action(action(audit));
}

async function audit(flags: AuditFlags): Promise<number | Failure> {
  if (flags.task !== undefined && (typeof flags.task !== 'string' || flags.task === ''))
    return failure('usage', '--task needs a task name', 'e.g. --task build');
  let sinceMs: number | undefined;
  if (flags.since !== undefined) {
    const ms = parseDuration(String(flags.since));
    if (ms === undefined)
      return failure('usage', `invalid --since '${flags.since}'`, "use a duration like '1d', '2h', '30m'");
    sinceMs = Date.now() - ms;
  }
  const settings = await settingsFor(flags);
  const query = {
    ...(flags.task !== undefined ? { task: flags.task } : {}),
    ...(sinceMs !== undefined ? { sinceMs } : {}),
  };
  let lines: string[];
  if (flags.team) {
    if (!settings.team)
      return failure(
        'config',
        'no team index is configured',
        "set team: { database: 'postgres://…' } in taskvault.config.ts or TASKVAULT_TEAM_DATABASE",
      );
    const { connectTeam, dbErrorText } = await import('../store/team/connect.js');
    const { teamAuditLines } = await import('../store/team/read.js');
    try {
      const db = await connectTeam(settings.team);
      try {
        lines = await teamAuditLines(db, query);
      } finally {
        await db.end().catch(() => {});
      }
    } catch (e) {
      return failure(
        'cache',
        `team index: ${dbErrorText(e)}`,
        'check team.database and that the server is up',
      );
    }
  } else lines = localLines(cacheLayout(settings.cacheDir).audit, query);
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/** This machine's audit.log, filtered as the team query would be. */
function localLines(file: string, q: { task?: string; sinceMs?: number }): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return []; // no log yet: nothing has run
  }
  return text.split('\n').filter((line) => {
    if (!line) return false;
    const at = Date.parse(line.slice(1, line.indexOf(']')));
    if (q.sinceMs !== undefined && !(at >= q.sinceMs)) return false;
    if (q.task === undefined) return true;
    const m = line.match(/ task=("(?:[^"\\]|\\.)*"|\S+)/);
    if (!m) return false;
    const task = m[1]!.startsWith('"') ? (JSON.parse(m[1]!) as string) : m[1];
    return task === q.task;
  });
}

import type { ClientBase } from 'pg';
import type { TeamSettings } from '../../config/team.js';
import { err, failure, ok, type Result } from '../../util/result.js';
import { formatAuditLine } from '../audit.js';
import { connectTeam, DEFAULT_TIMEOUTS, dbErrorText, type TeamTimeouts } from './connect.js';
import { schemaVersion } from './schema.js';

/** What `audit --team` asks for. Every value reaches SQL as a parameter, never as text. */
export interface TeamAuditQuery {
  task?: string;
  /** Only events at or after this time (ms since the epoch). */
  sinceMs?: number;
  limit?: number;
}

interface EventRow {
  at: Date;
  task: string;
  key: string;
  outcome: string;
  source: string;
  via: string;
  duration_ms: string;
  saved_ms: string;
  exit_code: number | null;
  host: string;
  user_name: string;
  ci: boolean;
  git_commit: string | null;
}

/** Events of every machine, oldest first, as audit.log lines (store/audit.ts). */
export async function teamAuditLines(db: ClientBase, q: TeamAuditQuery): Promise<string[]> {
  if ((await schemaVersion(db)) < 2) return [];
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.task !== undefined) {
    params.push(q.task);
    where.push(`task = $${params.length}`);
  }
  if (q.sinceMs !== undefined) {
    params.push(new Date(q.sinceMs));
    where.push(`at >= $${params.length}`);
  }
  params.push(q.limit ?? 10_000);
  const r = await db.query<EventRow>(
    `SELECT * FROM (SELECT at, task, key, outcome, source, via, duration_ms, saved_ms, exit_code, host,
       user_name, ci, git_commit FROM taskvault_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY at DESC, id LIMIT $${params.length}) newest ORDER BY at, key`,
    params,
  );
  return r.rows.map((e) =>
    formatAuditLine(
      e.outcome === 'hit' ? 'HIT' : e.outcome === 'miss' ? 'MISS' : 'ERROR',
      e.via,
      {
        task: e.task,
        hash: e.key.slice(0, 12),
        origin: e.source,
        ms: Number(e.duration_ms),
        saved_ms: e.outcome === 'hit' ? Number(e.saved_ms) : undefined,
        exit: e.exit_code ?? undefined,
        host: e.host,
        user: e.user_name,
        ci: e.ci ? 1 : undefined,
        commit: e.git_commit?.slice(0, 12),
      },
      e.at,
    ),
  );
}

/**
 * When each of `keys` was last hit on any machine (from taskvault_entries, kept by the events
 * trigger), for `gc --remote` to evict the shared store's least recently used entries. A key the
 * index never saw hit is absent from the map; one it knows but never hit maps to its creation time.
 */
export async function lastHits(db: ClientBase, keys: string[]): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  if (keys.length === 0 || (await schemaVersion(db)) < 2) return out;
  const r = await db.query<{ key: string; t: Date }>(
    'SELECT key, COALESCE(last_hit, created) AS t FROM taskvault_entries WHERE key = ANY($1::text[])',
    [keys],
  );
  for (const { key, t } of r.rows) out.set(key, t);
  return out;
}

/**
 * lastHits on its own connection, for a caller without one (`gc --remote`): a database that cannot
 * be reached is a failure value, and the caller falls back to its own notion of age.
 */
export async function lastHitsFrom(
  team: TeamSettings,
  keys: string[],
  timeouts: TeamTimeouts = DEFAULT_TIMEOUTS,
): Promise<Result<Map<string, Date>>> {
  try {
    const db = await connectTeam(team, timeouts);
    try {
      return ok(await lastHits(db, keys));
    } finally {
      await db.end().catch(() => {});
    }
  } catch (e) {
    return err(failure('cache', `team index: ${dbErrorText(e)}`, 'check team.database'));
  }
}

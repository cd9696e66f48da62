import type { ClientBase } from 'pg';

/*
 * What the team dashboard (`taskvault ui --team`) reads from the team index: per-period and
 * per-task tallies, the newest runs, the users / hosts / branches to filter by, and the shared
 * entries. Every value from a request reaches SQL as a parameter ($n), never as text; the only
 * text spliced into a statement is fixed here.
 */

/** Whose runs: any of them may be left out (every user, host, branch). */
export interface TeamFilters {
  user?: string;
  host?: string;
  branch?: string;
}

export interface TeamWindow extends TeamFilters {
  /** Events at or after `fromMs` and before `toMs`. */
  fromMs: number;
  toMs: number;
}

/** One period's tallies of one task. */
export interface TeamTally {
  /** Start of the period, ms since the epoch (a multiple of stepMs, so UTC hours or days). */
  t: number;
  task: string;
  hits: number;
  remoteHits: number;
  misses: number;
  errors: number;
  savedMs: number;
  /** Misses whose result was stored (an entry was made). */
  saves: number;
}

export interface TeamRun {
  at: number;
  task: string;
  key: string;
  outcome: 'hit' | 'miss' | 'error';
  source: 'local' | 'remote';
  durationMs: number;
  savedMs: number;
  exitCode: number | null;
  host: string;
  user: string;
  branch: string | null;
  commit: string | null;
}

/** The WHERE clause and its parameters for a window: columns fixed here, values as $n. */
function whereOf(w: TeamWindow, extra: { task?: string } = {}): { sql: string; params: unknown[] } {
  const params: unknown[] = [new Date(w.fromMs), new Date(w.toMs)];
  const where = ['at >= $1', 'at < $2'];
  const add = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    params.push(value);
    where.push(`${column} = $${params.length}`);
  };
  add('user_name', w.user);
  add('host', w.host);
  add('branch', w.branch);
  add('task', extra.task);
  return { sql: where.join(' AND '), params };
}

/** Tallies per period of `stepMs` and task, in the window. */
export async function teamTallies(db: ClientBase, w: TeamWindow, stepMs: number): Promise<TeamTally[]> {
  const { sql, params } = whereOf(w);
  params.push(stepMs);
  const r = await db.query<Record<string, string>>(
    `SELECT floor(extract(epoch FROM at) * 1000 / $${params.length})::bigint AS period, task,
       count(*) FILTER (WHERE outcome = 'hit') AS hits,
       count(*) FILTER (WHERE outcome = 'hit' AND source = 'remote') AS remote_hits,
       count(*) FILTER (WHERE outcome = 'miss') AS misses,
       count(*) FILTER (WHERE outcome = 'error') AS errors,
       coalesce(sum(saved_ms) FILTER (WHERE outcome = 'hit'), 0) AS saved_ms,
       count(*) FILTER (WHERE outcome = 'miss' AND stored IS NOT NULL) AS saves
     FROM taskvault_events WHERE ${sql} GROUP BY period, task ORDER BY period, task`,
    params,
  );
  return r.rows.map((x) => ({
    t: Number(x.period) * stepMs,
    task: x.task!,
    hits: Number(x.hits),
    remoteHits: Number(x.remote_hits),
    misses: Number(x.misses),
    errors: Number(x.errors),
    savedMs: Number(x.saved_ms),
    saves: Number(x.saves),
  }));
}

interface RunRow {
  at: Date;
  task: string;
  key: string;
  outcome: TeamRun['outcome'];
  source: TeamRun['source'];
  duration_ms: string;
  saved_ms: string;
  exit_code: number | null;
  host: string;
  user_name: string;
  branch: string | null;
  git_commit: string | null;
}

/** The newest runs in the window (of one task if given), newest first. */
export async function teamRuns(
  db: ClientBase,
  w: TeamWindow,
  o: { task?: string; limit: number },
): Promise<TeamRun[]> {
  const { sql, params } = whereOf(w, o.task === undefined ? {} : { task: o.task });
  params.push(o.limit);
  const r = await db.query<RunRow>(
    `SELECT at, task, key, outcome, source, duration_ms, saved_ms, exit_code, host, user_name, branch,
       git_commit FROM taskvault_events WHERE ${sql} ORDER BY at DESC, id LIMIT $${params.length}`,
    params,
  );
  return r.rows.map((x) => ({
    at: x.at.getTime(),
    task: x.task,
    key: x.key,
    outcome: x.outcome,
    source: x.source,
    durationMs: Number(x.duration_ms),
    savedMs: Number(x.saved_ms),
    exitCode: x.exit_code,
    host: x.host,
    user: x.user_name,
    branch: x.branch,
    commit: x.git_commit,
  }));
}

/** The users, hosts and branches that ran anything in the window (what the filters offer). */
export async function teamChoices(
  db: ClientBase,
  w: { fromMs: number; toMs: number },
): Promise<{ users: string[]; hosts: string[]; branches: string[] }> {
  const params = [new Date(w.fromMs), new Date(w.toMs)];
  const distinct = async (column: 'user_name' | 'host' | 'branch') =>
    (
      await db.query<{ v: string }>(
        `SELECT DISTINCT ${column} AS v FROM taskvault_events
         WHERE at >= $1 AND at < $2 AND ${column} IS NOT NULL ORDER BY v LIMIT 500`,
        params,
      )
    ).rows.map((x) => x.v);
  return {
    users: await distinct('user_name'),
    hosts: await distinct('host'),
    branches: await distinct('branch'),
  };
}

/** The entries the team index knows (every machine's stored misses): how many, how many bytes. */
export async function teamEntries(db: ClientBase): Promise<{ count: number; bytes: number }> {
  const r = await db.query<{ n: string; b: string }>(
    'SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM taskvault_entries',
  );
  return { count: Number(r.rows[0]?.n ?? 0), bytes: Number(r.rows[0]?.b ?? 0) };
}

/**
 * What changes when events arrive (for the page's live updates): the newest event time and the
 * count of the last day's events (an index range scan, cheap however large the table).
 */
export async function teamVersion(db: ClientBase): Promise<string> {
  const r = await db.query<{ n: string; last: Date | null }>(
    "SELECT count(*) AS n, max(at) AS last FROM taskvault_events WHERE at > now() - interval '1 day'",
  );
  return `${r.rows[0]?.n ?? 0}:${r.rows[0]?.last?.getTime() ?? 0}`;
}

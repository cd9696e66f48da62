import type { Client } from 'pg';
import type { Settings } from '../config/resolve.js';
import type { TeamSettings } from '../config/team.js';
import { connectTeam, dbErrorText } from '../store/team/connect.js';
import {
  type TeamFilters,
  type TeamRun,
  type TeamTally,
  type TeamWindow,
  teamChoices,
  teamEntries,
  teamRuns,
  teamTallies,
  teamVersion,
} from '../store/team/panels.js';
import { migrate, SCHEMA_VERSION, schemaVersion } from '../store/team/schema.js';
import { DAY_HOURS, HOUR_MS } from '../store/timeseries.js';
import { costOf, type Prices, prices } from './cost.js';
import { addRuns, emptyPoint, type SeriesPoint } from './data.js';
import { BadQuery, HttpError, integer, only, span, text } from './query.js';
import type { DashboardRoutes } from './server.js';

/*
 * The dashboard's routes for `taskvault ui --team`: the same panels as for one machine (totals, hits
 * and misses over time, hit rate and time saved, cost, top tasks, recent runs), read from the team
 * index on PostgreSQL and narrowed by user, host (CI node) and branch. The page learns it is the
 * team view from the overview's `team` field. A database that cannot be reached is a 503 with one
 * line, and the next request tries again.
 */

/** Query timeouts for a page waiting on an answer: a dead host fails fast. */
const TIMEOUTS = { connectMs: 3_000, statementMs: 10_000 };
const FILTERS = ['user', 'host', 'branch'] as const;

/** A filter value: printable text of at most 200 characters; '' or absent: no filter. */
function filtersOf(params: URLSearchParams): TeamFilters {
  const f: TeamFilters = {};
  for (const name of FILTERS) {
    const v = text(params, name, { max: 200 });
    if (/[\u0000-\u001f\u007f]/.test(v)) throw new BadQuery(`${name} must not contain control characters`);
    if (v !== '') f[name] = v;
  }
  return f;
}

/** A point of the team's series: the local one's fields; no cache usage (each machine has its own). */
export type TeamSeriesPoint = Omit<SeriesPoint, 'usage'> & { usage: null };

export class TeamDashboardData implements DashboardRoutes {
  readonly pollMs = 2_000;
  /** Each answer is a query of the team index: no version query before it (overview reads one). */
  readonly readsLive = true;
  private readonly prices: Prices;
  private readonly team: TeamSettings;
  private client: Promise<Client> | undefined;
  private seen = '';

  constructor(settings: Settings & { team: TeamSettings }) {
    this.team = settings.team;
    this.prices = prices(settings.config.cost);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.then((db) => db.end()).catch(() => {});
  }

  /**
   * The connection, opened (and the schema brought to this version, which needs the owner's
   * rights) on first use and again after a failure; requests arriving meanwhile share the one being
   * opened. Every failure is a 503 saying why.
   */
  private async query<T>(f: (db: Client) => Promise<T>): Promise<T> {
    this.client ??= this.open();
    const opening = this.client;
    try {
      return await f(await opening);
    } catch (e) {
      if (this.client === opening) await this.close();
      if (e instanceof HttpError) throw e;
      throw new HttpError(503, `team index unreachable: ${dbErrorText(e)}`);
    }
  }

  private async open(): Promise<Client> {
    const db = await connectTeam(this.team, TIMEOUTS);
    try {
      if ((await schemaVersion(db)) < SCHEMA_VERSION) await migrate(db);
    } catch (e) {
      await db.end().catch(() => {});
      throw new HttpError(
        503,
        `team index schema is older than this TaskVault (version ${SCHEMA_VERSION}) and this role may not migrate it: ${dbErrorText(e)}; run \`taskvault team flush\` once as the owner`,
      );
    }
    return db;
  }

  version(): string {
    return this.seen;
  }

  async refresh(): Promise<void> {
    this.seen = await this.query(teamVersion);
  }

  metrics(): string {
    throw new HttpError(404, '/metrics is per machine: run `taskvault ui` without --team to scrape it');
  }

  async api(path: string, params: URLSearchParams): Promise<unknown> {
    switch (path) {
      case '/api/overview': {
        only(params, ['range', 'step', ...FILTERS]);
        const range = span(params, Date.now());
        return this.overview(range, filtersOf(params));
      }
      case '/api/runs': {
        only(params, ['task', 'limit', ...FILTERS]);
        const task = text(params, 'task', { max: 512, required: true });
        const limit = integer(params, 'limit', { min: 1, max: 500, fallback: 20 });
        const w: TeamWindow = { fromMs: 0, toMs: Date.now() + 1, ...filtersOf(params) };
        const runs = await this.query((db) => teamRuns(db, w, { task, limit }));
        return { task, runs: runs.map(runRow) };
      }
      default:
        throw new HttpError(
          404,
          path === '/api/entries' || path === '/api/entry' || path === '/api/sizes'
            ? `${path} lists this machine's cache: run \`taskvault ui\` without --team`
            : `no such path: ${path.slice(0, 200)}`,
        );
    }
  }

  private async overview(range: { from: number; to: number; step: 'hour' | 'day' }, filters: TeamFilters) {
    const stepMs = range.step === 'day' ? DAY_HOURS * HOUR_MS : HOUR_MS;
    const fromMs = Math.floor(range.from / stepMs) * stepMs;
    const toMs = range.to + 1;
    const w: TeamWindow = { fromMs, toMs, ...filters };
    const { tallies, runs, choices, entries, version } = await this.query(async (db) => ({
      tallies: await teamTallies(db, w, stepMs),
      runs: await teamRuns(db, w, { limit: 20 }),
      choices: await teamChoices(db, { fromMs, toMs }),
      entries: await teamEntries(db),
      version: await teamVersion(db),
    }));
    this.seen = version;
    const series = this.seriesOf(tallies, fromMs, toMs, stepMs);
    const tasks = this.tasksOf(tallies);
    const totals = {
      hits: 0,
      remoteHits: 0,
      misses: 0,
      errors: 0,
      savedMs: 0,
      evictions: 0,
      cost: 0,
    };
    for (const t of tasks) {
      addRuns(totals, t);
      totals.cost += t.cost;
    }
    const looked = totals.hits + totals.misses;
    return {
      // The tiles: the range's figures (narrowed by the filters) and the shared entries.
      stats: {
        entries: entries.count,
        totalBytes: entries.bytes,
        limitBytes: 0,
        usagePercent: 0,
        hits: totals.hits,
        remoteHits: totals.remoteHits,
        misses: totals.misses,
        hitRate: looked === 0 ? null : totals.hits / looked,
        savedMs: totals.savedMs,
      },
      currency: this.prices.currency,
      range,
      totals,
      series,
      tasks,
      evictReasons: {},
      version,
      team: { filters, choices, runs: runs.map(runRow) },
    };
  }

  private seriesOf(tallies: TeamTally[], fromMs: number, toMs: number, stepMs: number): TeamSeriesPoint[] {
    const at = new Map<number, TeamSeriesPoint>();
    const series: TeamSeriesPoint[] = [];
    for (let t = fromMs; t < toMs; t += stepMs) {
      const p: TeamSeriesPoint = emptyPoint(t, null);
      series.push(p);
      at.set(t, p);
    }
    for (const x of tallies) {
      const p = at.get(x.t);
      if (!p) continue; // cannot happen: the query's window is the series'
      addRuns(p, x);
      p.cost += costOf(this.prices, x.task, x.savedMs);
    }
    return series;
  }

  private tasksOf(tallies: TeamTally[]) {
    const by = new Map<string, Omit<TeamTally, 't' | 'task'>>();
    for (const x of tallies) {
      const t = by.get(x.task) ?? { hits: 0, remoteHits: 0, misses: 0, errors: 0, savedMs: 0, saves: 0 };
      addRuns(t, x);
      t.saves += x.saves;
      by.set(x.task, t);
    }
    return [...by]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([task, t]) => ({ task, ...t, cost: costOf(this.prices, task, t.savedMs) }));
  }
}

/** A run as the page's run tables show it (the local view's shape, plus who and where). */
function runRow(r: TeamRun) {
  return {
    at: r.at,
    event: r.outcome === 'hit' ? 'HIT' : r.outcome === 'miss' ? 'MISS' : 'ERROR',
    hash: r.key.slice(0, 12),
    origin: r.source,
    task: r.task,
    user: r.user,
    host: r.host,
    branch: r.branch,
    commit: r.commit?.slice(0, 12) ?? null,
    durationMs: r.durationMs,
    savedMs: r.savedMs,
  };
}

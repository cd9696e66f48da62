/*
 * The read-only API of src/ui/server.ts as the page sees it: the shapes of its JSON answers, one
 * function per endpoint, and its event stream. The only module that knows the URLs.
 */

export interface Stats {
  entries: number;
  totalBytes: number;
  limitBytes: number;
  usagePercent: number;
  hits: number;
  remoteHits: number;
  misses: number;
  hitRate: number | null;
  savedMs: number;
}
export interface Point {
  t: number;
  hits: number;
  remoteHits: number;
  misses: number;
  errors: number;
  savedMs: number;
  evictions: number;
  evictedBytes: number;
  usage: number | null;
  cost: number;
}
export interface TaskRow {
  task: string;
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
  saves: number;
  cost: number;
}
export interface Held {
  task: string;
  entries: number;
  bytes: number;
}
export interface Overview {
  stats: Stats;
  currency: string;
  range: { from: number; to: number; step: 'hour' | 'day' };
  totals: {
    hits: number;
    remoteHits: number;
    misses: number;
    errors: number;
    savedMs: number;
    evictions: number;
    cost: number;
  };
  series: Point[];
  tasks: TaskRow[];
  evictReasons: Record<string, number>;
  version: string;
  /** Only from `taskvault ui --team`: the filters applied, what they offer, the newest runs. */
  team?: TeamView;
}
export interface Run {
  at: number;
  event: 'HIT' | 'MISS' | 'SAVE' | 'ERROR';
  hash: string;
  origin?: string;
  reason?: string[];
  /** Team view only: which task, who ran it, where and on which branch. */
  task?: string;
  user?: string;
  host?: string;
  branch?: string | null;
  savedMs?: number;
  durationMs?: number;
}
/** The team view's filters: '' for everyone. */
export interface Filters {
  user: string;
  host: string;
  branch: string;
}
export interface TeamView {
  filters: Partial<Filters>;
  choices: { users: string[]; hosts: string[]; branches: string[] };
  runs: Run[];
}
export interface EntryRow {
  key: string;
  task: string;
  createdAt: number;
  lastAccess: number;
  bytes: number;
  ttlMs: number;
}
export interface EntryDetail {
  key: string;
  task: string;
  createdAt: number;
  lastAccess?: number;
  hits: number;
  bytes: number;
  ttlMs: number;
  durationMs: number;
  exitCode: number;
  cwd: string;
  outputs: Array<{ path: string; type: string; size?: number }>;
  outputCount: number;
  provenance: { host: string; user: string; version: string; gitCommit?: string; origin: string };
}
/** A page of the entries table: what to match, how to sort, where the page starts. */
export interface EntriesQuery {
  q: string;
  task: string;
  sort: string;
  order: string;
  offset: number;
  limit: number;
}

/** GETs `path`; empty parameters are left out. A non-2xx answer throws with the server's `error`. */
async function get<T>(path: string, params: Record<string, string> = {}): Promise<T> {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== ''));
  const res = await fetch(`${path}${q.size ? `?${q}` : ''}`, { credentials: 'same-origin' });
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `${res.status}`);
  return body;
}

/** The team view's filters, sent with the overview and runs ('' values are left out). */
let filters: Filters = { user: '', host: '', branch: '' };
export const setFilters = (f: Filters): void => {
  filters = f;
};

/** Stats, totals, the time series and per-task figures; `step` '' lets the server choose. */
export const fetchOverview = (range: string, step: string): Promise<Overview> =>
  get<Overview>('/api/overview', { range, step, ...filters });

/** What each task holds now (the server passes over every entry's summary). */
export const fetchSizes = (): Promise<{ tasks: Held[] }> => get<{ tasks: Held[] }>('/api/sizes');

/** A task's latest runs from the audit log, newest first. */
export const fetchRuns = (task: string, limit: number): Promise<{ runs: Run[] }> =>
  get<{ runs: Run[] }>('/api/runs', { task, limit: String(limit), ...filters });

export const fetchEntries = (e: EntriesQuery): Promise<{ total: number; rows: EntryRow[] }> =>
  get<{ total: number; rows: EntryRow[] }>('/api/entries', {
    q: e.q,
    task: e.task,
    sort: e.sort,
    order: e.order,
    offset: String(e.offset),
    limit: String(e.limit),
  });

export const fetchEntry = (key: string): Promise<EntryDetail> => get<EntryDetail>('/api/entry', { key });

/** Follows the server's event stream: `change` whenever the cache changed. */
export function subscribe(on: { open(): void; lost(): void; change(): void }): void {
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => on.open());
  events.addEventListener('error', () => on.lost());
  events.addEventListener('change', () => on.change());
}

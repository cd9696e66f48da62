import type { CacheStats } from '../store/stats.js';
import { type Bucket, DURATION_BOUNDS_S } from '../store/timeseries.js';

/*
 * The Prometheus text exposition format (version 0.0.4) of the cache: for GET /metrics and the
 * node_exporter textfile (`taskvault metrics`). Totals are the index's counters; their breakdown by
 * task, kind or reason comes from the time series. Counts from before the series existed (an index
 * older than this version) are reported under task="(unknown)", so every family still adds up to
 * `taskvault stats`.
 */

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const UNKNOWN = '(unknown)';

const escapeLabel = (v: string): string =>
  v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labels = (l: Record<string, string>): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};
/** Integers as integers, the rest with enough digits; never exponent-free garbage like NaN. */
const num = (n: number): string => (Number.isFinite(n) ? String(Math.round(n * 1e6) / 1e6) : '0');

class Exposition {
  private readonly lines: string[] = [];
  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    return this;
  }
  sample(name: string, l: Record<string, string>, value: number): this {
    this.lines.push(`${name}${labels(l)} ${num(value)}`);
    return this;
  }
  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** Per-key values plus the remainder (counter total minus their sum) under `UNKNOWN`, if any. */
function withRemainder(values: Array<[string, number]>, total: number): Array<[string, number]> {
  const sum = values.reduce((n, [, v]) => n + v, 0);
  const out = values.filter(([, v]) => v > 0);
  if (total - sum > 0) out.push([UNKNOWN, total - sum]);
  return out;
}

export function renderMetrics(stats: CacheStats, history: Bucket): string {
  const e = new Exposition();
  const tasks = Object.entries(history.tasks).sort(([a], [b]) => a.localeCompare(b));

  e.family(
    'taskvault_hits_total',
    'counter',
    'Cache hits, by task and where the entry came from (local or remote).',
  );
  const local = withRemainder(
    tasks.map(([t, x]) => [t, x.hits - x.remoteHits]),
    stats.hits - stats.remoteHits,
  );
  const remote = withRemainder(
    tasks.map(([t, x]) => [t, x.remoteHits]),
    stats.remoteHits,
  );
  for (const [task, n] of local) e.sample('taskvault_hits_total', { task, source: 'local' }, n);
  for (const [task, n] of remote) e.sample('taskvault_hits_total', { task, source: 'remote' }, n);
  if (local.length + remote.length === 0)
    e.sample('taskvault_hits_total', { task: UNKNOWN, source: 'local' }, 0);

  e.family('taskvault_misses_total', 'counter', 'Cache misses (the command ran), by task.');
  const misses = withRemainder(
    tasks.map(([t, x]) => [t, x.misses]),
    stats.misses,
  );
  for (const [task, n] of misses) e.sample('taskvault_misses_total', { task }, n);
  if (misses.length === 0) e.sample('taskvault_misses_total', { task: UNKNOWN }, 0);

  e.family(
    'taskvault_errors_total',
    'counter',
    'Cache errors (corrupt blobs, index or remote failures), by where they happened.',
  );
  const kinds = Object.entries(history.errorKinds).sort(([a], [b]) => a.localeCompare(b));
  for (const [kind, n] of kinds) e.sample('taskvault_errors_total', { kind }, n);
  if (kinds.length === 0) e.sample('taskvault_errors_total', { kind: 'run' }, 0);

  e.family(
    'taskvault_time_saved_seconds_total',
    'counter',
    'Time saved by hits (original run time minus restore time), by task.',
  );
  const saved = withRemainder(
    tasks.map(([t, x]) => [t, x.savedMs]),
    stats.savedMs,
  );
  for (const [task, ms] of saved) e.sample('taskvault_time_saved_seconds_total', { task }, ms / 1000);
  if (saved.length === 0) e.sample('taskvault_time_saved_seconds_total', { task: UNKNOWN }, 0);

  e.family(
    'taskvault_run_duration_seconds',
    'histogram',
    'Duration of the commands whose results were saved (misses).',
  );
  let cumulative = 0;
  DURATION_BOUNDS_S.forEach((bound, i) => {
    cumulative += history.durations[i] ?? 0;
    e.sample('taskvault_run_duration_seconds_bucket', { le: String(bound) }, cumulative);
  });
  cumulative += history.durations[DURATION_BOUNDS_S.length] ?? 0;
  e.sample('taskvault_run_duration_seconds_bucket', { le: '+Inf' }, cumulative);
  e.sample('taskvault_run_duration_seconds_sum', {}, history.durationMs / 1000);
  e.sample('taskvault_run_duration_seconds_count', {}, cumulative);

  e.family('taskvault_cache_size_bytes', 'gauge', 'Bytes of the distinct blobs the entries reference.');
  e.sample('taskvault_cache_size_bytes', {}, stats.totalBytes);
  e.family('taskvault_cache_limit_bytes', 'gauge', 'The configured limit of the local cache (maxSizeGb).');
  e.sample('taskvault_cache_limit_bytes', {}, stats.limitBytes);
  e.family('taskvault_entries', 'gauge', 'Entries in the local cache.');
  e.sample('taskvault_entries', {}, stats.entries);

  e.family(
    'taskvault_evictions_total',
    'counter',
    'Entries removed from the cache, by reason (ttl, lru, size, manual, removed).',
  );
  const reasons = Object.entries(history.evictReasons).sort(([a], [b]) => a.localeCompare(b));
  for (const [reason, n] of reasons) e.sample('taskvault_evictions_total', { reason }, n);
  if (reasons.length === 0) e.sample('taskvault_evictions_total', { reason: 'lru' }, 0);

  e.family(
    'taskvault_remote_bytes_total',
    'counter',
    'Bytes moved to and from the team cache (entries pulled, blobs pushed).',
  );
  e.sample('taskvault_remote_bytes_total', { direction: 'down' }, history.remoteDown);
  e.sample('taskvault_remote_bytes_total', { direction: 'up' }, history.remoteUp);
  return e.text();
}

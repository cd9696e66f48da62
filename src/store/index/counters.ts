import { chart, taskOf } from './chart.js';
import type { IndexDbs } from './dbs.js';
import { background } from './writes.js';

/*
 * Cache-wide counters, per-entry hit counts and pending misses. All best-effort: a write that
 * fails (disk full) costs a count, never the run.
 */

export interface Counters {
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
}

export function readCounters(dbs: IndexDbs): Counters {
  return {
    hits: dbs.counters.get('hits') ?? 0,
    remoteHits: dbs.counters.get('remoteHits') ?? 0,
    misses: dbs.counters.get('misses') ?? 0,
    savedMs: dbs.counters.get('savedMs') ?? 0,
  };
}

/** Inside a write transaction: adds `by` to a counter. */
function bump(dbs: IndexDbs, name: keyof Counters, by: number): void {
  background(dbs.counters.put(name, (dbs.counters.get(name) ?? 0) + by));
}

/** Adds to a counter; `task` (the run's task name, '' if none) books a miss in the time series. */
export function count(dbs: IndexDbs, name: keyof Counters, by: number, task?: string): void {
  background(
    dbs.env.transaction(() => {
      bump(dbs, name, by);
      if (name === 'misses' && task !== undefined)
        for (let i = 0; i < by; i++) chart(dbs, Date.now(), { kind: 'miss', task });
    }),
  );
}

/**
 * A served hit, booked in one write transaction (the hit path pays one commit): the entry's last
 * access and hit count, and the cache-wide counters.
 */
export function recordHit(
  dbs: IndexDbs,
  key: string,
  o: { now: number; savedMs: number; remote?: boolean },
): void {
  background(
    dbs.env.transaction(() => {
      background(dbs.access.put(key, o.now));
      background(dbs.hits.put(key, (dbs.hits.get(key) ?? 0) + 1));
      bump(dbs, 'hits', 1);
      if (o.remote) bump(dbs, 'remoteHits', 1);
      bump(dbs, 'savedMs', Math.max(0, Math.round(o.savedMs)));
      chart(dbs, o.now, { kind: 'hit', task: taskOf(dbs, key), savedMs: o.savedMs, remote: !!o.remote });
    }),
  );
}

/**
 * When `key` last missed, if within `windowMs` of `now`; forgets it, and every miss older than the
 * window (when `forget`), so misses never followed by a save do not pile up.
 */
export function takeMiss(
  dbs: IndexDbs,
  key: string,
  now: number,
  windowMs: number,
  forget: boolean,
): number | undefined {
  const at = dbs.pending.get(key);
  // Most saves follow no recorded miss: no write transaction for them.
  if (forget && (at !== undefined || hasAny(dbs.pending)))
    background(
      dbs.env.transaction(() => {
        background(dbs.pending.remove(key));
        for (const { key: k, value } of dbs.pending.getRange())
          if (now - value >= windowMs) background(dbs.pending.remove(k));
      }),
    );
  return at !== undefined && now - at >= 0 && now - at < windowMs ? at : undefined;
}

function hasAny(db: IndexDbs['pending']): boolean {
  for (const _ of db.getKeys({ limit: 1 })) return true;
  return false;
}

import { HOUR_MS } from '../store/timeseries.js';

/*
 * The dashboard API's query parameters, checked before anything is read: a malformed one gets a 400
 * naming it, never a crash or a silently different answer.
 */

export class BadQuery extends Error {}

/** An answer other than 200 or 400 (404, 503), with its one line. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Params = URLSearchParams;

/** Rejects parameters the route does not know (`token` is every route's). */
export function only(params: Params, known: string[]): void {
  for (const name of new Set(params.keys())) {
    if (name === 'token' || known.includes(name)) continue;
    throw new BadQuery(
      `unknown query parameter '${name}'${known.length ? ` (known: ${known.join(', ')})` : ' (this path takes none)'}`,
    );
  }
  for (const name of known)
    if (params.getAll(name).length > 1)
      throw new BadQuery(`query parameter '${name}' is given more than once`);
}

export function choice<T extends string>(
  params: Params,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const v = params.get(name);
  if (v === null) return fallback;
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new BadQuery(`${name} must be one of ${allowed.join(', ')} (got ${JSON.stringify(v.slice(0, 40))})`);
}

export function integer(
  params: Params,
  name: string,
  o: { min: number; max: number; fallback: number },
): number {
  const v = params.get(name);
  if (v === null) return o.fallback;
  if (!/^\d{1,9}$/.test(v) || Number(v) < o.min || Number(v) > o.max)
    throw new BadQuery(
      `${name} must be a whole number from ${o.min} to ${o.max} (got ${JSON.stringify(v.slice(0, 40))})`,
    );
  return Number(v);
}

export function text(params: Params, name: string, o: { max: number; required?: boolean }): string {
  const v = params.get(name);
  if (v === null) {
    if (o.required) throw new BadQuery(`query parameter '${name}' is required`);
    return '';
  }
  if (v.length > o.max) throw new BadQuery(`${name} is longer than ${o.max} characters`);
  return v;
}

export function key(params: Params): string {
  const v = text(params, 'key', { max: 128, required: true });
  if (!/^[0-9a-f]{16,128}$/.test(v))
    throw new BadQuery(`key must be an entry key (hex digits), got ${JSON.stringify(v.slice(0, 40))}`);
  return v;
}

export const RANGES = { '24h': 24, '7d': 7 * 24, '30d': 30 * 24, '90d': 90 * 24 } as const;
export type RangeName = keyof typeof RANGES;

/** `range` (24h, 7d, 30d, 90d) and `step` (hour, day) as a time span ending now. */
export function span(params: Params, now: number): { from: number; to: number; step: 'hour' | 'day' } {
  const range = choice(params, 'range', Object.keys(RANGES) as RangeName[], '7d');
  const step = choice(
    params,
    'step',
    ['hour', 'day'] as const,
    range === '24h' || range === '7d' ? 'hour' : 'day',
  );
  return { from: now - RANGES[range] * HOUR_MS + HOUR_MS, to: now, step };
}

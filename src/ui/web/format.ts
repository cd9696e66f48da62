/* How the page writes sizes, durations, times and money. */

/** Decimal units, as `taskvault stats` prints them: 1.50 MB. */
export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)}s`;
  const m = s / 60;
  if (m < 60) return `${Math.floor(m)}m ${Math.round(s % 60)}s`;
  const h = m / 60;
  if (h < 48) return `${Math.floor(h)}h ${Math.round(m % 60)}m`;
  return `${(h / 24).toFixed(1)}d`;
}

/** A timestamp in the browser's locale and time zone. */
export const when = (t: number): string => new Date(t).toLocaleString();

/** An amount in the configured currency (from the overview), with more digits for tiny amounts. */
export function money(n: number, currency: string): string {
  try {
    return new Intl.NumberFormat(undefined, {
      style: 'currency',
      currency,
      maximumFractionDigits: n > 0 && n < 0.01 ? 4 : n < 10 ? 2 : 0,
    }).format(n);
  } catch {
    // Not a currency code Intl knows (the config's is free text): the code and the number.
    return `${currency} ${n.toFixed(2)}`;
  }
}

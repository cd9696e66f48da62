/*
 * The figures at the top of the page: the cache's all-time stats as KPI tiles, and one line of what
 * the chosen range saved. Each figure carries its raw number in data-value (the tests read it).
 */
import type { Overview } from './api.js';
import { $, el } from './dom.js';
import { bytes, duration, money } from './format.js';

export function kpi(name: string, label: string, value: string, raw: number | null, note = ''): HTMLElement {
  const v = el(
    'div',
    { class: 'value', 'data-stat': name, 'data-value': raw === null ? '' : String(raw) },
    value,
  );
  return el(
    'div',
    { class: 'kpi' },
    el('div', { class: 'label' }, label),
    v,
    el('div', { class: 'note' }, note),
  );
}

const RANGE_LABELS: Record<string, string> = {
  '24h': 'in the last 24 hours',
  '7d': 'in the last 7 days',
  '30d': 'in the last 30 days',
  '90d': 'in the last 90 days',
};

/** The cache's all-time figures as tiles. */
export function renderKpis(o: Overview): void {
  const s = o.stats;
  $('kpis').replaceChildren(
    kpi('entries', 'Entries', s.entries.toLocaleString(), s.entries),
    kpi(
      'totalBytes',
      'Size',
      bytes(s.totalBytes),
      s.totalBytes,
      `of ${bytes(s.limitBytes)} (${s.usagePercent.toFixed(1)}%)`,
    ),
    kpi('hits', 'Hits', s.hits.toLocaleString(), s.hits, `${s.remoteHits.toLocaleString()} remote`),
    kpi('misses', 'Misses', s.misses.toLocaleString(), s.misses),
    kpi('hitRate', 'Hit rate', s.hitRate === null ? '–' : `${(s.hitRate * 100).toFixed(1)}%`, s.hitRate),
    kpi('savedMs', 'Time saved', duration(s.savedMs), s.savedMs, 'all time'),
  );
  const hidden = $('kpis').querySelector('[data-stat=hits]')?.parentElement?.querySelector('.note');
  hidden?.setAttribute('data-stat', 'remoteHits');
  hidden?.setAttribute('data-value', String(s.remoteHits));
}

/** The savings line; `range` is the range selector's value (24h, 7d, ...), which names its period. */
export function renderSavings(o: Overview, range: string): void {
  const label = RANGE_LABELS[range];
  const hours = o.totals.savedMs / 3_600_000;
  $('savings').replaceChildren(
    'Saved ',
    el(
      'strong',
      { 'data-stat': 'cost', 'data-value': String(o.totals.cost) },
      money(o.totals.cost, o.currency),
    ),
    ` ${label}, ${hours < 10 ? hours.toFixed(1) : Math.round(hours).toLocaleString()} compute-hours · ${o.totals.hits.toLocaleString()} hits (${o.totals.remoteHits.toLocaleString()} remote), ${o.totals.misses.toLocaleString()} misses, ${o.totals.errors} errors`,
  );
}

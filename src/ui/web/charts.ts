/*
 * The four time-series charts (uPlot, bundled by scripts/bundle.mjs: nothing from a CDN). Each
 * overview replaces them; a window resize only resizes them.
 */
import uPlot from 'uplot';
import type { Overview } from './api.js';
import { $ } from './dom.js';
import { bytes, duration } from './format.js';

const HEIGHT = 220;
const charts: uPlot[] = [];

function chartWidth(id: string): number {
  return Math.max(300, ($(id).clientWidth || 600) - 4);
}

function draw(id: string, opts: Omit<uPlot.Options, 'width' | 'height'>, data: uPlot.AlignedData): uPlot {
  $(id).replaceChildren();
  return new uPlot({ width: chartWidth(id), height: HEIGHT, ...opts }, data, $(id));
}

export function renderCharts(o: Overview): void {
  for (const c of charts.splice(0)) c.destroy();
  const xs = o.series.map((p) => p.t / 1000);
  const step = uPlot.paths.stepped!({ align: 1 });
  const countAxis: uPlot.Axis = { size: 50 };
  charts.push(
    draw(
      'chart-runs',
      {
        series: [
          {},
          { label: 'local hits', stroke: '#2e9e5b', fill: 'rgba(46,158,91,.12)', paths: step },
          { label: 'remote hits', stroke: '#2f6fd6', paths: step },
          { label: 'misses', stroke: '#e0892b', paths: step },
          { label: 'errors', stroke: '#d64545', paths: step },
        ],
        axes: [{}, countAxis],
      },
      [
        xs,
        o.series.map((p) => p.hits - p.remoteHits),
        o.series.map((p) => p.remoteHits),
        o.series.map((p) => p.misses),
        o.series.map((p) => p.errors),
      ],
    ),
  );
  charts.push(
    draw(
      'chart-saved',
      {
        series: [
          {},
          {
            label: 'hit rate',
            stroke: '#2f6fd6',
            scale: '%',
            value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)}%`),
          },
          {
            label: 'time saved',
            stroke: '#2e9e5b',
            fill: 'rgba(46,158,91,.12)',
            scale: 'h',
            paths: step,
            value: (_u, v) => (v == null ? '–' : duration(v * 3_600_000)),
          },
        ],
        scales: { '%': { range: [0, 100] } },
        axes: [
          {},
          { scale: '%', size: 50, values: (_u, vals) => vals.map((v) => `${v}%`) },
          {
            scale: 'h',
            side: 1,
            size: 60,
            grid: { show: false },
            values: (_u, vals) => vals.map((v) => duration(v * 3_600_000)),
          },
        ],
      },
      [
        xs,
        o.series.map((p) => (p.hits + p.misses > 0 ? (p.hits / (p.hits + p.misses)) * 100 : null)),
        o.series.map((p) => p.savedMs / 3_600_000),
      ],
    ),
  );
  const byteAxis: uPlot.Axis = { size: 70, values: (_u, vals) => vals.map((v) => bytes(v)) };
  charts.push(
    draw(
      'chart-size',
      {
        series: [
          {},
          {
            label: 'size',
            stroke: '#2f6fd6',
            fill: 'rgba(47,111,214,.12)',
            points: { show: true, size: 5 },
            value: (_u, v) => (v == null ? '–' : bytes(v)),
          },
          { label: 'limit', stroke: '#d64545', dash: [6, 4], value: (_u, v) => (v == null ? '–' : bytes(v)) },
        ],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(max, 1)] } },
        axes: [{}, byteAxis],
      },
      [xs, o.series.map((p) => p.usage), o.series.map(() => o.stats.limitBytes)],
    ),
  );
  charts.push(
    draw(
      'chart-evict',
      {
        series: [
          {},
          { label: 'evicted entries', stroke: '#d64545', fill: 'rgba(214,69,69,.12)', paths: step },
        ],
        axes: [{}, countAxis],
      },
      [xs, o.series.map((p) => p.evictions)],
    ),
  );
  const reasons = Object.entries(o.evictReasons).map(([r, n]) => `${r} ${n}`);
  $('evict-reasons').textContent = reasons.length ? `(${reasons.join(', ')})` : '';
}

/** Fits the charts drawn to their boxes' new widths. */
export function resizeCharts(): void {
  for (const c of charts) c.setSize({ width: chartWidth(c.root.parentElement?.id ?? ''), height: HEIGHT });
}

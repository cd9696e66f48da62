/*
 * The dashboard page: fetches the read-only API of src/ui/server.ts, draws the charts with uPlot
 * (bundled by scripts/bundle.mjs, nothing from a CDN), and redraws when the server's event stream
 * says the cache changed: no reload.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';

interface Stats {
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
interface Point {
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
interface TaskRow {
  task: string;
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
  saves: number;
  cost: number;
}
interface Held {
  task: string;
  entries: number;
  bytes: number;
}
interface Overview {
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
}
interface Run {
  at: number;
  event: 'HIT' | 'MISS' | 'SAVE';
  hash: string;
  origin?: string;
  reason?: string[];
}
interface EntryRow {
  key: string;
  task: string;
  createdAt: number;
  lastAccess: number;
  bytes: number;
  ttlMs: number;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

function el(tag: string, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)}s`;
  const m = s / 60;
  if (m < 60) return `${Math.floor(m)}m ${Math.round(s % 60)}s`;
  const h = m / 60;
  if (h < 48) return `${Math.floor(h)}h ${Math.round(m % 60)}m`;
  return `${(h / 24).toFixed(1)}d`;
}

const when = (t: number): string => new Date(t).toLocaleString();
let currency = 'USD';
const money = (n: number): string => {
  try {
    return new Intl.NumberFormat(undefined, {
      style: 'currency',
      currency,
      maximumFractionDigits: n > 0 && n < 0.01 ? 4 : n < 10 ? 2 : 0,
    }).format(n);
  } catch {
    return `${currency} ${n.toFixed(2)}`;
  }
};

async function get<T>(path: string, params: Record<string, string> = {}): Promise<T> {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== ''));
  const res = await fetch(`${path}${q.size ? `?${q}` : ''}`, { credentials: 'same-origin' });
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `${res.status}`);
  return body;
}

// --- state --------------------------------------------------------------------------------------

const state = {
  task: '' as string,
  entries: { q: '', task: '', sort: 'access', order: 'desc', offset: 0, limit: 25 },
  entryKey: '' as string,
};
const charts: uPlot[] = [];

// --- KPIs ---------------------------------------------------------------------------------------

function kpi(name: string, label: string, value: string, raw: number | null, note = ''): HTMLElement {
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

function renderKpis(o: Overview): void {
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
  const label = {
    '24h': 'in the last 24 hours',
    '7d': 'in the last 7 days',
    '30d': 'in the last 30 days',
    '90d': 'in the last 90 days',
  }[$<HTMLSelectElement>('range').value];
  const hours = o.totals.savedMs / 3_600_000;
  $('savings').replaceChildren(
    'Saved ',
    el('strong', { 'data-stat': 'cost', 'data-value': String(o.totals.cost) }, money(o.totals.cost)),
    ` ${label}, ${hours < 10 ? hours.toFixed(1) : Math.round(hours).toLocaleString()} compute-hours · ${o.totals.hits.toLocaleString()} hits (${o.totals.remoteHits.toLocaleString()} remote), ${o.totals.misses.toLocaleString()} misses, ${o.totals.errors} errors`,
  );
}

// --- charts -------------------------------------------------------------------------------------

function chartWidth(id: string): number {
  return Math.max(300, ($(id).clientWidth || 600) - 4);
}

function draw(id: string, opts: Omit<uPlot.Options, 'width' | 'height'>, data: uPlot.AlignedData): uPlot {
  $(id).replaceChildren();
  return new uPlot({ width: chartWidth(id), height: 220, ...opts }, data, $(id));
}

function renderCharts(o: Overview): void {
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

// --- top tasks and runs -------------------------------------------------------------------------

function topTable<T extends { task: string }>(
  id: string,
  rows: T[],
  column: string,
  value: (t: T) => number,
  show: (t: T) => string,
): void {
  const top = rows
    .filter((t) => value(t) > 0)
    .sort((a, b) => value(b) - value(a))
    .slice(0, 8);
  const body = top.map((t) => {
    const tr = el(
      'tr',
      { class: 'clickable', 'data-task': t.task },
      el('td', {}, t.task),
      el('td', { class: 'num' }, show(t)),
    );
    tr.addEventListener('click', () => void showTask(t.task));
    return tr;
  });
  $(id).replaceChildren(
    el('tr', {}, el('th', {}, 'task'), el('th', { class: 'num' }, column)),
    ...(body.length
      ? body
      : [el('tr', {}, el('td', { colspan: '2', class: 'muted' }, 'nothing in this range'))]),
  );
}

function renderTops(o: Overview): void {
  topTable(
    'top-saved',
    o.tasks,
    'saved',
    (t) => t.savedMs,
    (t) => `${duration(t.savedMs)}${t.cost > 0 ? ` · ${money(t.cost)}` : ''}`,
  );
  topTable(
    'top-misses',
    o.tasks,
    'misses',
    (t) => t.misses,
    (t) => t.misses.toLocaleString(),
  );
}

/** What each task holds now: asked for after the first paint (a pass over every entry's summary). */
async function loadSizes(): Promise<void> {
  const { tasks } = await get<{ tasks: Held[] }>('/api/sizes');
  topTable(
    'top-size',
    tasks,
    'size',
    (t) => t.bytes,
    (t) => `${bytes(t.bytes)} · ${t.entries}`,
  );
  const filter = $<HTMLSelectElement>('task-filter');
  const names = tasks.map((t) => t.task).sort();
  const current = filter.value;
  filter.replaceChildren(
    el('option', { value: '' }, 'all tasks'),
    ...names.map((n) => el('option', { value: n }, n)),
  );
  filter.value = names.includes(current) ? current : '';
}

async function showTask(task: string): Promise<void> {
  state.task = task;
  // The audit log names an anonymous run by its command; the series groups them.
  const r = await get<{ runs: Run[] }>('/api/runs', { task, limit: '20' });
  $('task-name').textContent = task;
  $('task-panel').hidden = false;
  $('runs').replaceChildren(
    el(
      'tr',
      {},
      el('th', {}, 'when'),
      el('th', {}, 'outcome'),
      el('th', {}, 'key'),
      el('th', {}, 'why it missed'),
    ),
    ...r.runs.map((run) =>
      el(
        'tr',
        { 'data-event': run.event },
        el('td', {}, when(run.at)),
        el(
          'td',
          {},
          el(
            'span',
            { class: `tag ${run.event}` },
            run.event === 'HIT' && run.origin === 'remote' ? 'HIT (remote)' : run.event,
          ),
        ),
        el('td', { class: 'mono' }, run.hash),
        el('td', {}, run.reason ? el('pre', { class: 'reason' }, run.reason.join('\n')) : ''),
      ),
    ),
  );
}

// --- entries ------------------------------------------------------------------------------------

async function loadEntries(): Promise<void> {
  const e = state.entries;
  const r = await get<{ total: number; rows: EntryRow[] }>('/api/entries', {
    q: e.q,
    task: e.task,
    sort: e.sort,
    order: e.order,
    offset: String(e.offset),
    limit: String(e.limit),
  });
  if (e.task === '') $('entry-count').textContent = '';
  $('entry-count').textContent = `(${r.total.toLocaleString()}${e.q || e.task ? ' matching' : ''})`;
  $('page').textContent = r.total ? `${e.offset + 1}–${Math.min(e.offset + e.limit, r.total)}` : '0';
  const head = (label: string, sort: string, cls = '') => {
    const th = el(
      'th',
      { class: `sortable ${cls}` },
      label + (e.sort === sort ? (e.order === 'asc' ? ' ▲' : ' ▼') : ''),
    );
    th.addEventListener('click', () => {
      e.order = e.sort === sort && e.order === 'desc' ? 'asc' : 'desc';
      e.sort = sort;
      e.offset = 0;
      void loadEntries();
    });
    return th;
  };
  $('entries').replaceChildren(
    el(
      'tr',
      {},
      head('key', 'key'),
      head('task', 'task'),
      head('created', 'created'),
      head('last used', 'access'),
      head('size', 'bytes', 'num'),
    ),
    ...r.rows.map((row) => {
      const tr = el(
        'tr',
        { class: 'clickable', 'data-key': row.key },
        el('td', { class: 'mono' }, row.key.slice(0, 12)),
        el('td', {}, row.task || '(anonymous)'),
        el('td', {}, when(row.createdAt)),
        el('td', {}, when(row.lastAccess)),
        el('td', { class: 'num' }, bytes(row.bytes)),
      );
      tr.addEventListener('click', () => void showEntry(row.key));
      return tr;
    }),
  );
  $<HTMLButtonElement>('prev').disabled = e.offset === 0;
  $<HTMLButtonElement>('next').disabled = e.offset + e.limit >= r.total;
}

interface EntryDetail {
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

async function showEntry(key: string): Promise<void> {
  state.entryKey = key;
  const d = await get<EntryDetail>('/api/entry', { key });
  const p = d.provenance;
  const rows: Array<[string, string]> = [
    ['task', d.task || '(anonymous)'],
    ['key', d.key],
    ['created', when(d.createdAt)],
    ['last used', d.lastAccess ? when(d.lastAccess) : '–'],
    ['hits', String(d.hits)],
    ['size', bytes(d.bytes)],
    ['original run', `${duration(d.durationMs)}, exit code ${d.exitCode}`],
    ['expires', when(d.createdAt + d.ttlMs)],
    ['cwd', d.cwd || '.'],
    ['origin', p.origin],
    ['host', p.host],
    ['user', p.user],
    ['git commit', p.gitCommit ?? '–'],
    ['taskvault', p.version],
    [
      'outputs',
      `${d.outputCount}: ${d.outputs
        .map((o) => o.path)
        .slice(0, 20)
        .join(', ')}${d.outputCount > 20 ? ', …' : ''}`,
    ],
  ];
  $('entry-key').textContent = d.key.slice(0, 12);
  $('entry-detail').replaceChildren(
    ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-field': k }, v)]),
  );
  $('entry-panel').hidden = false;
}

// --- loading and live updates -------------------------------------------------------------------

let loading: Promise<void> | undefined;
let again = false;

async function refresh(): Promise<void> {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    try {
      const o = await get<Overview>('/api/overview', {
        range: $<HTMLSelectElement>('range').value,
        step: $<HTMLSelectElement>('step').value,
      });
      currency = o.currency;
      renderKpis(o);
      renderCharts(o);
      renderTops(o);
      document.body.dataset.version = o.version;
      if (!document.body.dataset.ready) {
        document.body.dataset.ready = '1';
        (window as unknown as { tvFirstRender: number }).tvFirstRender = performance.now();
      }
      await Promise.all([loadSizes(), loadEntries(), state.task ? showTask(state.task) : undefined]);
    } catch (e) {
      $('savings').textContent = `Could not load: ${(e as Error).message}`;
    } finally {
      loading = undefined;
      if (again) {
        again = false;
        void refresh();
      }
    }
  })();
  return loading;
}

function listen(): void {
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => $('live').classList.add('on'));
  events.addEventListener('error', () => $('live').classList.remove('on'));
  events.addEventListener('change', () => void refresh());
}

function start(): void {
  // ?range=30d&step=day: a view can be linked to.
  const asked = new URLSearchParams(location.search);
  for (const id of ['range', 'step']) {
    const select = $<HTMLSelectElement>(id);
    const want = asked.get(id);
    if (want !== null && [...select.options].some((o) => o.value === want)) select.value = want;
  }
  $('range').addEventListener('change', () => void refresh());
  $('step').addEventListener('change', () => void refresh());
  let typing: number | undefined;
  $('search').addEventListener('input', () => {
    clearTimeout(typing);
    typing = window.setTimeout(() => {
      state.entries.q = $<HTMLInputElement>('search').value.trim();
      state.entries.offset = 0;
      void loadEntries();
    }, 200);
  });
  $('task-filter').addEventListener('change', () => {
    state.entries.task = $<HTMLSelectElement>('task-filter').value;
    state.entries.offset = 0;
    void loadEntries();
  });
  $('prev').addEventListener('click', () => {
    state.entries.offset = Math.max(0, state.entries.offset - state.entries.limit);
    void loadEntries();
  });
  $('next').addEventListener('click', () => {
    state.entries.offset += state.entries.limit;
    void loadEntries();
  });
  $('entry-close').addEventListener('click', () => {
    $('entry-panel').hidden = true;
  });
  let resizing: number | undefined;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = window.setTimeout(() => {
      for (const c of charts) c.setSize({ width: chartWidth(c.root.parentElement?.id ?? ''), height: 220 });
    }, 150);
  });
  void refresh();
  listen();
}

start();

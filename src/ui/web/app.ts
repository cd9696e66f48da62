/*
 * The dashboard page's wiring: fetches the read-only API of src/ui/server.ts (api.ts), hands what
 * it gets to the parts that draw it (kpis, charts, tasks, entries), binds the page's controls to
 * them, and redraws when the server's event stream says the cache changed: no reload. Data flows
 * one way: from the API, through this module, into the parts; no part imports this one.
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { fetchOverview, fetchSizes, setFilters, subscribe } from './api.js';
import { renderCharts, resizeCharts } from './charts.js';
import { $ } from './dom.js';
import { filterByTask, loadEntries, nextPage, previousPage, search, setTaskChoices } from './entries.js';
import { hideEntry } from './entry-detail.js';
import { renderKpis, renderSavings } from './kpis.js';
import { reloadTask, renderTopSize, renderTops } from './tasks.js';
import { chosenFilters, presetFilter, renderTeam } from './team.js';

/** What each task holds now: asked for after the first paint (a pass over every entry's summary). */
async function loadSizes(): Promise<void> {
  const { tasks } = await fetchSizes();
  renderTopSize(tasks);
  setTaskChoices(tasks.map((t) => t.task));
}

let loading: Promise<void> | undefined;
let again = false;

/** Redraws everything; a call while one runs makes one more run after it, not a second at once. */
async function refresh(): Promise<void> {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    try {
      setFilters(chosenFilters());
      const o = await fetchOverview($<HTMLSelectElement>('range').value, $<HTMLSelectElement>('step').value);
      $('error').hidden = true;
      if (o.team) renderTeam(o, o.team);
      else renderKpis(o);
      renderSavings(o, $<HTMLSelectElement>('range').value);
      renderCharts(o);
      renderTops(o);
      document.body.dataset.version = o.version;
      if (!document.body.dataset.ready) {
        document.body.dataset.ready = '1';
        (window as unknown as { tvFirstRender: number }).tvFirstRender = performance.now();
      }
      // The team view has no entries of this machine to list.
      await Promise.all(o.team ? [reloadTask()] : [loadSizes(), loadEntries(), reloadTask()]);
    } catch (e) {
      // Shown until an answer comes (the team index back up, say): the last figures stay below it.
      $('error').textContent = `Could not load: ${(e as Error).message}`;
      $('error').hidden = false;
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

function start(): void {
  // ?range=30d&step=day: a view can be linked to.
  const asked = new URLSearchParams(location.search);
  for (const id of ['range', 'step']) {
    const select = $<HTMLSelectElement>(id);
    const want = asked.get(id);
    if (want !== null && [...select.options].some((o) => o.value === want)) select.value = want;
  }
  // ?user=alice&host=ci-1&branch=main (the team view) likewise.
  for (const name of ['user', 'host', 'branch'] as const) {
    const want = asked.get(name);
    if (want) presetFilter(name, want);
  }
  for (const id of ['range', 'step', 'f-user', 'f-host', 'f-branch'])
    $(id).addEventListener('change', () => void refresh());
  let typing: number | undefined;
  $('search').addEventListener('input', () => {
    clearTimeout(typing);
    typing = window.setTimeout(() => void search($<HTMLInputElement>('search').value.trim()), 200);
  });
  $('task-filter').addEventListener(
    'change',
    () => void filterByTask($<HTMLSelectElement>('task-filter').value),
  );
  $('prev').addEventListener('click', () => void previousPage());
  $('next').addEventListener('click', () => void nextPage());
  $('entry-close').addEventListener('click', hideEntry);
  let resizing: number | undefined;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = window.setTimeout(resizeCharts, 150);
  });
  void refresh();
  subscribe({
    open: () => $('live').classList.add('on'),
    lost: () => $('live').classList.remove('on'),
    change: () => void refresh(),
  });
}

start();

/*
 * The entries table: a page of the cache's entries, searched, filtered by task and sorted on the
 * server. It owns its query; the page's controls change it through the functions below.
 */
import { type EntriesQuery, fetchEntries } from './api.js';
import { $, el } from './dom.js';
import { showEntry } from './entry-detail.js';
import { bytes, when } from './format.js';

const query: EntriesQuery = { q: '', task: '', sort: 'access', order: 'desc', offset: 0, limit: 25 };

/** Fetches and shows the query's page. */
export async function loadEntries(): Promise<void> {
  const e = query;
  const r = await fetchEntries(e);
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

/** The task filter's choices: the tasks the cache holds; a chosen task no longer held is let go. */
export function setTaskChoices(tasks: string[]): void {
  const filter = $<HTMLSelectElement>('task-filter');
  const names = [...tasks].sort();
  const current = filter.value;
  filter.replaceChildren(
    el('option', { value: '' }, 'all tasks'),
    ...names.map((n) => el('option', { value: n }, n)),
  );
  filter.value = names.includes(current) ? current : '';
}

export function search(q: string): Promise<void> {
  query.q = q;
  query.offset = 0;
  return loadEntries();
}

/** Only `task`'s entries; '' for all. */
export function filterByTask(task: string): Promise<void> {
  query.task = task;
  query.offset = 0;
  return loadEntries();
}

export function previousPage(): Promise<void> {
  query.offset = Math.max(0, query.offset - query.limit);
  return loadEntries();
}

export function nextPage(): Promise<void> {
  query.offset += query.limit;
  return loadEntries();
}

/*
 * The per-task tables: the top tasks by time saved, by misses and by size, and, for the task
 * clicked in any of them, its recent runs with why each miss missed.
 */
import { fetchRuns, type Held, type Overview } from './api.js';
import { $, el } from './dom.js';
import { bytes, duration, money, when } from './format.js';

/** The task whose runs are shown; '' before one is clicked. */
let shownTask = '';

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

/** The tops by time saved and by misses, over the overview's range. */
export function renderTops(o: Overview): void {
  topTable(
    'top-saved',
    o.tasks,
    'saved',
    (t) => t.savedMs,
    (t) => `${duration(t.savedMs)}${t.cost > 0 ? ` · ${money(t.cost, o.currency)}` : ''}`,
  );
  topTable(
    'top-misses',
    o.tasks,
    'misses',
    (t) => t.misses,
    (t) => t.misses.toLocaleString(),
  );
}

/** The top by what each task holds now. */
export function renderTopSize(tasks: Held[]): void {
  topTable(
    'top-size',
    tasks,
    'size',
    (t) => t.bytes,
    (t) => `${bytes(t.bytes)} · ${t.entries}`,
  );
}

async function showTask(task: string): Promise<void> {
  shownTask = task;
  // The audit log names an anonymous run by its command; the series groups them.
  const r = await fetchRuns(task, 20);
  $('task-name').textContent = task;
  $('task-panel').hidden = false;
  // The team view's runs say who ran them, where; the local view's say why each miss missed.
  const team = r.runs.some((run) => run.host !== undefined);
  $('runs').replaceChildren(
    el(
      'tr',
      {},
      el('th', {}, 'when'),
      el('th', {}, 'outcome'),
      el('th', {}, 'key'),
      el('th', {}, team ? 'who, where' : 'why it missed'),
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
        el(
          'td',
          {},
          team
            ? `${run.user}@${run.host}${run.branch ? ` · ${run.branch}` : ''}`
            : run.reason
              ? el('pre', { class: 'reason' }, run.reason.join('\n'))
              : '',
        ),
      ),
    ),
  );
}

/** Fetches the shown task's runs again, if a task is shown. */
export async function reloadTask(): Promise<void> {
  if (shownTask) await showTask(shownTask);
}

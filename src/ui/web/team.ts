/*
 * The team view's own parts (`taskvault ui --team`): the tiles for the range's figures across
 * machines, the user / host / branch filters with what the team index offers, and the newest runs
 * of every machine. The charts and top tasks are the local view's, fed the same shapes.
 */
import type { Filters, Overview, Run, TeamView } from './api.js';
import { $, el } from './dom.js';
import { bytes, duration, when } from './format.js';
import { kpi } from './kpis.js';

const FILTER_IDS: Record<keyof Filters, string> = { user: 'f-user', host: 'f-host', branch: 'f-branch' };

/** What the filter selects say now ('' for everyone). */
export function chosenFilters(): Filters {
  return {
    user: $<HTMLSelectElement>(FILTER_IDS.user).value,
    host: $<HTMLSelectElement>(FILTER_IDS.host).value,
    branch: $<HTMLSelectElement>(FILTER_IDS.branch).value,
  };
}

/** Picks a filter (from a link's ?user=...), adding it as a choice until the server offers it. */
export function presetFilter(name: keyof Filters, value: string): void {
  const select = $<HTMLSelectElement>(FILTER_IDS[name]);
  if (![...select.options].some((o) => o.value === value)) select.append(el('option', { value }, value));
  select.value = value;
}

/** Refills a filter's choices, keeping what is chosen even if the range no longer has it. */
function fillChoices(name: keyof Filters, values: string[]): void {
  const select = $<HTMLSelectElement>(FILTER_IDS[name]);
  const chosen = select.value;
  const all = chosen && !values.includes(chosen) ? [...values, chosen] : values;
  select.replaceChildren(select.options[0]!, ...all.map((v) => el('option', { value: v }, v)));
  select.value = chosen;
}

function renderTiles(o: Overview, team: TeamView): void {
  const s = o.stats;
  const runs = o.totals.hits + o.totals.misses + o.totals.errors;
  $('kpis').replaceChildren(
    kpi('runs', 'Runs', runs.toLocaleString(), runs, `${team.choices.hosts.length} host(s)`),
    kpi('hits', 'Hits', s.hits.toLocaleString(), s.hits, `${s.remoteHits.toLocaleString()} remote`),
    kpi('misses', 'Misses', s.misses.toLocaleString(), s.misses),
    kpi('hitRate', 'Hit rate', s.hitRate === null ? '–' : `${(s.hitRate * 100).toFixed(1)}%`, s.hitRate),
    kpi('savedMs', 'Time saved', duration(s.savedMs), s.savedMs, 'in this range'),
    kpi('entries', 'Shared entries', s.entries.toLocaleString(), s.entries, bytes(s.totalBytes)),
  );
}

function runsTable(runs: Run[]): void {
  $('team-runs').replaceChildren(
    el(
      'tr',
      {},
      ...['when', 'task', 'outcome', 'user', 'host', 'branch', 'key', 'took', 'saved'].map((h) =>
        el('th', {}, h),
      ),
    ),
    ...(runs.length
      ? runs.map((r) =>
          el(
            'tr',
            { 'data-event': r.event, 'data-user': r.user ?? '', 'data-host': r.host ?? '' },
            el('td', {}, when(r.at)),
            el('td', {}, r.task ?? ''),
            el(
              'td',
              {},
              el(
                'span',
                { class: `tag ${r.event}` },
                r.event === 'HIT' && r.origin === 'remote' ? 'HIT (remote)' : r.event,
              ),
            ),
            el('td', {}, r.user ?? ''),
            el('td', {}, r.host ?? ''),
            el('td', {}, r.branch ?? '–'),
            el('td', { class: 'mono' }, r.hash),
            el('td', { class: 'num' }, duration(r.durationMs ?? 0)),
            el('td', { class: 'num' }, r.event === 'HIT' ? duration(r.savedMs ?? 0) : ''),
          ),
        )
      : [el('tr', {}, el('td', { colspan: '9', class: 'muted' }, 'no runs in this range'))]),
  );
}

/** Everything only the team view has. */
export function renderTeam(o: Overview, team: TeamView): void {
  document.body.dataset.team = '1';
  $('sub').textContent = 'team dashboard';
  document.title = 'TaskVault team dashboard';
  fillChoices('user', team.choices.users);
  fillChoices('host', team.choices.hosts);
  fillChoices('branch', team.choices.branches);
  renderTiles(o, team);
  runsTable(team.runs);
}

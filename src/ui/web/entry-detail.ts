/* The panel of one cache entry: what ran, when, where, and what it stored. */
import { fetchEntry } from './api.js';
import { $, el } from './dom.js';
import { bytes, duration, when } from './format.js';

export async function showEntry(key: string): Promise<void> {
  const d = await fetchEntry(key);
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

export function hideEntry(): void {
  $('entry-panel').hidden = true;
}

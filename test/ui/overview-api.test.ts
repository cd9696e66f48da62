/**
 * GET /api/overview over real CLI runs: every range, by hour and by day (day rollups plus today's
 * hours), shows the same totals, and they are those of `taskvault stats --json`; a run while no
 * page is open changes the next answer and /metrics (the server looks at the cache again itself,
 * and an overview is reused only while the cache is unchanged).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../support/helpers.js';
import { project, runGen } from '../support/remote-project.js';
import { startUi, type UiServer } from '../support/ui-server.js';

const test = suite('taskvault ui overview API');
let dir = '';
let ui: UiServer | undefined;

interface Overview {
  totals: { hits: number; misses: number; savedMs: number };
  series: Array<{ t: number; hits: number; misses: number; savedMs: number }>;
  tasks: Array<{ task: string; hits: number; misses: number }>;
}

const overview = async (query: string): Promise<Overview> => {
  const r = await fetch(`${ui!.url}/api/overview?${query}`);
  assert.is(r.status, 200, query);
  return (await r.json()) as Overview;
};
const stats = async () =>
  JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out) as {
    hits: number;
    misses: number;
    savedMs: number;
  };

test.before(async () => {
  dir = project();
  assert.is((await runGen(dir, {})).code, 0);
  assert.match((await runGen(dir, {})).err, /taskvault: hit /);
  writeFileSync(join(dir, 'src/input.txt'), 'another input\n');
  assert.is((await runGen(dir, {})).code, 0);
  ui = await startUi(dir);
});

test.after(async () => {
  await ui?.stop();
});

test('every range and step adds up to taskvault stats', async () => {
  const s = await stats();
  assert.equal([s.hits, s.misses], [1, 2]);
  for (const range of ['24h', '7d', '30d', '90d'])
    for (const step of ['hour', 'day']) {
      const o = await overview(`range=${range}&step=${step}`);
      const at = `${range} by ${step}`;
      assert.equal(
        { hits: o.totals.hits, misses: o.totals.misses, savedMs: o.totals.savedMs },
        { hits: s.hits, misses: s.misses, savedMs: s.savedMs },
        at,
      );
      const summed = o.series.reduce((n, p) => n + p.hits + p.misses, 0);
      assert.is(summed, s.hits + s.misses, at);
      const gen = o.tasks.find((t) => t.task === 'gen')!;
      assert.equal([gen.hits, gen.misses], [s.hits, s.misses], at);
      // One point per hour or per UTC day, the last one holding now.
      const stepMs = step === 'day' ? 86_400_000 : 3_600_000;
      assert.ok(
        o.series.every((p, i) => i === 0 || p.t - o.series[i - 1]!.t === stepMs),
        at,
      );
      assert.ok(Date.now() - o.series.at(-1)!.t < stepMs, at);
    }
});

test('a run while no page is open shows in the next overview and /metrics', async () => {
  const before = await overview('range=30d&step=day');
  // A hit served from hot/: recorded in the hits journal, which the server must fold itself
  // (\`stats\` would fold it too, so it is asked only afterwards).
  assert.match((await runGen(dir, {})).err, /taskvault: hit /);
  const deadline = Date.now() + 3_000;
  let after = before;
  while (after.totals.hits === before.totals.hits && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    after = await overview('range=30d&step=day');
  }
  assert.is(after.totals.hits, before.totals.hits + 1);
  const metrics = await (await fetch(`${ui!.url}/metrics`)).text();
  const hits = metrics
    .split('\n')
    .filter((l) => l.startsWith('taskvault_hits_total{'))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const s = await stats();
  assert.is(after.totals.hits, s.hits);
  assert.is(hits, s.hits);
});

test.run();

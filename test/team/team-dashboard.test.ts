/**
 * `taskvault ui --team` in a real browser (Debian chromium) against a real PostgreSQL: two machines
 * (two cache dirs, two users, two hosts, two branches) record runs; the page shows both, its numbers
 * are what SQL and `audit --team` say, and a user filter narrows them to what SQL says for that user.
 * The API validates its filters (400), treats SQL in them as plain text, says 503 in one line when
 * the database is down, and a database at schema version 2 holding events is migrated on first use.
 */
import pg from 'pg';
import type { BrowserContext, Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { migrate, SCHEMA_VERSION, schemaVersion } from '../../src/store/team/schema.js';
import { launchChromium } from '../support/browser.js';
import { runCli, runProcess } from '../support/helpers.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { project, runGen } from '../support/remote-project.js';
import { freePort } from '../support/servers.js';
import { startUi, type UiServer } from '../support/ui-server.js';

const test = suite('team: ui --team, the team dashboard');
let db: Postgres;
let url = '';
let browser: BrowserContext | undefined;
let ui: UiServer | undefined;
let page: Page;
let machineA = '';
let machineB = '';

const ALICE = {
  TASKVAULT_TEAM_HOST: 'laptop-a',
  TASKVAULT_TEAM_USER: 'alice',
  TASKVAULT_TEAM_BRANCH: 'main',
};
const CI = {
  TASKVAULT_TEAM_HOST: 'ci-node-b',
  TASKVAULT_TEAM_USER: 'ci',
  TASKVAULT_TEAM_BRANCH: 'feature/x',
  CI: 'true',
};

let dbCount = 0;
async function freshDatabase(): Promise<string> {
  const name = `d${++dbCount}`;
  await db.query(`CREATE DATABASE ${name}`);
  return db.url().replace(/\/postgres$/, `/${name}`);
}

async function sql<T = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** The figures SQL gives for the events matching `where` (a fixed clause of this test). */
async function figures(where = 'true', params: unknown[] = []) {
  const [r] = await sql<Record<string, string>>(
    `SELECT count(*) AS runs, count(*) FILTER (WHERE outcome = 'hit') AS hits,
       count(*) FILTER (WHERE outcome = 'miss') AS misses,
       coalesce(sum(saved_ms) FILTER (WHERE outcome = 'hit'), 0) AS saved
     FROM taskvault_events WHERE ${where}`,
    params,
  );
  return {
    runs: Number(r!.runs),
    hits: Number(r!.hits),
    misses: Number(r!.misses),
    savedMs: Number(r!.saved),
  };
}

const shown = async (name: string) =>
  Number(await page.locator(`[data-stat=${name}]`).first().getAttribute('data-value'));

/** What the tests read of an /api/overview answer (or its error). */
interface Overview {
  error: string;
  totals: { hits: number; misses: number; savedMs: number };
  team: {
    choices: { users: string[]; branches: string[] };
    runs: Array<{ user: string; branch: string | null }>;
  };
}

const api = (u: UiServer, query: string) => fetch(`${u.url}/api/overview${query}`);
const json = async (r: Response): Promise<Overview> => (await r.json()) as Overview;

test.before(async () => {
  db = await startPostgres();
  url = await freshDatabase();
  const env = { TASKVAULT_TEAM_DATABASE: url };
  // Machine A (alice's laptop): a miss, then two hits. Machine B (a CI node): a miss and a hit.
  machineA = project();
  machineB = project();
  for (let i = 0; i < 3; i++) assert.is((await runGen(machineA, { ...env, ...ALICE })).code, 0);
  for (let i = 0; i < 2; i++) assert.is((await runGen(machineB, { ...env, ...CI })).code, 0);
  for (const [dir, who] of [
    [machineA, ALICE],
    [machineB, CI],
  ] as const) {
    const f = await runCli(['team', 'flush'], { cwd: dir, env: { ...env, ...who } });
    assert.is(f.code, 0, f.err);
  }
  ui = await startUi(machineA, ['--team'], env);
  browser = await launchChromium();
  page = await browser.newPage();
});

test.after(async () => {
  await browser?.close();
  await ui?.stop();
  await db?.stop();
});

test('the page shows both machines, with the numbers SQL and audit --team give', async () => {
  const all = await figures();
  assert.equal({ runs: all.runs, hits: all.hits, misses: all.misses }, { runs: 5, hits: 3, misses: 2 });
  await page.goto(`${ui!.url}/`);
  await page.waitForSelector('body[data-team][data-ready]');
  assert.is(await page.locator('#sub').textContent(), 'team dashboard');
  assert.is(await shown('runs'), all.runs);
  assert.is(await shown('hits'), all.hits);
  assert.is(await shown('misses'), all.misses);
  assert.is(await shown('savedMs'), all.savedMs);
  assert.is(await shown('hitRate'), all.hits / (all.hits + all.misses));
  // The same numbers as the audit lines of every machine.
  const audit = (await runCli(['audit', '--team'], { cwd: machineA, env: { TASKVAULT_TEAM_DATABASE: url } }))
    .out;
  assert.is(audit.split('\n').filter((l) => l.includes('] HIT ')).length, await shown('hits'));
  assert.is(audit.split('\n').filter((l) => l.includes('] MISS ')).length, await shown('misses'));
  // Recent runs of both machines, with user, host and branch.
  const rows = page.locator('#team-runs tr[data-event]');
  assert.is(await rows.count(), 5);
  assert.is(await page.locator('#team-runs tr[data-host=laptop-a]').count(), 3);
  assert.is(await page.locator('#team-runs tr[data-host=ci-node-b]').count(), 2);
  assert.match((await page.locator('#team-runs').textContent()) ?? '', /feature\/x/);
  // Top tasks and the charts are drawn; this machine's panels are not shown.
  assert.ok(await page.locator('#top-saved tr[data-task=gen]').isVisible());
  assert.ok(await page.locator('#chart-runs canvas').first().isVisible());
  assert.not.ok(await page.locator('#entries').isVisible());
  assert.is(await page.locator('#error').isVisible(), false);

  // Another run on the CI node reaches the open page without a reload (the live updates).
  const env = { TASKVAULT_TEAM_DATABASE: url, ...CI };
  assert.is((await runGen(machineB, env)).code, 0);
  assert.is((await runCli(['team', 'flush'], { cwd: machineB, env })).code, 0);
  await page.waitForSelector(`[data-stat=runs][data-value="${all.runs + 1}"]`, { timeout: 15_000 });
  assert.is(await shown('hits'), (await figures()).hits);
});

test('choosing a user narrows every figure to what SQL says for that user', async () => {
  const alice = await figures('user_name = $1', ['alice']);
  assert.equal({ runs: alice.runs, hits: alice.hits }, { runs: 3, hits: 2 });
  await page.goto(`${ui!.url}/`);
  await page.waitForSelector('body[data-team][data-ready]');
  await page.locator('#f-user').selectOption('alice');
  await page.waitForSelector(`[data-stat=runs][data-value="${alice.runs}"]`);
  assert.is(await shown('hits'), alice.hits);
  assert.is(await shown('misses'), alice.misses);
  assert.is(await shown('savedMs'), alice.savedMs);
  assert.is(await page.locator('#team-runs tr[data-event]').count(), 3);
  assert.is(await page.locator('#team-runs tr[data-user=ci]').count(), 0);
  // Clicking a task shows its runs, of that user only.
  await page.locator('#top-saved tr[data-task=gen]').click();
  await page.waitForSelector('#runs tr[data-event]');
  assert.is(await page.locator('#runs tr[data-event]').count(), 3);
  assert.match((await page.locator('#runs').textContent()) ?? '', /alice@laptop-a · main/);

  // A linked view, by host and by branch, and the API with the same filters.
  await page.goto(`${ui!.url}/?host=ci-node-b`);
  const ci = await figures('host = $1', ['ci-node-b']);
  await page.waitForSelector(`[data-stat=runs][data-value="${ci.runs}"]`);
  assert.is(await shown('hits'), ci.hits);
  const branch = await json(await api(ui!, '?range=24h&branch=feature%2Fx'));
  const byBranch = await figures('branch = $1', ['feature/x']);
  assert.equal(
    { hits: branch.totals.hits, misses: branch.totals.misses, savedMs: branch.totals.savedMs },
    { hits: byBranch.hits, misses: byBranch.misses, savedMs: byBranch.savedMs },
  );
  assert.equal(branch.team.choices.users, ['alice', 'ci']);
  assert.equal(branch.team.choices.branches, ['feature/x', 'main']);
});

test('malformed filters are a 400 naming them; SQL in a filter is only text', async () => {
  const before = await figures();
  for (const [query, why] of [
    ['?user=a&user=b', /'user' is given more than once/],
    [`?host=${'x'.repeat(201)}`, /host is longer than 200 characters/],
    ['?branch=ma%01in', /branch must not contain control characters/],
    ['?who=alice', /unknown query parameter 'who'/],
    ['?range=1y', /range must be one of/],
  ] as const) {
    const r = await api(ui!, query);
    assert.is(r.status, 400, query);
    assert.match((await json(r)).error, why);
  }
  for (const evil of [
    "' OR '1'='1",
    "alice' --",
    "x'; DROP TABLE taskvault_events; --",
    'alice") OR true --',
  ]) {
    for (const name of ['user', 'host', 'branch']) {
      const r = await api(ui!, `?${name}=${encodeURIComponent(evil)}`);
      assert.is(r.status, 200, `${name}=${evil}`);
      const o = await json(r);
      assert.equal([o.totals.hits, o.totals.misses, o.team.runs.length], [0, 0, 0], `${name}=${evil}`);
    }
    const runs = await fetch(`${ui!.url}/api/runs?task=${encodeURIComponent(evil)}`);
    assert.equal(((await runs.json()) as { runs: unknown[] }).runs, []);
  }
  assert.equal(await figures(), before, 'every event still there');
  assert.ok((await sql("SELECT to_regclass('taskvault_entries') AS t"))[0]!.t);
  // What the team view does not have is said, not guessed.
  const entries = await fetch(`${ui!.url}/api/entries`);
  assert.is(entries.status, 404);
  assert.match((await json(entries)).error, /without --team/);
});

test('a database that is down: the page shows the error, the API answers 503 in one line', async () => {
  const dead = `postgres://tvowner@127.0.0.1:${await freePort()}/postgres`;
  const down = await startUi(machineA, ['--team'], { TASKVAULT_TEAM_DATABASE: dead });
  try {
    const r = await api(down, '');
    assert.is(r.status, 503);
    const { error } = await json(r);
    assert.match(error, /^team index unreachable: .*ECONNREFUSED/);
    assert.not.match(error, /\n/);
    const p = await browser!.newPage();
    await p.goto(`${down.url}/`);
    await p.waitForSelector('#error:not([hidden])');
    assert.match((await p.locator('#error').textContent()) ?? '', /Could not load: team index unreachable/);
    await p.close();
    assert.is(down.child.exitCode, null, 'the server keeps running');
    assert.is((await fetch(`${down.url}/`)).status, 200);
  } finally {
    await down.stop();
  }
  // Without a team index configured, --team is one config line.
  const none = await runCli(['ui', '--team'], { cwd: project(), env: { TASKVAULT_TEAM_DATABASE: '' } });
  assert.is(none.code, 78);
  assert.match(none.err, /ui --team: no team index is configured/);
});

test('a database at schema version 2 holding events is migrated on first use and shows them', async () => {
  const old = await freshDatabase();
  const at = new Date(Date.now() - 3_600_000);
  const c = new pg.Client({ connectionString: old });
  await c.connect();
  try {
    assert.is(await migrate(c, 2), 2);
    await c.query(
      `INSERT INTO taskvault_events (id, at, task, key, outcome, source, via, duration_ms, saved_ms, exit_code,
         host, user_name, ci, git_commit, stored)
       VALUES ('old1', $1, 'legacy', 'aa11', 'miss', 'local', 'run', 5000, 0, 0, 'old-host', 'bob', false, NULL, 10),
              ('old2', $1, 'legacy', 'aa11', 'hit', 'remote', 'run', 40, 4960, 0, 'old-host', 'bob', true, NULL, NULL)`,
      [at],
    );
  } finally {
    await c.end();
  }
  const u = await startUi(machineA, ['--team'], { TASKVAULT_TEAM_DATABASE: old });
  try {
    const o = await json(await api(u, '?range=24h'));
    assert.equal([o.totals.hits, o.totals.misses, o.totals.savedMs], [1, 1, 4960]);
    assert.equal(
      o.team.runs.map((r) => [r.user, r.branch]),
      [
        ['bob', null],
        ['bob', null],
      ],
    );
  } finally {
    await u.stop();
  }
  const c2 = new pg.Client({ connectionString: old });
  await c2.connect();
  try {
    assert.is(await schemaVersion(c2), SCHEMA_VERSION);
    assert.ok(SCHEMA_VERSION >= 3);
  } finally {
    await c2.end();
  }
  // New events carry their branch next to the old ones.
  const dir = project();
  const env = { TASKVAULT_TEAM_DATABASE: old, ...ALICE };
  assert.is((await runGen(dir, env)).code, 0);
  assert.is((await runCli(['team', 'flush'], { cwd: dir, env })).code, 0);
  const c3 = new pg.Client({ connectionString: old });
  await c3.connect();
  try {
    const rows = (await c3.query('SELECT id, branch FROM taskvault_events ORDER BY at, id')).rows;
    assert.is(rows.length, 3);
    assert.equal(
      rows.map((r) => r.branch),
      [null, null, 'main'],
    );
    // Without TASKVAULT_TEAM_BRANCH, the branch checked out in the project's git work tree.
    const repo = project();
    const git = await runProcess('git', ['init', '-q', '-b', 'topic/z'], { cwd: repo });
    assert.is(git.code, 0, git.err);
    const own = { TASKVAULT_TEAM_DATABASE: old, GITHUB_HEAD_REF: 'not-this', CI_COMMIT_REF_NAME: 'nor-this' };
    assert.is((await runGen(repo, own)).code, 0);
    assert.is((await runCli(['team', 'flush'], { cwd: repo, env: own })).code, 0);
    const newest = await c3.query('SELECT branch FROM taskvault_events ORDER BY at DESC LIMIT 1');
    assert.is(newest.rows[0].branch, 'topic/z');
  } finally {
    await c3.end();
  }
});

test.run();

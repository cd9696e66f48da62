/**
 * The team index on a real PostgreSQL server started by this suite (test/support/postgres.ts):
 * two machines' runs in one `audit --team` view, a database that is down, locked or read-only
 * never changing a command's result, migration from schema version 1, and SQL injection through
 * task names and filters staying inert.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { lastHits, lastHitsFrom } from '../../src/store/team/read.js';
import { migrate, SCHEMA_VERSION, schemaVersion } from '../../src/store/team/schema.js';
import { type CliResult, REPO, runCli, runProcess } from '../support/helpers.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { keyOf, project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { freePort } from '../support/servers.js';

const test = suite('team: the team index on PostgreSQL');
let db: Postgres;
test.before(async () => {
  db = await startPostgres();
});
test.after(async () => {
  await db?.stop();
});

let dbCount = 0;
/** A fresh database on the server, so tests do not see each other's events. */
async function freshDatabase(): Promise<string> {
  const name = `t${++dbCount}`;
  await db.query(`CREATE DATABASE ${name}`);
  return db.url().replace(/\/postgres$/, `/${name}`);
}

async function withClient<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

const flush = (dir: string, env: Record<string, string>) => runCli(['team', 'flush'], { cwd: dir, env });
const auditTeam = (dir: string, env: Record<string, string>, args: string[] = []) =>
  runCli(['audit', '--team', ...args], { cwd: dir, env });

/** What a user sees of a run, minus timings. */
const seen = (r: CliResult) => ({
  code: r.code,
  out: r.out,
  err: r.err.replace(/\d+(\.\d+)?\s?(ms|s)\b/g, 'T').replace(/taskvault: warning:.*\n/g, ''),
});

test('two machines share the database: events from both appear in one audit --team view', async () => {
  const url = await freshDatabase();
  const a = project({ team: { database: url } });
  const b = project();
  const envA = { TASKVAULT_TEAM_HOST: 'laptop-a' };
  const envB = { TASKVAULT_TEAM_DATABASE: url, TASKVAULT_TEAM_HOST: 'ci-node-b', CI: 'true' };

  const miss = await runGen(a, envA);
  assert.is(miss.code, 0, miss.err);
  assert.equal(warnings(miss), []);
  // The miss handed its event to a detached flush: it arrives without any further command.
  let rows = 0;
  for (let i = 0; i < 150 && rows === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    rows = await withClient(url, async (c) =>
      (await schemaVersion(c)) < SCHEMA_VERSION
        ? 0
        : Number((await c.query('SELECT count(*) AS n FROM taskvault_events')).rows[0].n),
    );
  }
  assert.is(rows, 1, 'the background flush after the miss sent its event');

  const hit = await runGen(a, envA);
  assert.is(hit.code, 0, hit.err);
  assert.is(timesRan(a), 1);
  const other = await runGen(b, envB);
  assert.is(other.code, 0, other.err);
  for (const [dir, env] of [
    [a, envA],
    [b, envB],
  ] as const) {
    const f = await flush(dir, env);
    assert.is(f.code, 0, f.err);
  }

  const view = await auditTeam(b, envB);
  assert.is(view.code, 0, view.err);
  const lines = view.out.trim().split('\n');
  assert.is(lines.length, 3, view.out);
  for (const line of lines)
    assert.match(line, /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] (HIT|MISS) run task=gen hash=[0-9a-f]{12} /);
  assert.is(lines.filter((l) => / host=laptop-a /.test(l)).length, 2);
  assert.is(lines.filter((l) => / host=ci-node-b .* ci=1/.test(l)).length, 1);
  assert.match(lines.find((l) => l.includes(' HIT '))!, /origin=local .*saved_ms=\d+/);

  // The entries table: one entry per key, produced by the first machine, hit once.
  const key = await keyOf(a);
  const entries = await withClient(url, (c) =>
    c.query('SELECT key, hits, producer, size FROM taskvault_entries'),
  );
  assert.is(entries.rows.length, 1);
  assert.is(entries.rows[0].key, key);
  assert.is(Number(entries.rows[0].hits), 1);
  assert.match(entries.rows[0].producer, /@laptop-a$/);
  assert.ok(Number(entries.rows[0].size) > 600_000);
  const last = await withClient(url, (c) => lastHits(c, [key, 'no-such-key']));
  assert.equal([...last.keys()], [key]);
  const own = await lastHitsFrom({ database: url }, [key]);
  assert.ok(own.ok && own.value.get(key)?.getTime() === last.get(key)!.getTime());
  const down = await lastHitsFrom({ database: `postgres://tvowner@127.0.0.1:${await freePort()}/x` }, [key]);
  assert.ok(!down.ok && /ECONNREFUSED/.test(down.error.message));

  // --task and --since filter on the server.
  assert.is((await auditTeam(a, envA, ['--task', 'nope'])).out, '');
  assert.is((await auditTeam(a, envA, ['--since', '1h'])).out.trim().split('\n').length, 3);
  const bad = await auditTeam(a, envA, ['--since', 'yesterday']);
  assert.is(bad.code, 2);
  assert.match(bad.err, /invalid --since 'yesterday'/);
});

/** A run of the same project with and without the team index, compared as the user sees them. */
async function sameAsWithout(env: Record<string, string>, genExit = '0'): Promise<void> {
  const plain = project();
  const team = project();
  for (const step of ['miss', 'hit']) {
    const without = await runGen(plain, { GEN_EXIT: genExit });
    const started = Date.now();
    const withTeam = await runGen(team, { ...env, GEN_EXIT: genExit });
    assert.is(withTeam.code, Number(genExit), `${step}: ${withTeam.err}`);
    assert.equal(seen(withTeam), seen(without), step);
    assert.ok(warnings(withTeam).length <= 1, `${step}: at most one warning: ${withTeam.err}`);
    assert.ok(Date.now() - started < 10_000, `${step} did not wait on the database`);
  }
}

test("the SDK's runs are buffered and reach the team index with the next flush", async () => {
  const url = await freshDatabase();
  const dir = project({ team: { database: url } });
  const script = `import { Client } from ${JSON.stringify(pathToFileURL(join(REPO, 'dist', 'index.js')).href)};
const tv = new Client({ cwd: process.cwd() });
for (let i = 0; i < 2; i++) process.stderr.write((await tv.run({ task: 'gen' })).kind + '\\n');`;
  const r = await runProcess(process.execPath, ['--input-type=module', '-e', script], {
    cwd: dir,
    env: { TASKVAULT_TEAM_HOST: 'sdk-host' },
  });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /^(stderr line\n)?miss\n(stderr line\n)?hit\n$/);
  const f = await flush(dir, {});
  assert.is(f.code, 0, f.err);
  const lines = (await auditTeam(dir, {})).out.trim().split('\n');
  assert.is(lines.length, 2, lines.join('\n'));
  assert.match(lines[0]!, / MISS sdk task=gen .*host=sdk-host/);
  assert.match(lines[1]!, / HIT sdk task=gen .*host=sdk-host/);
});

test('a team block that is not a postgres URL is one config error line', async () => {
  const dir = project({ team: { database: 'mysql://db/x' } });
  const r = await runGen(dir, {});
  assert.is(r.code, 78);
  assert.match(r.err, /team\.database must be a postgres:\/\/ connection URL \(got "mysql:\/\/db\/x"\)/);
  assert.is(r.err.trim().split('\n').length, 1, r.err);
  assert.is(timesRan(dir), 0);
});

test('a database that is down changes neither output nor exit code', async () => {
  const url = `postgres://tvowner@127.0.0.1:${await freePort()}/postgres`;
  await sameAsWithout({ TASKVAULT_TEAM_DATABASE: url });
  await sameAsWithout({ TASKVAULT_TEAM_DATABASE: url }, '3');
  // Asked to flush in the foreground, it says why in one line, and the events stay buffered.
  const dir = project();
  await runGen(dir, { TASKVAULT_TEAM_DATABASE: url });
  const f = await flush(dir, { TASKVAULT_TEAM_DATABASE: url });
  assert.is.not(f.code, 0);
  assert.match(f.err, /team index unreachable: .*ECONNREFUSED/);
  assert.is(f.err.trim().split('\n').length, 1, f.err);
  const teamDir = join(dir, '.taskvault', 'cache', 'team');
  assert.ok(
    readdirSync(teamDir).some((n) => n.endsWith('.jsonl')),
    'events kept for later',
  );
});

test('a locked events table (a slow database) never holds up a command; the events arrive later', async () => {
  const url = await freshDatabase();
  const dir = project();
  const env = { TASKVAULT_TEAM_DATABASE: url };
  assert.is((await runGen(dir, env)).code, 0);
  assert.is((await flush(dir, env)).code, 0);
  const locker = new pg.Client({ connectionString: url });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE taskvault_events IN ACCESS EXCLUSIVE MODE');
    await sameAsWithout(env);
    const hit = await runGen(dir, { ...env, GEN_EXIT: '0' });
    assert.is(hit.code, 0, hit.err);
    assert.match(hit.err, /hit/);
  } finally {
    await locker.query('ROLLBACK');
    await locker.end();
  }
  const f = await flush(dir, env);
  assert.is(f.code, 0, f.err);
  const n = await withClient(
    url,
    async (c) => (await c.query('SELECT count(*) AS n FROM taskvault_events')).rows[0].n,
  );
  assert.ok(Number(n) >= 2, `events sent once the lock was gone: ${n}`);
});

test('a read-only role: commands unchanged, flush drops what it can never insert, audit --team reads', async () => {
  const url = await freshDatabase();
  const owner = { TASKVAULT_TEAM_DATABASE: url };
  const seed = project();
  await runGen(seed, owner);
  assert.is((await flush(seed, owner)).code, 0);
  await withClient(url, async (c) => {
    await c.query('CREATE ROLE tvreader LOGIN');
    await c.query('GRANT SELECT ON taskvault_schema, taskvault_events, taskvault_entries TO tvreader');
  });
  const reader = { TASKVAULT_TEAM_DATABASE: url.replace('tvowner@', 'tvreader@') };
  await sameAsWithout(reader);
  const dir = project();
  const teamDir = join(dir, '.taskvault', 'cache', 'team');
  assert.is((await runGen(dir, reader)).code, 0);
  // The miss's background flush finds it may not insert: it drops the events and leaves word.
  const lastError = join(teamDir, 'last-error');
  for (let i = 0; i < 150 && !existsSync(lastError); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(readFileSync(lastError, 'utf8'), /read-only for this role: 1 event\(s\) dropped/);
  // The next run that starts a flush says so, once.
  const forced = await runGen(dir, reader, ['--force']);
  assert.is(forced.code, 0);
  assert.equal(
    warnings(forced).map((w) => w.replace(/: \d+ event.*/, '')),
    ['taskvault: warning: team index is read-only for this role'],
  );
  // The forced run's background flush must be over (its event claimed and dropped) before the hit,
  // or it may take the hit's event too and leave `team flush` nothing to report.
  const buffered = () => readdirSync(teamDir).some((n) => /^(events|sending-.*)\.jsonl$/.test(n));
  for (let i = 0; i < 150 && buffered(); i++) await new Promise((r) => setTimeout(r, 100));
  assert.not.ok(buffered(), "the forced run's background flush finished");
  const hit = await runGen(dir, reader);
  assert.is(hit.code, 0);
  const f = await flush(dir, reader);
  assert.is.not(f.code, 0);
  assert.match(f.err, /read-only for this role: \d+ event\(s\) dropped/);
  assert.not.ok(
    readdirSync(teamDir).some((n) => n.endsWith('.jsonl')),
    'nothing left to retry',
  );
  const view = await auditTeam(dir, reader);
  assert.is(view.code, 0, view.err);
  assert.is(view.out.trim().split('\n').length, 1, 'the seed run, read with the read-only role');
});

test('a database at schema version 1 is migrated on first use, keeping its events', async () => {
  const url = await freshDatabase();
  await withClient(url, async (c) => {
    assert.is(await migrate(c, 1), 1);
    await c.query(
      `INSERT INTO taskvault_events (id, at, task, key, outcome, source, via, duration_ms, saved_ms, exit_code, host, user_name)
       VALUES ('old1', '2026-01-01T00:00:00Z', 'legacy', 'k0', 'miss', 'local', 'run', 5, 0, 0, 'old-host', 'old-user')`,
    );
  });
  const dir = project();
  const env = { TASKVAULT_TEAM_DATABASE: url };
  await runGen(dir, env);
  const f = await flush(dir, env);
  assert.is(f.code, 0, f.err);
  assert.is(await withClient(url, schemaVersion), SCHEMA_VERSION);
  const lines = (await auditTeam(dir, env)).out.trim().split('\n');
  assert.is(lines.length, 2);
  assert.match(
    lines[0]!,
    /^\[2026-01-01T00:00:00Z\] MISS run task=legacy hash=k0 origin=local ms=5 exit=0 host=old-host user=old-user$/,
  );
  assert.match(lines[1]!, /MISS run task=gen /);
});

test('team flush with nothing buffered still creates the schema, and says when it cannot', async () => {
  const url = await freshDatabase();
  const dir = project();
  const f = await flush(dir, { TASKVAULT_TEAM_DATABASE: url });
  assert.is(f.code, 0, f.err);
  assert.match(f.err, /team index: sent 0 event\(s\)/);
  assert.is(await withClient(url, schemaVersion), SCHEMA_VERSION);
  const down = `postgres://tvowner@127.0.0.1:${await freePort()}/postgres`;
  const g = await flush(project(), { TASKVAULT_TEAM_DATABASE: down });
  assert.is.not(g.code, 0);
  assert.match(g.err, /team index unreachable: .*ECONNREFUSED/);
});

test('SQL injection through task names and filters is inert', async () => {
  const url = await freshDatabase();
  const evil = "x'); DROP TABLE taskvault_events; --";
  const dir = project({
    team: { database: url },
    tasks: {},
  });
  // project() puts its own task in; add one with a hostile name beside it.
  const config = JSON.parse(readFileSync(join(dir, 'taskvault.config.json'), 'utf8'));
  config.tasks[evil] = { command: ['node', '-e', "console.log('evil ran')"], inputs: ['src/**'] };
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify(config));
  const r = await runCli(['run', evil], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'evil ran\n');
  await runGen(dir, {});
  assert.is((await flush(dir, {})).code, 0);

  const exact = await auditTeam(dir, {}, ['--task', evil]);
  assert.is(exact.code, 0, exact.err);
  assert.is(exact.out.trim().split('\n').length, 1, exact.out);
  assert.ok(exact.out.includes(`task=${JSON.stringify(evil)}`), exact.out);
  for (const filter of ["' OR '1'='1", "gen' --", "gen'; DELETE FROM taskvault_events; --"]) {
    const q = await auditTeam(dir, {}, ['--task', filter]);
    assert.is(q.code, 0, q.err);
    assert.is(q.out, '', `no rows for ${filter}`);
  }
  const sinceEvil = await auditTeam(dir, {}, ['--since', "1d'; DROP TABLE taskvault_entries; --"]);
  assert.is(sinceEvil.code, 2);
  const n = await withClient(
    url,
    async (c) => (await c.query('SELECT count(*) AS n FROM taskvault_events')).rows[0].n,
  );
  assert.is(Number(n), 2, 'both events there, no table dropped');
  assert.ok(existsSync(dir));
});

test.run();

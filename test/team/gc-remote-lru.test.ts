/**
 * `taskvault gc --remote` with a team index: entries are aged by their last hit on any machine (S3
 * and WebDAV keep no access time), so an old entry hit recently survives --max-age and --max-size
 * while an old one never hit goes; --dry-run makes the same choice and deletes nothing; without the
 * database (down) every entry is aged by its upload time, with one warning. Real nginx WebDAV
 * (PROPFIND) and a real PostgreSQL.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openBackend } from '../../src/remote/open-backend.js';
import { runCli } from '../support/helpers.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { keyOf, project, runGen, warnings } from '../support/remote-project.js';
import { freePort, NGINX_PASSWORD, NGINX_USER, type Nginx, startNginx } from '../support/servers.js';

const test = suite('team: gc --remote ages entries by their last hit in the team index');
const DAY = 86_400_000;
let db: Postgres;
let ng: Nginx;
let dbCount = 0;

test.before(async () => {
  db = await startPostgres();
  ng = await startNginx({ listing: true });
});
test.after(async () => {
  await ng?.stop();
  await db?.stop();
});

/**
 * Two entries on the remote and in the team index: `hit`, uploaded first, then `never`; another
 * machine hits `hit` 13 days later (its event, as that machine's flush would insert it).
 */
async function fill(name: string) {
  await db.query(`CREATE DATABASE ${name}`);
  const url = db.url().replace(/\/postgres$/, `/${name}`);
  const remote = `${ng.url}/basic/${name}`;
  const env = {
    TASKVAULT_REMOTE_URL: remote,
    TASKVAULT_REMOTE_USER: NGINX_USER,
    TASKVAULT_REMOTE_PASSWORD: NGINX_PASSWORD,
    TASKVAULT_TEAM_DATABASE: url,
  };
  const dir = project();
  assert.is((await runGen(dir, env)).code, 0);
  const hit = await keyOf(dir);
  writeFileSync(join(dir, 'src', 'input.txt'), 'a second input\n');
  assert.is((await runGen(dir, env)).code, 0);
  const never = await keyOf(dir);
  const f = await runCli(['team', 'flush'], { cwd: dir, env });
  assert.is(f.code, 0, f.err);
  const hitAt = Date.now() + 13 * DAY;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(
      `INSERT INTO taskvault_events (id, at, task, key, outcome, source, via, duration_ms, saved_ms, exit_code, host, user_name)
       VALUES ('later-hit', $1, 'gen', $2, 'hit', 'remote', 'run', 30, 900, 0, 'other-node', 'ci')`,
      [new Date(hitAt), hit],
    );
    const rows = (await c.query('SELECT key, last_hit FROM taskvault_entries ORDER BY created')).rows;
    assert.equal(
      rows.map((r) => [r.key, r.last_hit?.getTime() ?? null]),
      [
        [hit, hitAt],
        [never, null],
      ],
    );
  } finally {
    await c.end();
  }
  const backend = await openBackend(
    { url: remote, readOnly: false, timeoutMs: 5000, username: NGINX_USER, password: NGINX_PASSWORD },
    {},
  );
  if (!backend.ok) throw new Error(backend.problem.message);
  const present = async (key: string) => {
    const got = await backend.value.getEntry(key);
    assert.ok(got.ok);
    return got.ok && got.value !== undefined;
  };
  return { env, hit, never, present };
}

const gc = (env: Record<string, string>, args: string[], nowMs?: number) =>
  runCli(['gc', '--remote', ...args], {
    cwd: project(),
    env: { ...env, ...(nowMs === undefined ? {} : { TASKVAULT_NOW_MS: String(nowMs) }) },
  });

test('--max-age: the old entry hit lately stays, the old one never hit goes; --dry-run the same', async () => {
  const f = await fill(`age${++dbCount}`);
  // Both uploads are more than 14 days old then; only `hit` was used within the last 14 days.
  const now = Date.now() + 14 * DAY + 3_600_000;
  const dry = await gc(f.env, ['--json', '--max-age', '14d', '--grace', '0s', '--dry-run'], now);
  assert.is(dry.code, 0, dry.err);
  assert.equal(warnings(dry), []);
  const planned = JSON.parse(dry.out);
  assert.is(planned.entries.aged.count, 1, dry.out);
  assert.equal(planned.agedBy, { lastUse: 2, mtime: 0 });
  assert.ok((await f.present(f.hit)) && (await f.present(f.never)), 'a dry run deletes nothing');
  const said = await gc(f.env, ['--max-age', '14d', '--grace', '0s', '--dry-run'], now);
  assert.match(said.out, /would remove 1 entry \(age 1\)/);
  assert.match(said.out, /ages: 2 entries by last hit \(team index\), 0 by upload time/);

  // Without the team index, both are only as young as their upload: both would go.
  const blind = await gc(
    { ...f.env, TASKVAULT_TEAM_DATABASE: '' },
    ['--json', '--max-age', '14d', '--grace', '0s', '--dry-run'],
    now,
  );
  assert.is(JSON.parse(blind.out).entries.aged.count, 2);
  // A database that is down: the same as without it, and one warning saying so.
  const dead = `postgres://tvowner@127.0.0.1:${await freePort()}/x`;
  const down = await gc(
    { ...f.env, TASKVAULT_TEAM_DATABASE: dead },
    ['--json', '--max-age', '14d', '--grace', '0s', '--dry-run'],
    now,
  );
  assert.is(down.code, 0, down.err);
  assert.is(JSON.parse(down.out).entries.aged.count, 2);
  assert.is(warnings(down).length, 1, down.err);
  assert.match(warnings(down)[0]!, /team index: .*ECONNREFUSED.*ages every entry by its upload time/);

  const done = await gc(f.env, ['--json', '--max-age', '14d', '--grace', '0s'], now);
  assert.is(done.code, 0, done.err);
  assert.is(JSON.parse(done.out).entries.aged.count, 1);
  assert.ok(await f.present(f.hit), 'the entry hit 13 days later is kept');
  assert.not.ok(await f.present(f.never), 'the entry never hit is gone');
});

test('--max-size: the least recently used entry goes first, not the oldest upload', async () => {
  const f = await fill(`size${++dbCount}`);
  const all = JSON.parse((await gc(f.env, ['--json', '--dry-run'])).out);
  assert.is(all.kept.entries, 2);
  const limit = `${all.kept.bytes - 1}B`;
  // By upload time alone the older upload (`hit`) would go.
  const blind = await gc({ ...f.env, TASKVAULT_TEAM_DATABASE: '' }, ['--max-size', limit, '--dry-run']);
  assert.match(blind.out, /would remove 1 entry \(size 1\)/);
  const done = await gc(f.env, ['--json', '--max-size', limit]);
  assert.is(done.code, 0, done.err);
  assert.is(JSON.parse(done.out).entries.size.count, 1);
  assert.ok(await f.present(f.hit), 'the entry used last stays');
  assert.not.ok(await f.present(f.never), 'the least recently used entry went');
});

test.run();

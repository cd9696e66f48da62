/**
 * The local team buffer is capped (TASKVAULT_TEAM_BUFFER_MAX, default 100,000 events): while the
 * database is unreachable the oldest events are dropped, counted, warned about once and shown by
 * `taskvault team status`; what is kept reaches the database when it is back. Real CLI runs, a
 * real PostgreSQL, and the buffer's own functions on real files.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appendEvent,
  bufferMax,
  capBatches,
  claimBatches,
  DEFAULT_BUFFER_MAX,
  readDropTally,
  type TeamEvent,
  takeDropWarning,
} from '../../src/store/team/buffer.js';
import { runCli, tempDir } from '../support/helpers.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { project, runGen, warnings } from '../support/remote-project.js';
import { freePort } from '../support/servers.js';

const test = suite('team: the buffer cap while the database is unreachable');
let db: Postgres;
test.before(async () => {
  db = await startPostgres();
});
test.after(async () => {
  await db?.stop();
});

const event = (i: number): TeamEvent => ({
  id: `e${i}`,
  at: new Date(Date.UTC(2026, 11, 1, 0, 0, i)).toISOString(),
  task: 'gen',
  key: 'k',
  outcome: 'miss',
  source: 'local',
  via: 'run',
  durationMs: 1,
  savedMs: 0,
  exitCode: 0,
  stored: null,
  host: 'h',
  user: 'u',
  ci: false,
  commit: null,
  branch: null,
});

test('the cap keeps the newest events across batches and counts what it drops', () => {
  const dir = tempDir('tv-cap-');
  // An older claimed batch (a dead flusher's) and a newer buffer, claimed together.
  for (const i of [1, 2, 3]) appendEvent(dir, event(i));
  const first = claimBatches(dir);
  for (const i of [4, 5]) appendEvent(dir, event(i));
  const batches = [...first, ...claimBatches(dir)];
  assert.is(capBatches(dir, batches, 3), 2);
  assert.equal(
    batches.flatMap((b) => b.events.map((e) => e.id)),
    ['e3', 'e4', 'e5'],
  );
  // The claimed files hold what was kept: a crash now loses nothing more.
  assert.equal(
    readFileSync(batches[0]!.file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id),
    ['e3'],
  );
  assert.is(capBatches(dir, batches, 3), 0, 'under the cap nothing goes');
  assert.equal(
    { total: readDropTally(dir)?.total, episode: readDropTally(dir)?.episode },
    { total: 2, episode: 2 },
  );
  assert.match(takeDropWarning(dir, 3) ?? '', /buffer is full \(3 events\): 2 oldest event\(s\) dropped/);
  assert.is(takeDropWarning(dir, 3), undefined, 'said once');
  assert.is(bufferMax({}), DEFAULT_BUFFER_MAX);
  assert.is(bufferMax({ TASKVAULT_TEAM_BUFFER_MAX: '250' }), 250);
  assert.is(bufferMax({ TASKVAULT_TEAM_BUFFER_MAX: 'lots' }), DEFAULT_BUFFER_MAX);
});

test('runs with the database down: the buffer stays at the cap, one warning, team status says so', async () => {
  const dead = `postgres://tvowner@127.0.0.1:${await freePort()}/postgres`;
  const dir = project();
  const env = { TASKVAULT_TEAM_DATABASE: dead, TASKVAULT_TEAM_BUFFER_MAX: '3' };
  const said: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = await runGen(dir, env, ['--force']);
    assert.is(r.code, 0, r.err);
    said.push(...warnings(r));
  }
  const f = await runCli(['team', 'flush'], { cwd: dir, env });
  assert.is.not(f.code, 0);
  assert.match(f.err, /team index unreachable/);
  const status = async () => {
    const s = await runCli(['team', 'status', '--json'], { cwd: dir, env });
    assert.is(s.code, 0, s.err);
    return JSON.parse(s.out);
  };
  const s = await status();
  assert.is(s.buffered, 3);
  assert.is(s.dropped, 3, 'six runs, three kept');
  assert.is(s.bufferMax, 3);
  assert.ok(s.droppedSince, 'the buffer is full now');
  assert.ok(s.lastFlush, 'a flush was tried');
  const text = await runCli(['team', 'status'], { cwd: dir, env });
  assert.match(text.out, /dropped: +3 event\(s\), the buffer full since \d{4}-/);
  for (let i = 0; i < 2; i++) {
    const r = await runGen(dir, env, ['--force']);
    assert.is(r.code, 0, r.err);
    said.push(...warnings(r));
  }
  assert.is(said.filter((w) => /local buffer is full \(3 events\)/.test(w)).length, 1, said.join('\n'));

  // The database is back: what the cap kept arrives, and the episode is over.
  await db.query('CREATE DATABASE capped');
  const url = db.url().replace(/\/postgres$/, '/capped');
  const back = await runCli(['team', 'flush'], {
    cwd: dir,
    env: { ...env, TASKVAULT_TEAM_DATABASE: url },
  });
  assert.is(back.code, 0, back.err);
  assert.match(back.err, /sent 3 event\(s\)/);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    assert.is(Number((await c.query('SELECT count(*) AS n FROM taskvault_events')).rows[0].n), 3);
  } finally {
    await c.end();
  }
  const after = await status();
  assert.equal([after.buffered, after.dropped, after.droppedSince], [0, 5, null]);
  assert.ok(readDropTally(join(dir, '.taskvault', 'cache', 'team')));
});

test.run();

/**
 * The Nx API backend beyond the conformance suite, with `taskvault run` against the spec fixture
 * server (support/nx-server.ts): a read-only token reads and stops writing after one warning; a
 * wrong token is named. (409 on an existing record: the conformance suite's write-once case.)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type NxServer, startNxServer } from '../support/nx-server.js';
import { project, runGen, timesRan, warnings } from '../support/remote-project.js';

const WRITE = 'nx-write-1';
const READ = 'nx-read-1';
const test = suite('remote: Nx API');
let nx: NxServer;
test.before(async () => {
  nx = await startNxServer({ write: [WRITE], read: [READ] });
});
test.after(async () => {
  await nx?.stop();
});

const env = (token: string, extra: Record<string, string> = {}) => ({
  TASKVAULT_REMOTE_URL: `nx+${nx.url}`,
  TASKVAULT_REMOTE_TOKEN: token,
  ...extra,
});
const run = (dir: string, e: Record<string, string>) => runGen(dir, e, ['--stdin=ignore']);

test('a read-only token (403 on PUT): hits are served, one warning, the command and its exit code go on', async () => {
  assert.is((await run(project(), env(WRITE))).code, 0);
  const reader = project();
  const hit = await run(reader, env(READ));
  assert.match(hit.err, /hit \(remote\)/);
  assert.is(timesRan(reader), 0);

  const writer = project();
  writeFileSync(join(writer, 'src', 'input.txt'), 'another input\n');
  const before = nx.requests.length;
  const r = await run(writer, env(READ, { GEN_EXIT: '6' }));
  assert.is(r.code, 6);
  assert.is(timesRan(writer), 1);
  assert.is(warnings(r).length, 1, r.err);
  assert.match(warnings(r)[0]!, /HTTP 403: the Nx token is read-only/);
  const puts = nx.requests.slice(before).filter((q) => q.startsWith('PUT'));
  assert.is(puts.length, 1, `one refused upload, then no more: ${puts.join(', ')}`);
});

test('a wrong token: one warning naming TASKVAULT_REMOTE_TOKEN, never the token', async () => {
  const dir = project();
  const r = await run(dir, env('guessed-token-77'));
  assert.is(r.code, 0);
  assert.is(timesRan(dir), 1);
  assert.is(warnings(r).length, 1, r.err);
  assert.match(warnings(r)[0]!, /HTTP 401.*Nx token was refused; check TASKVAULT_REMOTE_TOKEN/);
  assert.not.match(r.err, /guessed-token-77/);
});

test.run();

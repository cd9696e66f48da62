/**
 * The Turborepo API backend beyond the shared conformance suite, with `taskvault run` against the
 * `turborepo-remote-cache` npm server (and, for what that server cannot be made to do, a recording
 * proxy in front of it or a small stub): teams, tokens, a read-only server, artifact tags, body
 * limits, rate limits, a disabled team, and what turbo's own client sends.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { startStub } from '../support/servers.js';
import { type Child, startTurboServer, TURBO_TOKEN } from '../support/team-servers.js';

const test = suite('remote: Turborepo API');
let turbo: Child;
test.before(async () => {
  turbo = await startTurboServer();
});
test.after(async () => {
  await turbo?.stop();
});

const env = (url: string, team: string, extra: Record<string, string> = {}) => ({
  TASKVAULT_REMOTE_URL: `turbo+${url}`,
  TASKVAULT_REMOTE_TOKEN: TURBO_TOKEN,
  TASKVAULT_REMOTE_TEAM: team,
  ...extra,
});
const run = (dir: string, e: Record<string, string>) => runGen(dir, e, ['--stdin=ignore']);

test('teams are separate spaces: another team misses without a warning; a wrong token warns naming it', async () => {
  const a = project();
  assert.is((await run(a, env(turbo.url, 'alpha'))).code, 0);
  const b = project();
  const other = await run(b, env(turbo.url, 'beta'));
  assert.is(timesRan(b), 1);
  assert.equal(warnings(other), []);
  const c = project();
  const same = await run(c, env(turbo.url, 'alpha'));
  assert.match(same.err, /hit \(remote\)/);

  const d = project();
  const wrong = await run(
    d,
    env(turbo.url, 'alpha', { TASKVAULT_REMOTE_TOKEN: 'stolen-token-x', GEN_EXIT: '4' }),
  );
  assert.is(wrong.code, 4, 'the exit code passes through');
  assert.is(timesRan(d), 1);
  assert.is(warnings(wrong).length, 1, wrong.err);
  assert.match(warnings(wrong)[0]!, /HTTP 401.*Turborepo token was refused; check TASKVAULT_REMOTE_TOKEN/);
  assert.not.match(wrong.err, /stolen-token-x/);
});

test('a read-only server: hits are served, an upload is refused with one warning, the command runs', async () => {
  // A second server on the same storage in its READ_ONLY mode, as a team gives pull-request CI.
  const ro = await startTurboServer({ READ_ONLY: 'true' }, turbo.dir);
  try {
    const team = `ro-${process.pid}`;
    assert.is((await run(project(), env(turbo.url, team))).code, 0);
    const reader = project();
    const hit = await run(reader, env(ro.url, team));
    assert.match(hit.err, /hit \(remote\)/, hit.err);
    assert.is(timesRan(reader), 0);
    const writer = project();
    writeFileSync(join(writer, 'src', 'input.txt'), 'another input\n');
    const r = await run(writer, env(ro.url, team, { GEN_EXIT: '5' }));
    assert.is(r.code, 5);
    assert.is(timesRan(writer), 1);
    assert.is(warnings(r).length, 1, r.err);
    assert.match(warnings(r)[0]!, /read-only/);
  } finally {
    await ro.stop();
  }
});

test('artifact tags: a server that keeps tags serves ours back; another key is refused with one warning', async () => {
  const signed = await startTurboServer({ TURBO_REMOTE_CACHE_SIGNATURE_KEY: 'server-side-flag' });
  try {
    const team = `tags-${process.pid}`;
    const key = { TASKVAULT_REMOTE_SIGNATURE_KEY: 'team-secret-1' };
    assert.is((await run(project(), env(signed.url, team, key))).code, 0);
    const good = project();
    const g = await run(good, env(signed.url, team, key));
    assert.match(g.err, /hit \(remote\)/, g.err);
    assert.equal(warnings(g), []);
    const bad = project();
    const b = await run(
      bad,
      env(signed.url, team, { TASKVAULT_REMOTE_SIGNATURE_KEY: 'other', TASKVAULT_REMOTE_READ_ONLY: '1' }),
    );
    assert.is(timesRan(bad), 1);
    assert.is(warnings(b).length, 1, b.err);
    assert.match(warnings(b)[0]!, /x-artifact-tag does not match/);
  } finally {
    await signed.stop();
  }
});

test('a body over the server limit (413): one warning saying so, the command runs, nothing local lost', async () => {
  const small = await startTurboServer({ BODY_LIMIT: '100000' });
  try {
    const dir = project();
    const r = await run(dir, env(small.url, `limit-${process.pid}`));
    assert.is(r.code, 0);
    assert.is(warnings(r).length, 1, r.err);
    assert.match(warnings(r)[0]!, /HTTP 413.*upload limit/);
    const again = await run(dir, env(small.url, `limit-${process.pid}`));
    assert.match(again.err, /hit/, 'the local cache has the result');
    assert.is(timesRan(dir), 1);
  } finally {
    await small.stop();
  }
});

test('rate limited (429): retried with pauses, then the run goes on without the remote, one warning', async () => {
  const stub = await startStub((req, res) => {
    if (req.url?.startsWith('/v8/artifacts/status')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"status":"enabled"}');
    }
    res.writeHead(429, { 'content-type': 'application/json' });
    res.end('{"error":{"message":"rate limited"}}');
  });
  try {
    const dir = project();
    const r = await run(dir, env(stub.url, 'team'));
    assert.is(r.code, 0);
    assert.is(timesRan(dir), 1);
    assert.is(warnings(r).length, 1, r.err);
    assert.match(warnings(r)[0]!, /HTTP 429/);
    const gets = stub.requests.filter((q) => q.startsWith('GET /v8/artifacts/ac-'));
    assert.is(gets.length, 3, `three tries of the lookup: ${stub.requests.join(', ')}`);
    assert.not.ok(
      stub.requests.some((q) => q.startsWith('PUT')),
      'no upload to a remote that refused',
    );
  } finally {
    await stub.stop();
  }
});

test('a disabled team (GET /v8/artifacts/status): one warning, no artifact requested', async () => {
  const stub = await startStub((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"disabled"}');
  });
  try {
    const dir = project();
    const r = await run(dir, env(stub.url, 'team'));
    assert.is(r.code, 0);
    assert.is(warnings(r).length, 1, r.err);
    assert.match(warnings(r)[0]!, /remote caching is disabled for this team/);
    assert.equal(
      stub.requests.filter((q) => !q.startsWith('GET /v8/artifacts/status')),
      [],
      'nothing but the status was asked',
    );
  } finally {
    await stub.stop();
  }
});

test('what goes over the wire: bearer token, slug or teamId, x-artifact-duration, hit and miss events', async () => {
  const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const upstream = new URL(turbo.url);
  const proxy = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      seen.push({
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body: req.url?.includes('/ac-') || req.url?.includes('events') ? body.toString() : '',
      });
      const out = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      out.end(body);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  try {
    assert.is((await run(project(), env(url, 'team_0123abc'))).code, 0);
    assert.match((await run(project(), env(url, 'team_0123abc'))).err, /hit \(remote\)/);
    await new Promise((r) => setTimeout(r, 300)); // events are not awaited by the client
    for (const q of seen) {
      assert.is(q.headers.authorization, `Bearer ${TURBO_TOKEN}`, q.url);
      assert.match(q.url, /[?&]teamId=team_0123abc(&|$)/, 'a team_ id goes as teamId');
    }
    const put = seen.find((q) => q.method === 'PUT' && q.url.includes('/ac-'));
    assert.ok(put, 'the entry was uploaded');
    const duration = Number(put!.headers['x-artifact-duration']);
    assert.is(
      duration,
      JSON.parse(put!.body).entry.durationMs,
      'x-artifact-duration is the run time of the entry',
    );
    const events = seen.filter((q) => q.method === 'POST' && q.url.startsWith('/v8/artifacts/events'));
    const kinds = events.flatMap((q) =>
      JSON.parse(q.body).map((e: { event: string; source: string }) => `${e.source} ${e.event}`),
    );
    assert.equal(kinds, ['REMOTE MISS', 'REMOTE HIT']);
  } finally {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
  }
});

test.run();

/**
 * `taskvault ui` facing bad input: a non-loopback address needs a token, checked on every request;
 * no path reaches a file outside the page's own; malformed queries get a 400 that says why; the
 * server is read-only; a port in use is one line and exit code 1.
 */
import http from 'node:http';
import { createServer } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../support/helpers.js';
import { project, runGen } from '../support/remote-project.js';
import { freePort } from '../support/servers.js';
import { startUi, type UiServer } from '../support/ui-server.js';

const test = suite('taskvault ui: security and bad input');
let dir = '';
let ui: UiServer | undefined;

/** A raw GET: the path goes on the wire as written (fetch would normalise `..`). */
function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const oneLine = (err: string): void => {
  assert.ok(err.trim().split('\n').length <= 2, `more than a line and its hint:\n${err}`);
  assert.not.match(err, /\n\s+at /);
};

test.before(async () => {
  dir = project();
  assert.is((await runGen(dir, {})).code, 0);
  ui = await startUi(dir);
});

test.after(async () => {
  await ui?.stop();
});

test('a non-loopback --host without a token is refused before anything listens', async () => {
  const r = await runCli(['ui', '--host', '0.0.0.0', '--port', String(await freePort())], { cwd: dir });
  assert.is(r.code, 2);
  assert.match(r.err, /--host 0\.0\.0\.0 is not a loopback address/);
  assert.match(r.err, /--token/);
  oneLine(r.err);
});

test('with a token, every request must carry it (header, query or the cookie the page sets)', async () => {
  const server = await startUi(dir, ['--host', '0.0.0.0'], { TASKVAULT_UI_TOKEN: 's3cret-token' });
  try {
    for (const path of ['/', '/assets/app.js', '/api/overview', '/api/events', '/metrics']) {
      assert.is((await get(server.port, path)).status, 401, path);
      assert.is((await get(server.port, path, { authorization: 'Bearer wrong-token!' })).status, 401, path);
    }
    const bad = await get(server.port, '/api/overview?token=s3cret-toke');
    assert.is(bad.status, 401);
    assert.match(JSON.parse(bad.body).error, /valid token is required/);
    assert.is((await get(server.port, '/metrics', { authorization: 'Bearer s3cret-token' })).status, 200);
    const page = await get(server.port, '/?token=s3cret-token');
    assert.is(page.status, 200);
    const cookie = String(page.headers['set-cookie']).split(';')[0]!;
    assert.match(String(page.headers['set-cookie']), /HttpOnly; SameSite=Strict/);
    assert.is((await get(server.port, '/api/overview', { cookie })).status, 200);
    // A non-loopback server takes any Host (it is meant to be reached by name), the token still rules.
    assert.is((await get(server.port, '/api/overview', { cookie, host: 'dashboard.example' })).status, 200);
  } finally {
    await server.stop();
  }
  // --token works the same as the variable.
  const flagged = await startUi(dir, ['--token', 'flag-token']);
  try {
    assert.is((await get(flagged.port, '/api/overview')).status, 401);
    assert.is((await get(flagged.port, '/api/overview?token=flag-token')).status, 200);
  } finally {
    await flagged.stop();
  }
});

test('no path leaves the bundled page and assets', async () => {
  for (const path of [
    '/../package.json',
    '/assets/../../package.json',
    '/assets/..%2f..%2fpackage.json',
    '/assets/%2e%2e/%2e%2e/package.json',
    '/assets/....//....//package.json',
    '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/assets/app.js/../../../../etc/passwd',
    '/index.html',
    '/ui/server.js',
    '/assets/',
  ]) {
    const r = await get(ui!.port, path);
    assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
    assert.not.match(r.body, /"name": "taskvault"|root:x:0:0/, path);
  }
  assert.is((await get(ui!.port, '/assets/%E0%A4%A')).status, 400);
  assert.is((await get(ui!.port, '/assets/app.js')).status, 200);
});

test('malformed query parameters get a 400 that says which and why; the server keeps serving', async () => {
  const cases: Array<[string, RegExp]> = [
    ['/api/overview?range=1y', /range must be one of 24h, 7d, 30d, 90d/],
    ['/api/overview?step=minute', /step must be one of hour, day/],
    ['/api/overview?range=7d&range=30d', /'range' is given more than once/],
    ['/api/overview?bogus=1', /unknown query parameter 'bogus'/],
    ['/api/entries?limit=-5', /limit must be a whole number from 1 to 500/],
    ['/api/entries?limit=abc', /limit must be a whole number/],
    ['/api/entries?offset=1e9', /offset must be a whole number/],
    ['/api/entries?sort=size;drop', /sort must be one of/],
    ['/api/entry?key=../../etc/passwd', /key must be an entry key/],
    ['/api/entry', /'key' is required/],
    ['/api/runs', /'task' is required/],
    ['/api/runs?task=gen&limit=0', /limit must be a whole number from 1 to 500/],
    ['/metrics?format=json', /unknown query parameter 'format'/],
  ];
  for (const [path, message] of cases) {
    const r = await get(ui!.port, path);
    assert.is(r.status, 400, path);
    assert.match(JSON.parse(r.body).error, message);
  }
  assert.is((await get(ui!.port, '/api/entry?key=0123456789abcdef0123')).status, 404);
  assert.is((await get(ui!.port, '/api/overview?range=30d&step=day')).status, 200);
});

test('read-only: anything but GET and HEAD is refused, and the cache is unchanged', async () => {
  const before = (await runCli(['stats', '--json'], { cwd: dir })).out;
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const r = await get(ui!.port, '/api/entries', {}, method);
    assert.is(r.status, 405, method);
    assert.is(r.headers.allow, 'GET, HEAD');
  }
  assert.is((await runCli(['stats', '--json'], { cwd: dir })).out, before);
});

test('a request naming a foreign host is refused on loopback (DNS rebinding)', async () => {
  const r = await get(ui!.port, '/api/overview', { host: 'attacker.example:80' });
  assert.is(r.status, 403);
  assert.is((await get(ui!.port, '/api/overview', { host: `localhost:${ui!.port}` })).status, 200);
});

test('a port in use: one clear line and exit code 1', async () => {
  const blocker = createServer();
  const port = await new Promise<number>((resolve) =>
    blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)),
  );
  try {
    const r = await runCli(['ui', '--port', String(port)], { cwd: dir });
    assert.is(r.code, 1);
    assert.match(r.err, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
    oneLine(r.err);
  } finally {
    blocker.close();
  }
});

test('a bad --port or config servicePort is a usage or config error', async () => {
  for (const port of ['0', '70000', 'http']) {
    const r = await runCli(['ui', '--port', port], { cwd: dir });
    assert.is(r.code, 2, port);
    assert.match(r.err, /--port must be a port number from 1 to 65535/);
    oneLine(r.err);
  }
  const other = project({ servicePort: 'nine' });
  const r = await runCli(['ui'], { cwd: other });
  assert.is(r.code, 78);
  assert.match(r.err, /servicePort must be a port number/);
  const priced = project({ cost: { perHour: { default: -1 } } });
  const c = await runCli(['metrics'], { cwd: priced });
  assert.is(c.code, 78);
  assert.match(c.err, /cost\.perHour\.default must be a price of zero or more/);
});

test.run();

/**
 * A remote that is down, failing, silent or refusing never fails the run: the command runs, its exit
 * code passes through, one warning says why, and the remote is left alone after repeated failures.
 * The misbehaving servers are small node:http servers on 127.0.0.1.
 */
import { exec } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, cliEnv } from '../support/helpers.js';
import { markerOf, project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { freePort, startStub } from '../support/servers.js';

const test = suite('remote: failures');

const result = (dir: string) => readFileSync(join(dir, 'out', 'result.txt'), 'utf8');

test('remote down: the command runs and its exit code passes through, with one warning', async () => {
  const port = await freePort(); // nothing listens there
  const dir = project();
  const r = await runGen(dir, { TASKVAULT_REMOTE_URL: `http://127.0.0.1:${port}/cache`, GEN_EXIT: '3' });
  assert.is(r.code, 3);
  assert.is(timesRan(dir), 1);
  assert.is(r.out, 'stdout line 1\ndone 44\n');
  assert.is(result(dir), 'THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG\n');
  const w = warnings(r);
  assert.is(w.length, 1, w.join('\n'));
  assert.match(w[0]!, /ECONNREFUSED.*not using the remote for the rest of this run/);
  const again = await runGen(dir, { TASKVAULT_REMOTE_URL: `http://127.0.0.1:${port}/cache`, GEN_EXIT: '3' });
  assert.is(again.code, 3);
  assert.match(again.err, /taskvault: hit/, 'the local save stood');
  assert.equal(warnings(again), [], 'a local hit does not ask the remote');
});

test('a server answering 500: retried a bounded number of times, then left alone for the run', async () => {
  const stub = await startStub((_req, res) => {
    res.statusCode = 500;
    res.end('boom');
  });
  try {
    const dir = project();
    const r = await runGen(dir, { TASKVAULT_REMOTE_URL: `${stub.url}/cache` });
    assert.is(r.code, 0);
    assert.is(timesRan(dir), 1);
    const w = warnings(r);
    assert.is(w.length, 2, w.join('\n'));
    assert.match(w[0]!, /GET .*\/cache\/ac\/[0-9a-f]{64}: HTTP 500; continuing with the local cache/);
    assert.match(w[1]!, /HTTP 500; not using the remote for the rest of this run/);
    // 3 tries of the lookup, 3 tries of the first upload request (is the entry there?), then nothing.
    assert.is(stub.requests.length, 6, stub.requests.join('\n'));
    assert.ok(stub.requests.slice(0, 3).every((q) => q.startsWith('GET /cache/ac/')));
    assert.ok(stub.requests.slice(3).every((q) => q.startsWith('HEAD /cache/ac/')));
  } finally {
    await stub.stop();
  }
});

test('a server that accepts connections but never answers: bounded by timeoutMs', async () => {
  const stub = await startStub(() => {
    // never respond
  });
  try {
    const dir = project({ remote: { url: `${stub.url}/cache`, timeoutMs: 300 } });
    const r = await runGen(dir, {});
    assert.is(r.code, 0);
    assert.is(timesRan(dir), 1);
    const w = warnings(r);
    assert.is(w.length, 1, w.join('\n'));
    assert.match(w[0]!, /no response within 300 ms; not using the remote for the rest of this run/);
    assert.is(stub.requests.length, 1);
  } finally {
    await stub.stop();
  }
});

test('uploads refused with 403: a warning, the local save stands, no entry is written without its blobs', async () => {
  const stub = await startStub((req, res) => {
    res.statusCode = req.method === 'PUT' ? 403 : 404;
    res.end();
  });
  try {
    const dir = project();
    const r = await runGen(dir, { TASKVAULT_REMOTE_URL: `${stub.url}/cache` });
    assert.is(r.code, 0);
    assert.match(warnings(r).join('\n'), /PUT .*\/cache\/cas\/.*HTTP 403/);
    assert.ok(
      stub.requests.every((q) => !q.startsWith('PUT /cache/ac/')),
      'the entry is never uploaded when a blob failed',
    );
    assert.ok(
      stub.requests.filter((q) => q.startsWith('PUT')).length <= 2,
      'a 403 is not retried, and the second strike stops uploads',
    );
    const again = await runGen(dir, { TASKVAULT_REMOTE_URL: `${stub.url}/cache` });
    assert.match(again.err, /taskvault: hit/);
  } finally {
    await stub.stop();
  }
});

test('a remote entry that is not ours (garbage, or another format) is a miss with a warning', async () => {
  const stub = await startStub((req, res) => {
    if (req.method === 'GET' && req.url?.includes('/ac/')) res.end('{"hello":"world"}');
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  try {
    const dir = project();
    const r = await runGen(dir, {
      TASKVAULT_REMOTE_URL: `${stub.url}/cache`,
      TASKVAULT_REMOTE_READ_ONLY: '1',
    });
    assert.is(r.code, 0);
    assert.is(timesRan(dir), 1);
    assert.match(warnings(r).join('\n'), /remote entry [0-9a-f]{12} not used: the remote entry is malformed/);
  } finally {
    await stub.stop();
  }
});

test('an unsupported remote URL is one warning, not a failure', async () => {
  const dir = project();
  const r = await runGen(dir, { TASKVAULT_REMOTE_URL: 'ftp://example.invalid/cache' });
  assert.is(r.code, 0);
  assert.is(timesRan(dir), 1);
  const w = warnings(r);
  assert.is(w.length, 1);
  assert.match(w[0]!, /ftp:\/\/… is not supported/);
});

test('a transfer slower than a second shows progress on a TTY (and only there)', async () => {
  // An in-memory cache server that answers GETs slowly: 15 slices, 100 ms apart.
  const stored = new Map<string, Buffer>();
  const stub = await startStub((req, res) => {
    const url = req.url ?? '';
    if (req.method === 'PUT') {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        stored.set(url, Buffer.concat(parts));
        res.statusCode = 201;
        res.end();
      });
      return;
    }
    const data = stored.get(url);
    res.statusCode = data ? 200 : 404;
    if (!data || req.method === 'HEAD') return void res.end();
    const step = Math.ceil(data.length / 15);
    let i = 0;
    const t = setInterval(() => {
      res.write(data.subarray(i, i + step));
      i += step;
      if (i >= data.length) {
        clearInterval(t);
        res.end();
      }
    }, 100);
  });
  try {
    const env = { TASKVAULT_REMOTE_URL: `${stub.url}/cache` };
    assert.is((await runGen(project(), env)).code, 0);
    const dir = project();
    // script(1) (util-linux, always on Debian) gives the CLI a pseudo-terminal.
    const out = await new Promise<string>((resolve, reject) =>
      exec(
        `script -q -e -c "${process.execPath} ${CLI} run gen" /dev/null`,
        { cwd: dir, env: cliEnv({ ...env, RAN_MARKER: markerOf(dir) }), timeout: 60_000 },
        (e, stdout) => (e ? reject(e) : resolve(stdout)),
      ),
    );
    assert.match(out, /\r\x1b\[Ktaskvault: downloading [0-9.]+ [KM]?B \/ [0-9.]+ [KM]?B \(\d\/\d blobs\)/);
    assert.match(out, /hit\S* \(remote\)/);
    assert.is(timesRan(dir), 0);
    // The same slow pull without a TTY: no progress line at all.
    const plain = await runGen(project(), env);
    assert.match(plain.err, /hit \(remote\)/);
    assert.not.match(plain.err, /downloading/);
  } finally {
    await stub.stop();
  }
});

test.run();

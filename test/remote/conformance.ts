/**
 * What every remote backend must do, run against its real server (conformance-<backend>.test.ts).
 * A backend is opened the way the product opens it (openBackend from settings + env), so a new
 * backend passes this suite by adding one target file; nothing here knows a backend's protocol.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
// The one import of the product's remote code: where backends are picked from settings.
import type { RemoteBackend } from '../../src/remote/backend.js';
import { openBackend } from '../../src/remote/open-backend.js';
import { readTreeSnapshot, runCli, tempDir } from '../support/helpers.js';
import { project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { freePort, startSilent, startTruncatingProxy } from '../support/servers.js';

export type Settings = Parameters<typeof openBackend>[0];

export interface RemoteUnderTest {
  settings: Settings;
  env: NodeJS.ProcessEnv;
}

/** A backend's real server, started for one suite. */
export interface Served {
  /**
   * Settings for a backend on its own namespace (`prefix`) of this server. `base` sends its requests
   * to another http://host:port instead (a proxy, a dead port, a silent server).
   */
  remote(o: {
    prefix: string;
    timeoutMs: number;
    base?: string;
    wrongCredentials?: boolean;
  }): RemoteUnderTest;
  /**
   * What `taskvault run` needs to use the same remote: taskvault.config.json content and env.
   * `base`: the same remote reached at another http://host:port (a dead port, a silent server).
   */
  cli(
    prefix: string,
    base?: string,
  ): { config: Record<string, unknown>; env: Record<string, string | undefined> };
  stop(): Promise<void>;
}

export interface ConformanceTarget {
  name: string;
  /** What the failure for wrong credentials must say (the server's refusal, by status or code). */
  wrongCredentials: RegExp;
  /** A secret of the wrong credentials: it must never appear in a message. */
  wrongSecret: string;
  start(): Promise<Served>;
}

/** What a backend call resolves to, for the checks below. */
type Outcome = { ok: true } | { ok: false; problem: { message: string; retryable: boolean; stop?: boolean } };

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const entryKey = (): string => randomBytes(32).toString('hex');

/** A blob as the product stores one: a file named nowhere in particular, keyed by its SHA-256. */
function blobFile(bytes: Buffer): { key: string; file: string; size: number } {
  const file = join(tempDir('tv-conf-blob-'), 'blob');
  writeFileSync(file, bytes);
  return { key: sha256(bytes), file, size: bytes.byteLength };
}

/** Reads a blob into memory; `calls` counts how often the body was handed over (retries start over). */
async function readBlob(b: RemoteBackend, key: string) {
  let bytes: Buffer | undefined;
  let calls = 0;
  const r = await b.getBlob(key, async (body: Readable) => {
    calls++;
    const parts: Buffer[] = [];
    for await (const chunk of body) parts.push(chunk as Buffer);
    bytes = Buffer.concat(parts);
  });
  return { r, bytes, calls };
}

async function open(u: RemoteUnderTest): Promise<RemoteBackend> {
  const r = await openBackend(u.settings, u.env);
  if (!r.ok) throw new Error(`openBackend: ${r.problem.message}`);
  return r.value;
}

/** Times a promise; a backend call must resolve (never reject) to a result value. */
async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await p;
  return { value, ms: performance.now() - started };
}

const SAMPLES: Array<[string, Buffer]> = [
  ['empty', Buffer.alloc(0)],
  ['1 byte', Buffer.from([0x2a])],
  ['every byte value', Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256))],
  ['3 MB of random bytes', randomBytes(3 * 1024 * 1024)],
];

export function conformance(target: ConformanceTarget): void {
  const test = suite(`remote conformance: ${target.name}`);
  let served: Served;
  let n = 0;
  /** A backend on a namespace no other test uses. */
  const fresh = (o: { base?: string; timeoutMs?: number; wrongCredentials?: boolean } = {}) =>
    open(served.remote({ prefix: `conf-${process.pid}-${++n}`, timeoutMs: 10_000, ...o }));

  test.before(async () => {
    served = await target.start();
  });
  test.after(async () => {
    await served?.stop();
  });

  test('a missing key is a miss, not an error: entry, blob and exists', async () => {
    const b = await fresh();
    assert.equal(await b.getEntry(entryKey()), { ok: true, value: undefined });
    assert.equal(await b.hasBlob(sha256(randomBytes(8))), { ok: true, value: false });
    const got = await readBlob(b, sha256(randomBytes(8)));
    assert.equal(got.r, { ok: true, value: false });
    assert.is(got.calls, 0, 'no body is handed over for a missing blob');
  });

  test('put then get round-trips the bytes exactly: empty, 1 byte, binary, a few MB', async () => {
    const b = await fresh();
    for (const [what, bytes] of SAMPLES) {
      const key = entryKey();
      assert.equal(await b.putEntry(key, bytes), { ok: true, value: undefined }, `putEntry ${what}`);
      const entry = await b.getEntry(key);
      assert.ok(entry.ok && entry.value, `getEntry ${what}: ${JSON.stringify(entry)}`);
      if (entry.ok) assert.ok(Buffer.from(entry.value!).equals(bytes), `entry ${what} differs`);

      const blob = blobFile(bytes);
      assert.equal(await b.hasBlob(blob.key), { ok: true, value: false }, `hasBlob ${what} before`);
      assert.equal(
        await b.putBlob(blob.key, blob.file, blob.size),
        { ok: true, value: undefined },
        `putBlob ${what}`,
      );
      assert.equal(await b.hasBlob(blob.key), { ok: true, value: true }, `hasBlob ${what} after`);
      const got = await readBlob(b, blob.key);
      assert.equal(got.r, { ok: true, value: true }, `getBlob ${what}`);
      assert.ok(got.bytes?.equals(bytes), `blob ${what} differs (${got.bytes?.length} bytes)`);
    }
  });

  test('write-once: a second put of an entry keeps the first; a blob put twice stays the same', async () => {
    const b = await fresh();
    const key = entryKey();
    const first = Buffer.from('{"first":true}');
    const second = Buffer.from('{"second":true,"longer":"than the first"}');
    assert.ok((await b.putEntry(key, first)).ok);
    assert.ok((await b.putEntry(key, second)).ok, 'the second put is not an error');
    const got = await b.getEntry(key);
    assert.ok(got.ok);
    if (got.ok) assert.equal(got.value, first, 'the entry already there was replaced');

    const bytes = randomBytes(1000);
    const blob = blobFile(bytes);
    assert.ok((await b.putBlob(blob.key, blob.file, blob.size)).ok);
    assert.ok((await b.putBlob(blob.key, blob.file, blob.size)).ok, 'content-addressed: a repeat is fine');
    const again = await readBlob(b, blob.key);
    assert.ok(again.bytes?.equals(bytes), 'the blob reads back unchanged');
  });

  test('a server that is down: every call resolves to a failure at once, saying so, no throw', async () => {
    const port = await freePort(); // nothing listens there
    const b = await fresh({ base: `http://127.0.0.1:${port}`, timeoutMs: 5000 });
    const blob = blobFile(Buffer.from('x'));
    const calls: Array<[string, () => Promise<Outcome>]> = [
      ['getEntry', () => b.getEntry(entryKey())],
      ['putEntry', () => b.putEntry(entryKey(), Buffer.from('x'))],
      ['hasBlob', () => b.hasBlob(blob.key)],
      ['getBlob', async () => (await readBlob(b, blob.key)).r],
      ['putBlob', () => b.putBlob(blob.key, blob.file, blob.size)],
    ];
    for (const [name, call] of calls) {
      const { value, ms } = await timed(call());
      if (value.ok) assert.unreachable(`${name} succeeded against a dead port`);
      const p = (value as Extract<Outcome, { ok: false }>).problem;
      assert.match(p.message, /ECONNREFUSED/, name);
      assert.is(p.stop, true, `${name}: a remote that is not there is not asked again this run`);
      assert.ok(ms < 2000, `${name} took ${ms} ms`);
    }
  });

  test('a server that accepts the connection and never answers: each call gives up within timeoutMs', async () => {
    const silent = await startSilent();
    try {
      const timeoutMs = 600;
      const b = await fresh({ base: silent.url, timeoutMs });
      const blob = blobFile(randomBytes(100));
      const calls: Array<[string, () => Promise<Outcome>]> = [
        ['getEntry', () => b.getEntry(entryKey())],
        ['putEntry', () => b.putEntry(entryKey(), Buffer.from('x'))],
        ['hasBlob', () => b.hasBlob(blob.key)],
        ['getBlob', async () => (await readBlob(b, blob.key)).r],
        ['putBlob', () => b.putBlob(blob.key, blob.file, blob.size)],
      ];
      const results = await Promise.all(
        calls.map(async ([name, call]) => ({ name, ...(await timed(call())) })),
      );
      for (const { name, value, ms } of results) {
        if (value.ok) assert.unreachable(`${name} succeeded against a silent server`);
        const p = (value as Extract<Outcome, { ok: false }>).problem;
        assert.match(p.message, new RegExp(`no response within ${timeoutMs} ms`), name);
        assert.ok(ms >= timeoutMs - 50, `${name} gave up early, after ${ms} ms`);
        assert.ok(ms < timeoutMs + 1500, `${name} took ${ms} ms for a ${timeoutMs} ms timeout`);
      }
    } finally {
      await silent.stop();
    }
  });

  test('wrong credentials: a failure naming the refusal, not retried, the secret never shown', async () => {
    const b = await fresh({ wrongCredentials: true });
    const blob = blobFile(Buffer.from('secret stuff'));
    const calls: Array<[string, () => Promise<Outcome>]> = [
      ['getEntry', () => b.getEntry(entryKey())],
      ['putEntry', () => b.putEntry(entryKey(), Buffer.from('x'))],
      ['getBlob', async () => (await readBlob(b, blob.key)).r],
      ['putBlob', () => b.putBlob(blob.key, blob.file, blob.size)],
    ];
    for (const [name, call] of calls) {
      const r = await call();
      if (r.ok) assert.unreachable(`${name} with wrong credentials succeeded`);
      const p = (r as Extract<Outcome, { ok: false }>).problem;
      assert.match(p.message, target.wrongCredentials, name);
      assert.is(p.retryable, false, `${name}: refused credentials are not worth a retry`);
      assert.not.ok(p.message.includes(target.wrongSecret), `${name} leaks the secret: ${p.message}`);
    }
    const head = await b.hasBlob(blob.key);
    assert.is(head.ok, false, 'HEAD with wrong credentials is not a plain miss');
  });

  test('a body cut short on the way is detected: a failure, never the partial bytes', async () => {
    const b = await fresh();
    const key = entryKey();
    const entry = randomBytes(200_000);
    const blob = blobFile(randomBytes(1024 * 1024));
    assert.ok((await b.putEntry(key, entry)).ok);
    assert.ok((await b.putBlob(blob.key, blob.file, blob.size)).ok);
    const direct = served.remote({ prefix: `conf-${process.pid}-${n}`, timeoutMs: 10_000 });
    const proxy = await startTruncatingProxy(direct.settings.endpoint ?? new URL(direct.settings.url).origin);
    try {
      // The same namespace, through the proxy.
      const cut = await open(
        served.remote({ prefix: `conf-${process.pid}-${n}`, timeoutMs: 10_000, base: proxy.url }),
      );
      const e = await cut.getEntry(key);
      assert.is(e.ok, false, `a truncated entry was accepted (${e.ok && e.value?.length} bytes)`);
      const got = await readBlob(cut, blob.key);
      assert.is(got.r.ok, false, `a truncated blob was accepted (${got.bytes?.length} bytes)`);
      // Not a stop: a broken transfer is worth trying again.
      assert.ok(!got.r.ok && got.r.problem.retryable);
    } finally {
      await proxy.stop();
    }
  });

  test('many keys at once: concurrent puts, then concurrent gets, each with its own bytes', async () => {
    const b = await fresh();
    const items = Array.from({ length: 48 }, (_, i) => ({
      key: entryKey(),
      entry: randomBytes(100 + i * 37),
      blob: blobFile(randomBytes(5000 + i * 1013)),
    }));
    const puts = await Promise.all(
      items.flatMap((it) => [
        b.putEntry(it.key, it.entry),
        b.putBlob(it.blob.key, it.blob.file, it.blob.size),
      ]),
    );
    assert.ok(
      puts.every((r) => r.ok),
      JSON.stringify(puts.filter((r) => !r.ok)),
    );
    const gets = await Promise.all(
      items.map(async (it) => ({
        it,
        entry: await b.getEntry(it.key),
        blob: await readBlob(b, it.blob.key),
      })),
    );
    for (const { it, entry, blob } of gets) {
      assert.ok(entry.ok && entry.value?.equals(it.entry), `entry ${it.key}`);
      assert.ok(blob.r.ok && blob.r.value, `blob ${it.blob.key}`);
      assert.is(blob.bytes ? sha256(blob.bytes) : '', it.blob.key);
    }
  });

  test('end to end: machine A fills the remote with taskvault run, machine B gets a remote hit with identical outputs and stdout', async () => {
    const { config, env } = served.cli(`e2e-${process.pid}`);
    const a = project(config);
    const b = project(config);
    const first = await runGen(a, env, ['--stdin=ignore']);
    assert.is(first.code, 0, first.err);
    assert.is(timesRan(a), 1);
    assert.match(first.err, /taskvault: miss/);
    assert.equal(warnings(first), []);

    const second = await runGen(b, env, ['--stdin=ignore']);
    assert.is(second.code, 0, second.err);
    assert.equal(warnings(second), []);
    assert.match(second.err, /taskvault: hit \(remote\)/);
    assert.is(timesRan(b), 0, 'machine B did not run the command');
    assert.ok(second.stdout.equals(first.stdout), 'stdout is byte-identical');
    assert.equal(readTreeSnapshot(join(b, 'out')), readTreeSnapshot(join(a, 'out')), 'outputs are identical');
  });

  /** A machine of the team: its own clone and cache dir, this remote, plus `extra` env. */
  const machine = (prefix: string, extra: Record<string, string> = {}, base?: string) => {
    const { config, env } = served.cli(prefix, base);
    return { dir: project(config), env: { ...env, ...extra } };
  };
  // --stdin=ignore: on a loaded machine the test's closed stdin can arrive after the 100 ms 'auto' waits.
  const run = (
    m: { dir: string; env: Record<string, string | undefined> },
    env: Record<string, string> = {},
  ) => runGen(m.dir, { ...m.env, ...env }, ['--stdin=ignore']);

  test('read-only: a read-only machine gets remote hits and never writes to the remote', async () => {
    const prefix = `ro-${process.pid}`;
    const reader = machine(prefix, { TASKVAULT_REMOTE_READ_ONLY: '1' });
    const r = await run(reader);
    assert.is(r.code, 0, r.err);
    assert.equal(warnings(r), []);
    assert.is(timesRan(reader.dir), 1);
    const later = machine(prefix);
    const l = await run(later);
    assert.is(timesRan(later.dir), 1, 'the read-only machine wrote to the remote');
    assert.match(l.err, /taskvault: miss/);
    const again = machine(prefix, { TASKVAULT_REMOTE_READ_ONLY: '1' });
    const a = await run(again);
    assert.match(a.err, /hit \(remote\)/, 'a read-only machine reads');
    assert.is(timesRan(again.dir), 0);
  });

  test('signing: the right key hits; a wrong key or a missing signature misses with one warning', async () => {
    const prefix = `signed-${process.pid}`;
    const key = { TASKVAULT_REMOTE_SIGNATURE_KEY: 'team-secret-1' };
    const up = await run(machine(prefix, key));
    assert.is(up.code, 0, up.err);
    assert.equal(warnings(up), []);

    const good = machine(prefix, key);
    const g = await run(good);
    assert.match(g.err, /hit \(remote\)/);
    assert.equal(warnings(g), []);
    assert.is(timesRan(good.dir), 0);

    const bad = machine(prefix, {
      TASKVAULT_REMOTE_SIGNATURE_KEY: 'someone-else',
      TASKVAULT_REMOTE_READ_ONLY: '1',
    });
    const b = await run(bad);
    assert.is(b.code, 0, b.err);
    assert.is(timesRan(bad.dir), 1, 'a bad signature is a miss: the command runs');
    assert.is(warnings(b).length, 1, b.err);
    assert.match(warnings(b)[0]!, /bad signature|x-artifact-tag/);

    const unsignedPrefix = `unsigned-${process.pid}`;
    assert.is((await run(machine(unsignedPrefix))).code, 0);
    const strict = machine(unsignedPrefix, { ...key, TASKVAULT_REMOTE_READ_ONLY: '1' });
    const m = await run(strict);
    assert.is(m.code, 0, m.err);
    assert.is(timesRan(strict.dir), 1);
    assert.is(warnings(m).length, 1, m.err);
    assert.match(warnings(m)[0]!, /not signed/);
  });

  test('write-once: a machine with another signature key re-runs, and the trusted entry stays', async () => {
    const prefix = `once-${process.pid}`;
    const trusted = { TASKVAULT_REMOTE_SIGNATURE_KEY: 'team-secret-1' };
    assert.is((await run(machine(prefix, trusted))).code, 0);
    // Not read-only: it runs the task (the entry is not its to trust) and then tries to upload.
    const intruder = machine(prefix, { TASKVAULT_REMOTE_SIGNATURE_KEY: 'pr-build-key' });
    const i = await run(intruder);
    assert.is(i.code, 0, i.err);
    assert.is(timesRan(intruder.dir), 1);
    const reader = machine(prefix, trusted);
    const r = await run(reader);
    assert.match(r.err, /hit \(remote\)/, `the trusted entry was replaced:\n${r.err}`);
    assert.equal(warnings(r), []);
    assert.is(timesRan(reader.dir), 0);
  });

  test('server down or silent: the command runs, its exit code passes through, one warning, within the default timeout', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const silent = await startSilent();
    try {
      // What the run costs with no remote at all, on this machine now: the remote adds to that.
      const alone = project();
      const t0 = performance.now();
      await runGen(alone, {}, ['--stdin=ignore']);
      const baseline = performance.now() - t0;
      // The default timeout (5 s) is what a hung remote may add; 4 s more is start-up noise on a
      // loaded machine (main's 10 s default added 11.8 s here).
      for (const [what, base, budget] of [
        ['down', dead, 5000 + 4000],
        ['silent', silent.url, 5000 + 4000],
      ] as const) {
        const m = machine(`down-${process.pid}`, {}, base);
        const started = performance.now();
        const r = await run(m, { GEN_EXIT: '3' });
        const ms = performance.now() - started - baseline;
        assert.is(r.code, 3, `${what}: the exit code passes through\n${r.err}`);
        assert.is(timesRan(m.dir), 1, what);
        assert.is(warnings(r).length, 1, `${what}: one warning\n${r.err}`);
        assert.ok(ms < budget, `${what}: the remote added ${Math.round(ms)} ms (budget ${budget})`);
        assert.ok(readTreeSnapshot(join(m.dir, 'out')), 'the outputs are there');
      }
    } finally {
      await silent.stop();
    }
  });

  test('hostile entries (a ../ path, an absolute symlink): never trusted, never written, one warning each', async () => {
    const a = machine(`hostile-src-${process.pid}`);
    assert.is((await run(a)).code, 0);
    const dry = await runCli(['run', 'gen', '--dry-run', '--stdin=ignore'], { cwd: a.dir, env: a.env });
    const key = dry.out.trim().split(' ')[0]!;
    const original = await open(served.remote({ prefix: `hostile-src-${process.pid}`, timeoutMs: 10_000 }));
    const got = await original.getEntry(key);
    assert.ok(got.ok && got.value, `the entry ${key} is on the remote`);
    const doc = JSON.parse(got.ok ? got.value!.toString() : '{}');
    const cases: Array<[string, (outputs: Array<Record<string, unknown>>) => void]> = [
      [
        'dotdot',
        (outputs) => {
          outputs.find((o) => o.type === 'file')!.path = '../escaped.txt';
        },
      ],
      [
        'absolute-link',
        (outputs) => {
          outputs.find((o) => o.type === 'symlink')!.target = '/etc/passwd';
        },
      ],
    ];
    for (const [what, poison] of cases) {
      const prefix = `hostile-${what}-${process.pid}`;
      const bad = structuredClone(doc);
      poison(bad.entry.outputs);
      const target = await open(served.remote({ prefix, timeoutMs: 10_000 }));
      assert.ok((await target.putEntry(key, Buffer.from(JSON.stringify(bad)))).ok);
      const b = machine(prefix, { TASKVAULT_REMOTE_READ_ONLY: '1' });
      const r = await run(b);
      assert.is(r.code, 0, r.err);
      assert.is(timesRan(b.dir), 1, `${what}: the command ran`);
      assert.is(warnings(r).length, 1, `${what}: one warning\n${r.err}`);
      assert.match(warnings(r)[0]!, /not used/);
      assert.not.ok(existsSync(join(b.dir, '..', 'escaped.txt')), `${what}: written outside the project`);
      assert.is(
        readlinkSync(join(b.dir, 'out', 'latest.txt')),
        'result.txt',
        `${what}: the link is the run's own`,
      );
    }
  });

  test.run();
}

/**
 * `taskvault serve --stdio` (docs/serve-protocol.md), spoken to by hand: the built CLI as a child
 * process on a real cache in a temp dir, and the frame reader on bytes split every which way.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame, type Frame, type Header, readFrames } from '../../src/serve/frames.js';
import { CLI, cliEnv, REPO, runCli, tempDir, writeTree } from '../support/helpers.js';

type Sdk = typeof import('../../src/index.js');
const { Client }: Sdk = await import(pathToFileURL(join(REPO, 'dist', 'index.js')).href);

/** A serve process and a way to send a frame and wait for the reply to it. */
class Serve {
  readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private readonly frames: AsyncGenerator<Frame>;
  readonly warnings: string[] = [];
  stderr = '';
  private next = 1;
  private readonly closed: Promise<number | null>;

  constructor(cwd: string, args: string[] = []) {
    this.child = spawn(process.execPath, [CLI, 'serve', '--stdio', ...args], {
      cwd,
      env: cliEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr.on('data', (d: Buffer) => {
      this.stderr += d;
    });
    this.frames = readFrames(this.child.stdout);
    this.closed = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
  }

  send(header: Header, body?: Uint8Array): number {
    const id = typeof header.id === 'number' ? header.id : this.next++;
    this.child.stdin.write(encodeFrame({ id, ...header }, body));
    return id;
  }

  /** The next reply (warnings collected on the way). */
  async reply(): Promise<Frame> {
    for (;;) {
      const r = await this.frames.next();
      if (r.done) throw new Error(`serve ended: ${this.stderr}`);
      if ('warning' in r.value.header) this.warnings.push(String(r.value.header.warning));
      else return r.value;
    }
  }

  async call(header: Header, body?: Uint8Array): Promise<Frame> {
    const id = this.send(header, body);
    const r = await this.reply();
    assert.is(r.header.id, id);
    return r;
  }

  /** Ends stdin; reads (and drops) what is still sent; the exit code. */
  async end(): Promise<number | null> {
    this.child.stdin.end();
    try {
      while (!(await this.frames.next()).done) {
        // replies after the end are not looked at
      }
    } catch {
      // a broken tail of output: the exit code says the rest
    }
    return this.closed;
  }
}

function project(): string {
  return writeTree(tempDir('tv-serve-'), { '.git/HEAD': 'ref: refs/heads/main\n', 'data.csv': 'a,b\n1,2\n' });
}

test('frames split at every byte boundary are read back whole and in order', async () => {
  const frames = [
    encodeFrame({ id: 1, op: 'hello' }),
    encodeFrame({ id: 2, op: 'get' }, Buffer.from('some bytes')),
    encodeFrame({ id: 3, chunk: 'input' }, randomBytes(300)),
    encodeFrame({ id: 4, op: 'x' }, new Uint8Array(0)),
  ];
  const all = Buffer.concat(frames);
  for (const step of [1, 2, 3, 7, 64, all.length]) {
    const pieces: Buffer[] = [];
    for (let i = 0; i < all.length; i += step) pieces.push(all.subarray(i, i + step));
    const got: Frame[] = [];
    for await (const f of readFrames(pieces)) got.push(f);
    assert.equal(
      got.map((f) => f.header.id),
      [1, 2, 3, 4],
    );
    assert.is(got[1]!.body.toString(), 'some bytes');
    assert.is(got[2]!.body.length, 300);
    assert.is(got[3]!.body.length, 0);
    assert.is(got[3]!.header.body, undefined);
  }
});

test('a stream that ends inside a frame, or a header that is not a JSON object, is an error', async () => {
  const whole = encodeFrame({ id: 1 }, Buffer.from('abc'));
  const read = async (chunks: Buffer[]) => {
    for await (const _ of readFrames(chunks)) {
      // only the error matters
    }
  };
  for (const cut of [2, 6, whole.length - 1]) {
    try {
      await read([whole.subarray(0, cut)]);
      assert.unreachable(`cut at ${cut}`);
    } catch (e) {
      assert.match((e as Error).message, /ended inside a frame/);
    }
  }
  const notObject = Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('[]')]);
  try {
    await read([notObject]);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /not a JSON object/);
  }
});

test('hello, save and get (bytes, path, streamed chunks) agree with the CLI and the TS Client', async () => {
  const dir = project();
  const s = new Serve(dir);
  const hello = await s.call({ op: 'hello' });
  assert.is(hello.header.ok, true);
  assert.is(hello.header.protocol, 1);
  assert.is(hello.header.root, dir);
  assert.is(hello.header.cacheDir, join(dir, '.taskvault/cache'));

  const csv = readFileSync(join(dir, 'data.csv'));
  const out = Buffer.from('{"rows":1}');
  const saved = await s.call(
    {
      op: 'save',
      task: 'agg',
      input: { bytes: csv.length },
      output: { bytes: out.length },
      durationMs: 1500,
    },
    Buffer.concat([csv, out]),
  );
  assert.is(saved.header.ok, true, JSON.stringify(saved.header));
  const key = saved.header.key as string;
  assert.match(key, /^[0-9a-f]{64}$/);

  // The same input by path and as chunk frames: the same key, the value in the reply's body.
  const byPath = await s.call({ op: 'get', task: 'agg', input: { path: join(dir, 'data.csv') } });
  assert.equal(
    { ...byPath.header, body: undefined },
    {
      id: byPath.header.id,
      ok: true,
      hit: true,
      key,
      size: out.length,
      encoding: 'raw',
      until: byPath.header.until,
      body: undefined,
    },
  );
  assert.ok(
    Math.abs((byPath.header.until as number) - Date.now() - 7 * 86_400_000) < 60_000,
    'the default TTL',
  );
  assert.ok(byPath.body.equals(out));
  const id = s.send({ op: 'get', task: 'agg', input: { stream: true } });
  s.send({ id, chunk: 'input' }, csv.subarray(0, 3));
  s.send({ id, chunk: 'input' }, csv.subarray(3));
  s.send({ id, chunk: 'input', end: true });
  const streamed = await s.reply();
  assert.is(streamed.header.key, key);
  assert.ok(streamed.body.equals(out));

  // to a file; a miss writes nothing.
  const toFile = await s.call(
    { op: 'get', task: 'agg', input: { bytes: csv.length }, toFile: join(dir, 'o.json') },
    csv,
  );
  assert.is(toFile.header.hit, true);
  assert.is(toFile.body.length, 0);
  assert.is(readFileSync(join(dir, 'o.json'), 'utf8'), '{"rows":1}');
  const miss = await s.call({ op: 'get', task: 'other', input: { bytes: 1 } }, Buffer.from('x'));
  assert.equal(
    { ...miss.header, key: undefined },
    { id: miss.header.id, ok: true, hit: false, key: undefined },
  );

  const stats = await s.call({ op: 'stats' });
  assert.is(await s.end(), 0);
  const cliStats = JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out);
  assert.equal(stats.header.stats, cliStats);
  assert.is(cliStats.hits, 3);
  assert.is(cliStats.misses, 1);

  // The CLI and the TS SDK find what the service saved.
  const got = await runCli(['cache', 'get', 'agg', 'data.csv', 'cli.json'], { cwd: dir });
  assert.is(got.code, 0, got.err);
  assert.is(readFileSync(join(dir, 'cli.json'), 'utf8'), '{"rows":1}');
  const tv = new Client({ cwd: dir });
  const r = await tv.getCachedResult('agg', csv);
  assert.ok(r.hit && r.key === key);
  await tv.close();
});

test('memoize arguments: bytes placeholders are keyed as the TS memoize keys them', async () => {
  const dir = project();
  const tv = new Client({ cwd: dir });
  const train = tv.memoize('train', (hp: { lr: number; epochs: number }, data: Uint8Array) => ({
    loss: data.length / hp.epochs,
    lr: hp.lr,
  }));
  await train({ lr: 0.5, epochs: 2 }, new Uint8Array([1, 2, 3, 4]));
  await tv.close();

  const s = new Serve(dir);
  // Keys in another order and a float written as 2.0: still the same canonical JSON.
  const memo = [{ epochs: 2.0, lr: 0.5 }, { $bytes: 0 }];
  const r = await s.call(
    { op: 'get', task: 'train', input: { memo, blobs: [{ bytes: 4 }] } },
    Buffer.from([1, 2, 3, 4]),
  );
  assert.is(r.header.hit, true, JSON.stringify(r.header));
  assert.is(r.header.encoding, 'json');
  assert.equal(JSON.parse(r.body.toString()), { loss: 2, lr: 0.5 });
  // A file argument is keyed by its content too: the same content by path and by bytes differ
  // ($file vs $bytes), but two paths with the same content agree.
  writeFileSync(join(dir, 'a.bin'), 'same');
  writeFileSync(join(dir, 'b.bin'), 'same');
  const save = await s.call(
    {
      op: 'save',
      task: 'f',
      input: { memo: [{ $file: 0 }], blobs: [{ path: join(dir, 'a.bin') }] },
      output: { bytes: 2 },
    },
    Buffer.from('ok'),
  );
  assert.is(save.header.ok, true, JSON.stringify(save.header));
  const viaB = await s.call({
    op: 'get',
    task: 'f',
    input: { memo: [{ $file: 0 }], blobs: [{ path: join(dir, 'b.bin') }] },
  });
  assert.is(viaB.header.key, save.header.key);
  assert.is(viaB.body.toString(), 'ok');
  assert.is(await s.end(), 0);
});

test('chunks sent right behind their request reach it while it still reads the value before', async () => {
  // The input names a file, hashed with file I/O before the handler comes to the output: the
  // output's chunks, written in the same breath, must wait for it rather than be dropped.
  const dir = project();
  writeFileSync(join(dir, 'big.bin'), randomBytes(8 << 20));
  const s = new Serve(dir);
  const out = randomBytes(3000);
  const frames = [
    encodeFrame({
      id: 1,
      op: 'save',
      task: 'f',
      input: { memo: [{ $file: 0 }], blobs: [{ path: join(dir, 'big.bin') }] },
      output: { stream: true },
    }),
    encodeFrame({ id: 1, chunk: 'output' }, out.subarray(0, 1000)),
    encodeFrame({ id: 1, chunk: 'output' }, out.subarray(1000)),
    encodeFrame({ id: 1, chunk: 'output', end: true }),
  ];
  s.child.stdin.write(Buffer.concat(frames));
  const saved = await s.reply();
  assert.is(saved.header.ok, true, JSON.stringify(saved.header));
  const got = await s.call({
    op: 'get',
    task: 'f',
    input: { memo: [{ $file: 0 }], blobs: [{ path: join(dir, 'big.bin') }] },
  });
  assert.ok(got.body.equals(out), `stored ${got.body.length} bytes of ${out.length}`);
  assert.is(await s.end(), 0);
});

test('chunks of a value the request does not read as a stream never hold up the requests after it', async () => {
  const s = new Serve(project());
  const chunks = (id: number, name: string) => [
    ...Array.from({ length: 8 }, () => encodeFrame({ id, chunk: name }, randomBytes(100))),
    encodeFrame({ id, chunk: name, end: true }),
  ];
  // Memoize arguments marked as a stream too, an output for a get: malformed, but each is one
  // failed or answered request, not a service that stops reading.
  s.child.stdin.write(
    Buffer.concat([
      encodeFrame({
        id: 1,
        op: 'save',
        task: 'm',
        input: { memo: [1], stream: true },
        output: { stream: true },
      }),
      ...chunks(1, 'input'),
      ...chunks(1, 'output'),
      encodeFrame({ id: 2, op: 'get', task: 'g', input: { stream: true }, output: { stream: true } }),
      ...chunks(2, 'output'),
      ...chunks(2, 'input'),
      encodeFrame({ id: 3, op: 'hello' }),
    ]),
  );
  const ids: unknown[] = [];
  const replies = (async () => {
    for (let i = 0; i < 3; i++) ids.push((await s.reply()).header.id);
  })();
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((r) => (timer = setTimeout(() => r('stalled'), 10_000)));
  const first = await Promise.race([replies, stalled]);
  clearTimeout(timer);
  if (first === 'stalled') s.child.kill();
  assert.equal(ids.sort(), [1, 2, 3], 'every request answered');
  assert.is(await s.end(), 0);
});

test('hits served from memory are booked like get hits, without a reply; bad ones warn', async () => {
  const dir = project();
  const s = new Serve(dir);
  const input = Buffer.from('in');
  const saved = await s.call(
    { op: 'save', task: 'agg', input: { bytes: 2 }, output: { bytes: 3 }, durationMs: 100 },
    Buffer.concat([input, Buffer.from('out')]),
  );
  const key = saved.header.key as string;
  s.send({
    op: 'hits',
    hits: [
      ['agg', key],
      ['agg', key],
      ['agg', 'f'.repeat(64)],
      ['other', key],
    ],
  });
  s.send({ op: 'hits', hits: 'nope' });
  const stats = await s.call({ op: 'stats' });
  assert.is(
    stats.header.stats && (stats.header.stats as { hits: number }).hits,
    2,
    'unknown keys and tasks skipped',
  );
  assert.equal(s.warnings, ['hits served from memory were not booked: hits must be a list of [task, key]']);
  assert.is(await s.end(), 0);
  const audit = (await runCli(['audit'], { cwd: dir })).out;
  assert.is(audit.match(/ HIT get task=agg .*via=sdk/g)?.length, 2, audit);
  const ls = JSON.parse((await runCli(['ls', '--json'], { cwd: dir })).out) as Array<{ hits: number }>;
  assert.is(ls[0]!.hits, 2);
});

test('requests run concurrently; a failed request drops its chunks and the service carries on', async () => {
  const dir = project();
  const s = new Serve(dir);
  // A save whose input file is missing fails before it reads its streamed output...
  const bad = s.send({ op: 'save', task: 't', input: { path: join(dir, 'nope') }, output: { stream: true } });
  for (let i = 0; i < 20; i++) s.send({ id: bad, chunk: 'output' }, randomBytes(64 * 1024));
  s.send({ id: bad, chunk: 'output', end: true });
  const failed = await s.reply();
  assert.is(failed.header.ok, false);
  assert.equal(failed.header.error, {
    type: 'TaskVaultError',
    reason: 'input',
    message: `cannot read input file ${join(dir, 'nope')}: ENOENT: no such file or directory, stat '${join(dir, 'nope')}' (check the path)`,
  });
  // ...and later requests are answered.
  const after = await s.call({ op: 'stats' });
  assert.is(after.header.ok, true);
  const unknown = await s.call({ op: 'frobnicate' });
  assert.equal(unknown.header.error, { type: 'ProtocolError', message: 'unknown op "frobnicate"' });
  const noTask = await s.call({ op: 'get', input: { bytes: 0 } });
  assert.equal(noTask.header.error, { type: 'ProtocolError', message: 'task must be a non-empty string' });
  assert.is(await s.end(), 0);
  assert.is(s.stderr, '');
});

test('a client that goes away mid-stream stores nothing, and the service exits', async () => {
  const dir = project();
  const s = new Serve(dir);
  assert.is((await s.call({ op: 'stats' })).header.ok, true);
  const id = s.send(
    { op: 'save', task: 'cut', input: { bytes: 2 }, output: { stream: true } },
    Buffer.from('in'),
  );
  s.send({ id, chunk: 'output' }, randomBytes(100_000));
  assert.is(await s.end(), 0);
  const stats = JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out);
  assert.is(stats.entries, 0);
  assert.equal(readdirSync(join(dir, '.taskvault/cache/tmp')), []);
});

test('bytes that are not frames: one line on stderr and a non-zero exit', async () => {
  const dir = project();
  const s = new Serve(dir);
  s.child.stdin.write('GET / HTTP/1.1\r\n\r\n');
  const code = await s.end();
  assert.is(code, 2);
  assert.match(
    s.stderr,
    /^taskvault: error: serve: bad header length \d+ \(the client broke the protocol\)\n$/,
  );
});

test('serve without --stdio says how to use it', async () => {
  const r = await runCli(['serve'], { cwd: project() });
  assert.is(r.code, 2);
  assert.is(
    r.err,
    'taskvault: error: serve needs --stdio (stdin/stdout is the only transport: taskvault serve --stdio)\n',
  );
});

test.run();

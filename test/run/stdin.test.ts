/**
 * `taskvault run` and the command's stdin: the built CLI, real pipes (bash pipelines, a child
 * process holding a pipe open), real files, real LMDB.
 */

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STDIN_WAIT_MS } from '../../src/runner/stdin.js';
import { CLI, cliEnv, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

/** A bash script run in `dir`, where `$TV` is the CLI. */
const sh = (dir: string, script: string) =>
  runProcess('bash', ['-c', script], { cwd: dir, env: { TV: `node ${CLI}` } });

const RUN = '$TV run --inputs in.txt';

function project(): string {
  return writeTree(tempDir(), { 'in.txt': 'x' });
}

test('piped stdin is part of the key: different bytes run again, the same bytes hit', async () => {
  const dir = project();
  const a = await sh(dir, `echo a | ${RUN} -- cat`);
  assert.is(a.out, 'a\n');
  assert.match(a.err, /miss/);
  const b = await sh(dir, `echo b | ${RUN} -- cat`);
  assert.is(b.out, 'b\n', 'not the bytes of the first run');
  assert.match(b.err, /miss/);
  const again = await sh(dir, `echo a | ${RUN} -- cat`);
  assert.is(again.out, 'a\n');
  assert.match(again.err, /hit/);
  assert.is(again.code, 0);
});

test('an empty pipe, /dev/null and a closed stdin share the key of a run without stdin', async () => {
  const dir = project();
  const first = await sh(dir, `${RUN} -- echo same < /dev/null`);
  assert.match(first.err, /miss/);
  assert.match((await sh(dir, `true | ${RUN} -- echo same`)).err, /hit/, 'empty pipe');
  assert.match((await runCli(['run', '--inputs', 'in.txt', '--', 'echo', 'same'], { cwd: dir })).err, /hit/);
  assert.match((await sh(dir, `${RUN} -- echo same <&-`)).err, /hit/, 'closed stdin');
  assert.match((await sh(dir, `${RUN} --stdin=ignore -- echo same < /dev/null`)).err, /hit/);
});

test('a file as stdin is keyed by its content', async () => {
  const dir = project();
  writeFileSync(join(dir, 'data.txt'), 'one\n');
  assert.is((await sh(dir, `${RUN} -- cat < data.txt`)).out, 'one\n');
  const hit = await sh(dir, `${RUN} -- cat < data.txt`);
  assert.is(hit.out, 'one\n');
  assert.match(hit.err, /hit/);
  writeFileSync(join(dir, 'data.txt'), 'two\n');
  const changed = await sh(dir, `${RUN} -- cat < data.txt`);
  assert.is(changed.out, 'two\n');
  assert.match(changed.err, /miss/);
});

test('the command reads exactly the bytes that were piped (binary, no newline at the end)', async () => {
  const dir = project();
  const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 256));
  writeFileSync(join(dir, 'blob.bin'), bytes);
  for (const expect of ['miss', 'hit']) {
    const r = await sh(dir, `cat blob.bin | ${RUN} -- sha256sum`);
    const want = (await runProcess('sha256sum', ['blob.bin'], { cwd: dir })).out.split(' ')[0];
    assert.is(r.out.split(' ')[0], want);
    assert.match(r.err, new RegExp(expect));
  }
});

test('a pipe whose first bytes come late runs uncached, with the late bytes, every time', async () => {
  const dir = project();
  for (let i = 0; i < 2; i++) {
    const r = await sh(dir, `(sleep 2; echo late) | ${RUN} -- cat`);
    assert.is(r.out, 'late\n');
    assert.is(r.code, 0);
    assert.match(r.err, /cache skipped: stdin is a pipe that sent nothing and did not end within \d+ ms/);
    assert.match(r.err, /--stdin=ignore/);
  }
  // --stdin=key waits for the end instead, and caches.
  assert.match((await sh(dir, `(sleep 0.3; echo late) | ${RUN} --stdin=key -- cat`)).err, /miss/);
  const hit = await sh(dir, `(sleep 0.3; echo late) | ${RUN} --stdin=key -- cat`);
  assert.is(hit.out, 'late\n');
  assert.match(hit.err, /hit/);
});

test('a pipe that stalls before its end runs uncached and still gets every byte', async () => {
  const dir = project();
  const r = await sh(dir, `(echo early; sleep 4; echo later) | ${RUN} -- cat`);
  assert.is(r.out, 'early\nlater\n');
  assert.match(r.err, /cache skipped: stdin sent 6 bytes, then nothing for \d+ ms before its end/);
});

test('stdin past the size bound runs uncached with a warning; the command gets all of it', async () => {
  const dir = project();
  const r = await sh(dir, `head -c 70000000 /dev/zero | ${RUN} -- wc -c`);
  assert.is(r.out.trim(), '70000000');
  assert.match(r.err, /cache skipped: stdin holds more than 64 MiB/);
  assert.is(r.code, 0);
});

test('the exit code passes through with keyed stdin', async () => {
  const dir = project();
  const r = await sh(dir, `echo in | ${RUN} -- sh -c 'cat; exit 3'; echo "status $?" >&2`);
  assert.is(r.out, 'in\n');
  assert.match(r.err, /status 3/);
});

/**
 * The CLI with its stdin a pipe that another process (`sleep`) holds open and never writes to, as
 * CI runners do; resolves with how long the CLI took, while the pipe is still open.
 */
function withOpenStdin(
  dir: string,
  args: string[],
): Promise<{ ms: number; out: string; err: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const holder = spawn('sleep', ['60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const started = performance.now();
    const cli = spawn(process.execPath, [CLI, ...args], {
      cwd: dir,
      env: cliEnv(),
      stdio: [holder.stdout, 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    cli.stdout.on('data', (d: Buffer) => (out += d));
    cli.stderr.on('data', (d: Buffer) => (err += d));
    const timer = setTimeout(() => cli.kill('SIGKILL'), 20_000);
    cli.on('error', reject);
    cli.on('close', (code) => {
      const ms = performance.now() - started;
      clearTimeout(timer);
      const stillOpen = holder.exitCode === null;
      holder.kill();
      if (!stillOpen) return reject(new Error('the holder of the pipe exited first'));
      resolve({ ms, out, err, code });
    });
  });
}

test('a stdin left open with no data never blocks: uncached after the bound by default, a hit with --stdin=ignore', async () => {
  const dir = project();
  const args = ['run', '--inputs', 'in.txt', '--', 'echo', 'built'];
  // A plain run (stdin at its end) caches the result.
  assert.match((await runCli(args, { cwd: dir })).err, /miss/);

  const open = await withOpenStdin(dir, args);
  assert.is(open.out, 'built\n');
  assert.is(open.code, 0);
  assert.match(open.err, /cache skipped: stdin is a pipe that sent nothing and did not end within 100 ms/);
  assert.ok(open.ms < 10_000, `took ${open.ms} ms with the pipe open`);

  const ignoring = await withOpenStdin(dir, ['run', '--stdin=ignore', ...args.slice(1)]);
  assert.is(ignoring.out, 'built\n');
  assert.match(ignoring.err, /hit/);
  assert.ok(ignoring.ms < 10_000, `took ${ignoring.ms} ms`);

  // The wait the default allows, against the hit that does not wait at all: the difference is the
  // bound (plus the command's run), not the pipe's lifetime.
  assert.ok(open.ms - ignoring.ms < STDIN_WAIT_MS + 3_000, `${open.ms} vs ${ignoring.ms} ms`);
});

test('stdin in the config: top-level and per task, validated', async () => {
  const dir = writeTree(tempDir(), {
    'in.txt': 'x',
    'taskvault.config.json': JSON.stringify({
      stdin: 'ignore',
      tasks: { keyed: { command: 'cat', inputs: ['in.txt'], stdin: 'auto' } },
    }),
  });
  // Top-level 'ignore': not keyed, so the second run serves the first run's bytes (as asked).
  await sh(dir, `echo a | ${RUN} -- cat`);
  assert.is((await sh(dir, `echo b | ${RUN} -- cat`)).out, 'a\n');
  // The task's own 'auto' wins.
  await sh(dir, 'echo a | $TV run keyed');
  assert.is((await sh(dir, 'echo b | $TV run keyed')).out, 'b\n');
  // The flag wins over both.
  assert.is((await sh(dir, `echo c | ${RUN} --stdin=auto -- cat`)).out, 'c\n');

  writeFileSync(
    join(dir, 'taskvault.config.json'),
    JSON.stringify({ tasks: { t: { command: 'cat', stdin: 'yes' } } }),
  );
  const bad = await sh(dir, '$TV run t < /dev/null');
  assert.is(bad.code, 78);
  assert.match(bad.err, /tasks\.t\.stdin must be one of 'auto', 'key', 'ignore' \(got "yes"\)/);
  assert.not.match(bad.err, /\n\s+at /);
});

test('an unknown --stdin mode is a usage error, one line, nothing run', async () => {
  const dir = project();
  const r = await runCli(
    ['run', '--inputs', 'in.txt', '--stdin', 'maybe', '--', 'sh', '-c', 'echo ran > ran.txt'],
    {
      cwd: dir,
    },
  );
  assert.is(r.code, 2);
  assert.match(r.err, /--stdin "maybe" is not a stdin mode/);
  assert.is(r.err.trim().split('\n').length, 1);
});

test.run();

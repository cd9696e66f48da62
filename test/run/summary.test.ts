/** The summary line of a run: what it counts and which causes it names. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

test('the miss summary counts the same files and bytes the hit restores', async () => {
  const dir = writeTree(tempDir(), { 'src/in.txt': 'input' });
  const args = [
    'run',
    '--inputs',
    'src/**',
    '--outputs',
    'out/**',
    '--',
    'sh',
    '-c',
    'mkdir -p out && printf 12345 > out/a && printf 123 > out/b && echo some log output',
  ];
  const miss = await runCli(args, { cwd: dir });
  const hit = await runCli(args, { cwd: dir });
  assert.is(miss.code, 0, miss.err);
  assert.is(hit.stdout.toString('hex'), miss.stdout.toString('hex'));
  assert.match(miss.err, /cached 2 files \(8 B\)/);
  assert.match(hit.err, /restored 2 files \(8 B\)/);
});

test('a cause a warning gave is not repeated by the summary line; a cause without a warning is', async () => {
  const dir = writeTree(tempDir(), { 'not-a-dir': '' });
  const big = await runCli(['run', '--max-entry-size', '1', '--', 'echo', 'hello'], { cwd: dir });
  assert.is(big.code, 0, big.err);
  assert.is(big.err.match(/over the 1 B per-entry limit/g)?.length, 1, big.err);
  assert.match(big.err, /miss .* · not cached\n/);
  const broken = await runCli(['run', '--cache-dir', 'not-a-dir', '--', 'echo', 'x'], { cwd: dir });
  assert.is(broken.code, 0, broken.err);
  assert.is(broken.err.match(/ENOTDIR/g)?.length, 1, broken.err);
  assert.match(broken.err, /ran uncached echo x in \S+\n$/);
  const failed = await runCli(['run', '--', 'sh', '-c', 'exit 4'], { cwd: dir });
  assert.is(failed.code, 4);
  assert.match(failed.err, /not cached: exit code 4 \(use --cache-failures/);
});

test("TaskVault's lines start a line of their own after output cut mid-line; --json keeps the bytes", async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'x' });
  const cmd = ['--inputs', 'in.txt', '--', 'sh', '-c', 'printf "no newline" >&2'];
  const miss = await runCli(['run', ...cmd], { cwd: dir });
  const hit = await runCli(['run', ...cmd], { cwd: dir });
  assert.match(miss.err, /^no newline\ntaskvault: miss \S+ .* cached its logs and exit code\n$/);
  assert.match(hit.err, /^no newline\ntaskvault: hit \S+ .* replayed the logs in /);
  const json = await runCli(['run', '--json', ...cmd], { cwd: dir });
  assert.match(json.err, /^no newline\{"task":/, "a program reading --json gets the command's bytes");
  const ended = await runCli(['run', '--', 'sh', '-c', 'echo ends >&2'], { cwd: dir });
  assert.match(ended.err, /^ends\ntaskvault: miss /, 'no blank line after a line that ended');
});

test.run();

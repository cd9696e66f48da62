/** Acceptance review: what a user meets first (init then run, flag mistakes, spawn errors, summaries). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, runCli, tempDir, writeTree } from '../support/helpers.js';

const oneLine = (s: string) => s.trim().split('\n').length === 1;

test('init then run in a project without a local taskvault install: the config imports this taskvault', async () => {
  const dir = tempDir();
  assert.ok(!existsSync(join(dir, 'node_modules')));
  const init = await runCli(['init'], { cwd: dir });
  assert.is(init.code, 0, init.err);
  // The starter's build task runs `npm run build`; a task added the way a user would is enough here.
  const first = await runCli(['run', 'build', '--dry-run'], { cwd: dir });
  assert.is(first.code, 0, first.err);
  assert.match(first.out, /^[0-9a-f]{64} miss\n$/);
});

test('a .mjs config importing taskvault works without a local install too', async () => {
  const dir = writeTree(tempDir(), {
    'taskvault.config.mjs':
      "import { defineConfig } from 'taskvault';\nexport default defineConfig({ tasks: { hi: { command: ['echo', 'hi'] } } });\n",
  });
  const r = await runCli(['run', 'hi'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'hi\n');
  assert.match(r.err, /miss .* hi · ran in/);
});

test('--inputs / --env given without a value are usage errors, not the glob or variable "true"', async () => {
  const dir = writeTree(tempDir(), { 'src/a.txt': 'a' });
  for (const flag of ['--inputs', '--env', '--outputs']) {
    const r = await runCli(['run', flag, '--', 'echo', 'hi'], { cwd: dir });
    assert.is(r.code, 2, `${flag}: ${r.err}`);
    assert.is(r.out, '', `${flag} must not run the command`);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /^taskvault: error: /);
  }
  const env = await runCli(['run', '--env', '--', 'echo', 'hi'], { cwd: dir });
  assert.match(env.err, /--env needs a value \(e\.g\. --env NODE_ENV\)/);
  // Values still arrive as strings, one or several.
  const ok = await runCli(
    ['run', '--dry-run', '--json', '--env', 'MODE', '--inputs', 'src/**', '--', 'true'],
    {
      cwd: dir,
    },
  );
  assert.is(ok.code, 0, ok.err);
  const fp = (JSON.parse(ok.out) as { fingerprint: { env: Record<string, unknown>; inputs: unknown[] } })
    .fingerprint;
  assert.equal(Object.keys(fp.env), ['MODE']);
  assert.is(fp.inputs.length, 1);
});

test('a command that cannot start: one line per message, 127/126, never cached', async () => {
  const dir = writeTree(tempDir(), { 'data.txt': 'not executable' });
  const missing = await runCli(['run', '--', 'no-such-command-xyz'], { cwd: dir });
  assert.is(missing.code, 127);
  for (const line of missing.err.trim().split('\n')) assert.match(line, /^taskvault: /);
  assert.match(missing.err, /warning: command not found: no-such-command-xyz\n/);
  // The warning gave the cause; the summary does not repeat it.
  assert.match(missing.err, /no-such-command-xyz · ran in \S+ · not cached\n$/);
  assert.is(missing.err.match(/command not found/g)?.length, 1, missing.err);
  const uncached = await runCli(['run', '--no-cache', '--', 'no-such-command-xyz'], { cwd: dir });
  assert.is(uncached.code, 127);
  assert.match(uncached.err, /^taskvault: command not found: no-such-command-xyz\ntaskvault: ran uncached/);
  const noExec = await runCli(['run', '--', './data.txt'], { cwd: dir });
  assert.is(noExec.code, 126);
  assert.match(noExec.err, /permission denied: \.\/data\.txt/);
  assert.is(noExec.err.trim().split('\n').length, 2, noExec.err);
  const badCwd = await runCli(['run', '--cwd', 'nowhere', '--', 'true'], { cwd: dir });
  assert.is(badCwd.code, 127);
  assert.match(badCwd.err, /working directory does not exist: .*nowhere/);
});

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

test('--help: --no-cache is not shown as on by default; explain errors name explain', async () => {
  const dir = tempDir();
  const help = await runCli(['run', '--help'], { cwd: dir });
  assert.match(help.out, /--no-cache +Run without the cache at all \(env TASKVAULT_DISABLE=1\)\n/);
  assert.not.match(help.out, /default: true/);
  const explain = await runCli(['explain'], { cwd: dir });
  assert.is(explain.code, 2);
  assert.match(explain.err, /usage: taskvault explain \[TASK\]/);
});

test('a task whose command runs the same task again stops with one error instead of recursing', async () => {
  const dir = writeTree(tempDir(), {
    'taskvault.config.json': JSON.stringify({
      tasks: {
        // What `"build": "taskvault run build"` in package.json + `command: 'npm run build'` amounts to.
        build: { command: [process.execPath, CLI, 'run', 'build'] },
        // Nesting different tasks is fine.
        leaf: { command: ['echo', 'leaf ran'] },
        ci: { command: [process.execPath, CLI, 'run', 'leaf'] },
      },
    }),
  });
  const r = await runCli(['run', 'build'], { cwd: dir, timeoutMs: 30_000 });
  assert.is(r.signal, null);
  assert.is(r.code, 78, r.err);
  assert.is(r.err.match(/runs itself/g)?.length, 1, r.err);
  assert.match(r.err, /error: task 'build' runs itself: its command starts 'taskvault run build' again/);
  const nested = await runCli(['run', 'ci'], { cwd: dir });
  assert.is(nested.code, 0, nested.err);
  assert.is(nested.out, 'leaf ran\n');
  const again = await runCli(['run', 'ci'], { cwd: dir });
  assert.is(again.out, 'leaf ran\n');
  assert.match(again.err, /hit .* ci/);
});

test('explain takes run\'s policy flags (--ttl decides "expired"); unknown options are named as typed', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'x' });
  const hourAgo = String(Date.now() - 3_600_000);
  const ran = await runCli(['run', '--', 'echo', 'ttl'], { cwd: dir, env: { TASKVAULT_NOW_MS: hourAgo } });
  assert.is(ran.code, 0, ran.err);
  const fresh = await runCli(['explain', '--ttl', '2h', '--max-entry-size', '5MB', '--', 'echo', 'ttl'], {
    cwd: dir,
  });
  assert.is(fresh.code, 0, fresh.err);
  assert.match(fresh.out, /\nwould hit: /);
  const stale = await runCli(['explain', '--ttl', '30m', '--', 'echo', 'ttl'], { cwd: dir });
  assert.is(stale.code, 0, stale.err);
  assert.match(stale.out, /\nwould miss: the entry for this exact state expired/);
  const unknown = await runCli(['ls', '--max-entry-size', '5MB'], { cwd: dir });
  assert.is(unknown.code, 2);
  assert.match(unknown.err, /^taskvault: error: unknown option '--max-entry-size'/);
});

test.run();

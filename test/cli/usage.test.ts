/** CLI usage: flag mistakes, unknown options and empty values are one clear line and exit 2. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

const oneLine = (s: string) => s.trim().split('\n').length === 1;

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

test('--help: --no-cache is not shown as on by default; explain errors name explain', async () => {
  const dir = tempDir();
  const help = await runCli(['run', '--help'], { cwd: dir });
  assert.match(help.out, /--no-cache +Run without the cache at all \(env TASKVAULT_DISABLE=1\)\n/);
  assert.not.match(help.out, /default: true/);
  const explain = await runCli(['explain'], { cwd: dir });
  assert.is(explain.code, 2);
  assert.match(explain.err, /usage: taskvault explain \[TASK\]/);
});

test('boolean flags with a dash do not swallow the task name after them', async () => {
  const dir = writeTree(tempDir(), {
    'taskvault.config.mjs':
      "export default { tasks: { fail: { command: ['sh', '-c', 'echo out; exit 3'], inputs: ['in.txt'] } } };\n",
    'in.txt': 'x',
  });
  const dry = await runCli(['run', '--dry-run', 'fail'], { cwd: dir });
  assert.is(dry.code, 0, dry.err);
  assert.match(dry.out, /^[0-9a-f]{64} miss\n$/);
  const first = await runCli(['run', '--cache-failures', 'fail'], { cwd: dir });
  assert.is(first.code, 3, first.err);
  assert.match(first.err, /miss .* fail/);
  const again = await runCli(['run', '--cache-failures', 'fail'], { cwd: dir });
  assert.is(again.code, 3, again.err);
  assert.match(again.err, /hit .* fail/);
  assert.is(again.out, 'out\n');
  // What follows `--` is the user's command and is passed on exactly as typed.
  const echo = await runCli(['run', '--', 'echo', '--dry-run', '--cache-failures'], { cwd: dir });
  assert.is(echo.out, '--dry-run --cache-failures\n', echo.err);
});

test('an unknown option without a command is a usage error, not help with exit 0', async () => {
  const dir = tempDir();
  for (const [flag, shown] of [
    ['--bogus', '--bogus'],
    ['--bogus-thing', '--bogus-thing'],
    ['-x', '-x'],
  ] as const) {
    const r = await runCli([flag], { cwd: dir });
    assert.is(r.code, 2, `${flag}: ${r.err}`);
    assert.ok(oneLine(r.err), r.err);
    assert.ok(r.err.includes(`unknown option '${shown}'`), r.err);
    assert.is(r.out, '');
  }
  const help = await runCli([], { cwd: dir });
  assert.is(help.code, 0);
  assert.match(help.out, /Usage:/);
});

test('a blank command word is a usage error, not a failed spawn or a cached blank command', async () => {
  const dir = tempDir();
  for (const word of ['', '   ']) {
    const r = await runCli(['run', '--', word], { cwd: dir });
    assert.is(r.code, 2, r.err);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /the command after -- is empty/);
  }
  assert.not.ok(
    existsSync(join(dir, '.taskvault', 'cache', 'hot')) &&
      readdirSync(join(dir, '.taskvault', 'cache', 'hot')).length > 0,
  );
  // An empty argument after the program is an argument like any other.
  const r = await runCli(['run', '--', 'echo', '', 'x'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, ' x\n');
});

test("usage hints name the command that was typed; '--' is suggested only to run", async () => {
  const dir = tempDir();
  const ls = await runCli(['ls', 'extra'], { cwd: dir });
  assert.is(ls.code, 2);
  assert.match(ls.err, /unused args: 'extra' \(see 'taskvault ls --help'\)/);
  const empty = await runCli(['run', '--inputs', '', '--', 'echo'], { cwd: dir });
  assert.is(empty.code, 2);
  assert.match(empty.err, /--inputs needs a non-empty value \(see 'taskvault run --help'\)/);
  const extra = await runCli(['run', 'a', 'b'], { cwd: dir });
  assert.match(extra.err, /put the command after '--'/);
});

test('--env with a space or = in the name is a usage error, not a silently odd key', async () => {
  const dir = tempDir();
  for (const name of ['A B', 'A=1']) {
    const r = await runCli(['run', '--env', name, '--', 'echo', 'x'], { cwd: dir });
    assert.is(r.code, 2, r.err);
    assert.ok(oneLine(r.err), r.err);
    assert.ok(r.err.includes(`--env ${JSON.stringify(name)} is not an environment variable name`), r.err);
    assert.is(r.out, '');
  }
});

test.run();

/** CLI conventions: help, version, usage errors, init, config errors — one line, right exit code. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { linkNodeModules, REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

const oneLine = (s: string) => s.trim().split('\n').length === 1;

test('--help for the program and every command, --version', async () => {
  const dir = tempDir();
  const help = await runCli(['--help'], { cwd: dir });
  assert.is(help.code, 0);
  assert.match(help.out, /run \[task\]/);
  assert.match(help.out, /init/);
  const runHelp = await runCli(['run', '--help'], { cwd: dir });
  assert.match(runHelp.out, /--inputs <glob>/);
  assert.match(runHelp.out, /-- <cmd>/);
  const initHelp = await runCli(['init', '--help'], { cwd: dir });
  assert.match(initHelp.out, /--force/);
  const v = await runCli(['--version'], { cwd: dir });
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  assert.ok(v.out.includes(pkg.version));
});

test('usage errors: unknown flag, unknown command, missing command, command without -- → one line, exit 2', async () => {
  const dir = tempDir();
  for (const args of [['run', '--bogus', '--', 'true'], ['frobnicate'], ['run'], ['run', 'echo', 'hi']]) {
    const r = await runCli(args, { cwd: dir });
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /^taskvault: error: /);
    assert.is(r.out, '');
  }
  const unknownTask = await runCli(['run', 'nosuchtask'], { cwd: dir });
  assert.is(unknownTask.code, 2);
  assert.match(unknownTask.err, /unknown task 'nosuchtask'/);
  assert.ok(oneLine(unknownTask.err));
});

test('config errors name the file and the field, exit 78, no stack trace, cache untouched', async () => {
  const dir = tempDir();
  writeTree(dir, { 'in.txt': 'x' });
  // Cache something first: a bad config must not lose it.
  await runCli(['run', '--inputs', 'in.txt', '--', 'echo', 'cached'], { cwd: dir });
  const cases: Array<[string, string, RegExp]> = [
    [
      'taskvault.config.json',
      '{ "tasks": { "build": { "command": "x", "inputs": "src/**" } } }',
      /taskvault\.config\.json: tasks\.build\.inputs must be an array of strings/,
    ],
    ['taskvault.config.json', '{ "maxSizeGb": "ten" }', /maxSizeGb must be a positive number/],
    [
      'taskvault.config.json',
      '{ "hashAlgorithm": "md5" }',
      /hashAlgorithm must be one of 'blake3', 'sha256'/,
    ],
    [
      'taskvault.config.json',
      '{ "tasks": { "build": { "inputs": [] } } }',
      /tasks\.build\.command is required/,
    ],
    ['taskvault.config.json', '{ "colour": true }', /colour is not a known field/],
    ['taskvault.config.json', '{ "tasks": ', /taskvault\.config\.json:1:12: invalid JSON/],
    [
      'taskvault.config.ts',
      'export default { tasks: { a: { command: 1 } } };',
      /taskvault\.config\.ts: tasks\.a\.command must be a string or a non-empty array/,
    ],
    ['taskvault.config.ts', 'export default { tasks: {', /taskvault\.config\.ts: cannot load/],
    ['taskvault.config.mjs', 'export default 42;', /the default export must be an object/],
  ];
  for (const [name, content, expected] of cases) {
    const d = tempDir();
    writeTree(d, { [name]: content, 'in.txt': 'x' });
    const r = await runCli(['run', '--inputs', 'in.txt', '--', 'echo', 'hi'], { cwd: d });
    assert.is(r.code, 78, `${name} ${content}: ${r.err}`);
    assert.match(r.err, expected);
    assert.ok(oneLine(r.err), r.err);
    assert.not.match(r.err, /\n\s+at /);
  }
  writeFileSync(join(dir, 'taskvault.config.json'), '{ "maxSizeGb": -1 }');
  assert.is((await runCli(['run', '--inputs', 'in.txt', '--', 'echo', 'cached'], { cwd: dir })).code, 78);
  writeFileSync(join(dir, 'taskvault.config.json'), '{}');
  const after = await runCli(['run', '--inputs', 'in.txt', '--', 'echo', 'cached'], { cwd: dir });
  assert.match(after.err, /hit/, 'the entry cached before the bad config is still there');
});

test('bad flag values: invalid TTL and size give one line and exit 2', async () => {
  const dir = tempDir();
  for (const args of [
    ['--ttl', 'soon'],
    ['--max-entry-size', 'big'],
  ]) {
    const r = await runCli(['run', ...args, '--inputs', 'x', '--', 'true'], { cwd: dir });
    assert.is(r.code, 2, r.err);
    assert.ok(oneLine(r.err));
  }
});

test('init writes a working starter config and .gitignore entry, and refuses to overwrite without --force', async () => {
  const dir = tempDir();
  linkNodeModules(dir);
  writeFileSync(join(dir, '.gitignore'), 'node_modules');
  const r = await runCli(['init'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.ok(existsSync(join(dir, 'taskvault.config.ts')));
  assert.is(readFileSync(join(dir, '.gitignore'), 'utf8'), 'node_modules\n.taskvault/\n');
  const again = await runCli(['init'], { cwd: dir });
  assert.is(again.code, 2);
  assert.match(again.err, /already exists.*--force/);
  writeFileSync(join(dir, 'taskvault.config.ts'), '// mine');
  assert.is((await runCli(['init'], { cwd: dir })).code, 2);
  assert.is(readFileSync(join(dir, 'taskvault.config.ts'), 'utf8'), '// mine');
  assert.is((await runCli(['init', '--force'], { cwd: dir })).code, 0);
  assert.is(readFileSync(join(dir, '.gitignore'), 'utf8'), 'node_modules\n.taskvault/\n', 'not added twice');
  // The starter config loads and its task resolves.
  const dry = await runCli(['run', 'build', '--dry-run'], { cwd: dir });
  assert.is(dry.code, 0, dry.err);
  assert.match(dry.out, /^[0-9a-f]{64} miss/);
});

test('invalid input glob gives one line and a non-zero exit without running the command', async () => {
  const dir = tempDir();
  const r = await runCli(['run', '--inputs', '', '--', 'sh', '-c', 'touch ran'], { cwd: dir });
  assert.is.not(r.code, 0);
  assert.ok(oneLine(r.err), r.err);
  assert.not.ok(existsSync(join(dir, 'ran')));
});

test('npx taskvault works inside the repository, and node <bin path> runs the CLI', async () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
    bin: { taskvault: string };
    version: string;
  };
  // npx installs the project into its own cache the first time, which runs its `prepare` script: a
  // rebuild of dist/ under the other test files running at the same time (their CLI then briefly
  // found no bundle). Scripts are not what this checks.
  const npx = await runProcess('npx', ['--no-install', 'taskvault', '--version'], {
    cwd: REPO,
    env: { npm_config_ignore_scripts: 'true' },
  });
  assert.is(npx.code, 0, npx.err);
  assert.ok(npx.out.includes(pkg.version));
  const direct = await runProcess(process.execPath, [join(REPO, pkg.bin.taskvault), '--version'], {
    cwd: REPO,
  });
  assert.ok(direct.out.includes(pkg.version));
});

test('a task named like an Object.prototype member is just an unknown task', async () => {
  const dir = tempDir();
  writeTree(dir, { 'taskvault.config.json': '{ "tasks": {} }' });
  const r = await runCli(['run', 'constructor'], { cwd: dir });
  assert.is(r.code, 2);
  assert.match(r.err, /unknown task 'constructor'/);
});

test.run();

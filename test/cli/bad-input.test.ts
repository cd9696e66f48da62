/**
 * Bad input gets one clear error line (what, where) and an exit code outside the usual range of
 * the wrapped command's codes, never a stack trace; an output glob matching nothing only warns.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXIT_CODES } from '../../src/util/result.js';
import { warnings } from '../support/fault-helpers.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

function oneErrorLine(err: string): string {
  const lines = err.trim().split('\n');
  assert.is(lines.length, 1, `exactly one line, got:\n${err}`);
  assert.match(lines[0]!, /^taskvault: error: /);
  assert.not.match(err, /\n\s+at /);
  return lines[0]!;
}

const cases: Array<[string, Record<string, string>, string[], number, RegExp]> = [
  [
    'JSON config syntax error (file, line and column)',
    { 'taskvault.config.json': '{ "tasks": {\n  "b": }' },
    ['run', 'b'],
    EXIT_CODES.config,
    /taskvault\.config\.json:2:8: invalid JSON: unexpected token '\}'/,
  ],
  [
    'TypeScript config syntax error (file, line and column)',
    { 'taskvault.config.ts': 'export default {\n  tasks: { b: { command: "x" } } ;\n' },
    ['run', 'b'],
    EXIT_CODES.config,
    /taskvault\.config\.ts: cannot load: .* at line 2, column \d+/,
  ],
  [
    'wrong type (file and field named)',
    { 'taskvault.config.json': '{ "tasks": { "b": { "command": "echo", "outputs": "dist" } } }' },
    ['run', 'b'],
    EXIT_CODES.config,
    /taskvault\.config\.json: tasks\.b\.outputs must be an array of strings \(got "dist"\)/,
  ],
  [
    'wrong type in a TypeScript config',
    { 'taskvault.config.ts': 'export default { maxSizeGb: "ten" };\n' },
    ['run', '--', 'true'],
    EXIT_CODES.config,
    /taskvault\.config\.ts: maxSizeGb must be a positive number/,
  ],
  [
    'unknown field',
    { 'taskvault.config.json': '{ "taks": {} }' },
    ['run', '--', 'true'],
    EXIT_CODES.config,
    /taskvault\.config\.json: taks is not a known field/,
  ],
  [
    'unknown task',
    { 'taskvault.config.json': '{ "tasks": { "build": { "command": "true" } } }' },
    ['run', 'biuld'],
    EXIT_CODES['unknown-task'],
    /unknown task 'biuld' \(known tasks: build\)/,
  ],
  ['no command', {}, ['run'], EXIT_CODES.usage, /no command given/],
  ['empty command', {}, ['run', '--', ''], EXIT_CODES.usage, /the command after -- is empty \(usage: /],
  [
    'empty program name',
    {},
    ['run', '--', '', 'x'],
    EXIT_CODES.usage,
    /the program name after -- is empty \("" "x"\)/,
  ],
  [
    'blank shell command',
    {},
    ['run', '--shell', '--', ' '],
    EXIT_CODES.usage,
    /the command after -- is empty/,
  ],
  [
    'env flag that is no variable name',
    {},
    ['run', '--env', 'A B', '--', 'true'],
    EXIT_CODES.usage,
    /--env "A B" is not an environment variable name/,
  ],
  [
    'invalid input glob',
    {},
    ['run', '--inputs', '!', '--', 'true'],
    EXIT_CODES.input,
    /invalid input glob "!"/,
  ],
  ['invalid TTL', {}, ['run', '--ttl', 'soon', '--', 'true'], EXIT_CODES.usage, /invalid TTL "soon"/],
  ['unknown option', {}, ['run', '--frobnicate', '--', 'true'], EXIT_CODES.usage, /unknown option/i],
];

for (const [name, files, args, code, pattern] of cases) {
  test(`${name}: one error line, exit ${code}`, async () => {
    const dir = writeTree(tempDir('tv-badinput-'), files);
    const r = await runCli(args, { cwd: dir });
    assert.is(r.code, code, r.err);
    assert.match(oneErrorLine(r.err), pattern);
    assert.is(r.out, '', 'nothing on stdout');
  });
}

/** A project one level down in a temp dir, so that `..` leads somewhere small. */
function nested(files: Record<string, string> = {}): { outer: string; dir: string } {
  const outer = tempDir('tv-badinput-');
  return { outer, dir: writeTree(join(outer, 'proj'), { 'keep.txt': 'x', ...files }) };
}

test('a working directory outside the project root: one line, exit 2 or config error, nothing run', async () => {
  const { outer, dir } = nested({
    'taskvault.config.json': '{ "tasks": { "b": { "command": "touch ran", "cwd": "../elsewhere" } } }',
  });
  const esc = dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const cwd of ['..', outer]) {
    const r = await runCli(['run', '--cwd', cwd, '--', 'touch', 'ran'], { cwd: dir });
    assert.is(r.code, EXIT_CODES.usage, `--cwd ${cwd}: ${r.err}`);
    assert.match(oneErrorLine(r.err), new RegExp(`--cwd must be inside the project root \\(${esc}\\)$`));
  }
  const task = await runCli(['run', 'b'], { cwd: dir });
  assert.is(task.code, EXIT_CODES.config, task.err);
  assert.match(
    oneErrorLine(task.err),
    /taskvault\.config\.json: tasks\.b\.cwd must be inside the project root/,
  );
  // --config from outside the project: the process's own directory is outside the root.
  const away = await runCli(['run', '--config', join(dir, 'taskvault.config.json'), '--', 'touch', 'ran'], {
    cwd: outer,
  });
  assert.is(away.code, EXIT_CODES.usage, away.err);
  assert.match(oneErrorLine(away.err), /the working directory must be inside the project root/);
  assert.equal(readdirSync(outer), ['proj'], 'nothing ran outside the project');
  assert.not.ok(existsSync(join(dir, 'ran')), 'nothing ran in the project');
});

test('output globs that are absolute or leave the project root: one line before anything runs', async () => {
  const { outer, dir } = nested({
    'taskvault.config.json':
      '{ "tasks": { "b": { "command": "touch ran", "outputs": ["dist/**", "../**"] } } }',
  });
  writeTree(outer, { 'sibling.txt': 's' });
  for (const glob of [join(outer, 'sibling.txt'), '/etc/**']) {
    const r = await runCli(['run', '--outputs', glob, '--', 'touch', 'ran'], { cwd: dir });
    assert.is(r.code, EXIT_CODES.usage, `${glob}: ${r.err}`);
    assert.match(
      oneErrorLine(r.err),
      /--outputs '.*' is an absolute path outside the project root \(.*\) \(outputs are stored and restored inside/,
    );
  }
  for (const glob of ['../**', '../sibling.txt', 'dist/../../x', '!../sibling.txt']) {
    const r = await runCli(['run', '--outputs', 'dist/**', '--outputs', glob, '--', 'touch', 'ran'], {
      cwd: dir,
    });
    assert.is(r.code, EXIT_CODES.usage, `${glob}: ${r.err}`);
    assert.match(oneErrorLine(r.err), /--outputs '.*' reaches outside the project root/);
  }
  const task = await runCli(['run', 'b'], { cwd: dir });
  assert.is(task.code, EXIT_CODES.config, task.err);
  assert.match(
    oneErrorLine(task.err),
    /taskvault\.config\.json: tasks\.b\.outputs: '\.\.\/\*\*' reaches outside/,
  );
  assert.not.ok(existsSync(join(dir, 'ran')), 'nothing ran');

  // '..' that stays inside the root is fine: from a subdirectory, outputs next to it.
  writeTree(dir, { 'sub/in.txt': 'i' });
  const args = [
    'run',
    '--cwd',
    'sub',
    '--outputs',
    '../dist/**',
    '--',
    'sh',
    '-c',
    'mkdir -p ../dist; echo o > ../dist/o.txt',
  ];
  const first = await runCli(args, { cwd: dir });
  assert.is(first.code, 0, first.err);
  rmSync(join(dir, 'dist'), { recursive: true });
  const hit = await runCli(args, { cwd: dir });
  assert.match(hit.err, /\bhit\b/);
  assert.is(readFileSync(join(dir, 'dist/o.txt'), 'utf8'), 'o\n');

  // An absolute glob inside the root ($(CURDIR)/dist/** in a Makefile) is the same as its relative
  // form: the same key, so a hit on what the relative run stored, and the outputs restored.
  const absolute = args.map((a) => (a === '../dist/**' ? join(dir, 'dist/**') : a));
  rmSync(join(dir, 'dist'), { recursive: true });
  const absHit = await runCli(absolute, { cwd: dir });
  assert.is(absHit.code, 0, absHit.err);
  assert.match(absHit.err, /\bhit\b/);
  assert.is(readFileSync(join(dir, 'dist/o.txt'), 'utf8'), 'o\n');
});

test('exit codes of TaskVault itself stay clear of the command range they could be confused with', () => {
  for (const [reason, c] of Object.entries(EXIT_CODES)) {
    if (reason === 'miss' || reason === 'usage' || reason === 'unknown-task') continue; // conventional 1/2
    assert.ok(c > 63 && c < 126, `${reason}: ${c} is a sysexits code, not 1, 2 or 126+`);
  }
});

test('an output glob that matches nothing: a warning, and the command still runs and is cached', async () => {
  const dir = writeTree(tempDir('tv-badinput-'), { 'src/in.txt': 'x' });
  const r = await runCli(
    ['run', '--inputs', 'src/**', '--outputs', 'dist/**', '--', 'sh', '-c', 'echo ran; exit 0'],
    {
      cwd: dir,
    },
  );
  assert.is(r.code, 0);
  assert.is(r.out, 'ran\n');
  const w = warnings(r.err);
  assert.is(w.length, 1);
  assert.match(w[0]!, /output globs 'dist\/\*\*' matched no files/);
  const again = await runCli(
    ['run', '--inputs', 'src/**', '--outputs', 'dist/**', '--', 'sh', '-c', 'echo ran; exit 0'],
    {
      cwd: dir,
    },
  );
  assert.is(again.out, 'ran\n');
  assert.match(again.err, /\bhit\b/);
});

test('an input glob that matches nothing: one warning per such glob, and the command still runs', async () => {
  const dir = writeTree(tempDir('tv-badinput-'), {
    'src/in.txt': 'x',
    'package.json': '{}',
    'lib/.keep': '',
  });
  const cases: Array<[string[], string[]]> = [
    [['scr/**'], ['scr/**']], // the typo that left the key to the command alone
    [['src/**', 'docs/**'], ['docs/**']], // the plain walk
    [['src/**', 'package.json', 'tsconfg.json', '!src/*.snap'], ['tsconfg.json']], // fast-glob
    [['src/**', join(dir, 'nope/*.txt')], [join(dir, 'nope/*.txt')]], // as written, not as rebased
    [['lib/*.ts', 'src/*.txt'], ['lib/*.ts']],
    [['src/**', 'package.json'], []],
  ];
  for (const [inputs, unmatched] of cases) {
    const r = await runCli(['run', ...inputs.flatMap((g) => ['--inputs', g]), '--', 'sh', '-c', 'echo ran'], {
      cwd: dir,
    });
    assert.is(r.code, 0, r.err);
    assert.is(r.out, 'ran\n');
    assert.equal(
      warnings(r.err),
      unmatched.map((g) => `taskvault: warning: input glob '${g}' matched no files`),
      `${inputs}: ${r.err}`,
    );
  }
  // Nothing declared: every file under the directory, however few, is no typo.
  const empty = await runCli(['run', '--', 'true'], { cwd: tempDir('tv-badinput-') });
  assert.equal(warnings(empty.err), []);
});

test('a command that does not exist: 127 like a shell, one line, not cached', async () => {
  const dir = tempDir('tv-badinput-');
  writeFileSync(join(dir, 'in.txt'), 'x');
  const r = await runCli(['run', '--', 'no-such-command-tv'], { cwd: dir });
  assert.is(r.code, 127, r.err);
  assert.match(r.err, /no-such-command-tv/);
  assert.match(r.err, /not cached/);
});

test('a negative value after an option is that value, not an unknown option', async () => {
  const dir = tempDir();
  const ttl = await runCli(['run', '--ttl', '-5', '--', 'echo', 'hi'], { cwd: dir });
  assert.is(ttl.code, EXIT_CODES.usage, ttl.err);
  assert.is(ttl.err, `taskvault: error: invalid TTL "-5" (use seconds or a duration like '2h', '7d')\n`);
  const size = await runCli(['run', '--max-entry-size', '-1', '--', 'echo', 'hi'], { cwd: dir });
  assert.is(size.code, EXIT_CODES.usage, size.err);
  assert.match(size.err, /^taskvault: error: invalid size "-1"/);
  assert.is(ttl.out + size.out, '', 'nothing ran');
  // The command's own arguments are left alone.
  const own = await runCli(['run', '--', 'echo', '--ttl', '-5'], { cwd: dir });
  assert.is(own.code, 0, own.err);
  assert.is(own.out, '--ttl -5\n');
});

test("a lone '-' (stdin/stdout elsewhere) is refused by name, not miscounted", async () => {
  const dir = writeTree(tempDir(), { 'in.csv': 'x' });
  const r = await runCli(['cache', 'get', 't', 'in.csv', '-'], { cwd: dir });
  assert.is(r.code, EXIT_CODES.usage, r.err);
  assert.match(
    r.err,
    /^taskvault: error: '-' \(standard input or output\) is not supported: name a file \(see 'taskvault cache --help'\)\n$/,
  );
  // After --, it is the command's.
  const own = await runCli(['run', '--', 'echo', '-'], { cwd: dir });
  assert.is(own.out, '-\n', own.err);
});

test.run();

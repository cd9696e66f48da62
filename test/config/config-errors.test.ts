/**
 * Config mistakes get one line naming the file and the field (or line and column) and saying what
 * to do, exit 78, and nothing runs: a module without a default export, a misspelt field, a JSON
 * syntax error, an out-of-range number, an empty command, glob or environment variable name.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { jsonSyntaxError } from '../../src/config/json-error.js';
import { EXIT_CODES } from '../../src/util/result.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

/** The whole of stderr when it is exactly one error line (without the `taskvault: error: ` prefix). */
function oneErrorLine(err: string): string {
  const lines = err.trim().split('\n');
  assert.is(lines.length, 1, `exactly one line, got:\n${err}`);
  assert.match(lines[0]!, /^taskvault: error: /);
  assert.not.match(err, /\n\s+at /);
  return lines[0]!.replace(/^taskvault: error: /, '');
}

const task = (fields: Record<string, unknown>): string =>
  JSON.stringify({ tasks: { build: { command: 'echo ran > ran.txt', ...fields } } });

const cases: Array<[string, Record<string, string>, string]> = [
  // no default export
  [
    '.mjs with only a named export',
    { 'taskvault.config.mjs': 'export const a = 1;\n' },
    'taskvault.config.mjs: no default export: export default { tasks: {...} } (or defineConfig(...))',
  ],
  [
    '.ts with only a named export',
    { 'taskvault.config.ts': 'export const a = 1;\n' },
    'taskvault.config.ts: no default export: export default { tasks: {...} } (or defineConfig(...))',
  ],
  [
    'empty .ts',
    { 'taskvault.config.ts': '// nothing yet\n' },
    'taskvault.config.ts: no default export: export default { tasks: {...} } (or defineConfig(...))',
  ],
  // unknown fields come before missing required ones, with a suggestion for a near miss
  [
    'misspelt task field',
    { 'taskvault.config.ts': "export default { tasks: { build: { commnd: 'x' } } };\n" },
    'taskvault.config.ts: tasks.build.commnd is not a known field (did you mean command?)',
  ],
  [
    'misspelt top-level field',
    { 'taskvault.config.json': '{ "maxSizeGB": 5 }' },
    'taskvault.config.json: maxSizeGB is not a known field (did you mean maxSizeGb?)',
  ],
  [
    'misspelt policy field',
    { 'taskvault.config.json': '{ "policies": { "default": { "ttl": "1d" } } }' },
    'taskvault.config.json: policies.default.ttl is not a known field (did you mean ttlSeconds?)',
  ],
  [
    'misspelt field in a task policy',
    { 'taskvault.config.json': task({ policy: { stratgy: 'lru' } }) },
    'taskvault.config.json: tasks.build.policy.stratgy is not a known field (did you mean strategy?)',
  ],
  [
    'unknown field that is no near miss: the known ones are listed',
    { 'taskvault.config.json': '{ "remote": { "url": "http://x", "zzz": 1 } }' },
    'taskvault.config.json: remote.zzz is not a known field (known fields: url, protocol, team, readOnly, token, endpoint, region, timeoutMs)',
  ],
  // JSON syntax errors: file:line:column
  [
    'JSON trailing comma',
    { 'taskvault.config.json': '{\n  "tasks": {\n    "build": { "command": "x", }\n  }\n}\n' },
    'taskvault.config.json:3:32: invalid JSON: expected double-quoted property name (fix the file and retry)',
  ],
  [
    'JSON unexpected token (V8 gives no position)',
    { 'taskvault.config.json': '{\n  "tasks": { "build": { "command": x } }\n}\n' },
    "taskvault.config.json:2:36: invalid JSON: unexpected token 'x' (fix the file and retry)",
  ],
  [
    'JSON cut short',
    { 'taskvault.config.json': '{\n  "tasks": ' },
    'taskvault.config.json:2:12: invalid JSON: unexpected end of JSON input (fix the file and retry)',
  ],
  // numbers are shown
  [
    'negative maxSizeGb',
    { 'taskvault.config.json': '{ "maxSizeGb": -1 }' },
    'taskvault.config.json: maxSizeGb must be a positive number (got -1) (fix the field and retry)',
  ],
  [
    'lowWaterMark over 1',
    { 'taskvault.config.ts': 'export default { lowWaterMark: 1.5 };\n' },
    'taskvault.config.ts: lowWaterMark must be a number in (0, 1] (got 1.5) (fix the field and retry)',
  ],
  [
    'zero timeoutMs',
    { 'taskvault.config.json': '{ "remote": { "url": "http://x", "timeoutMs": 0 } }' },
    'taskvault.config.json: remote.timeoutMs must be a positive number (got 0) (fix the field and retry)',
  ],
  [
    'a number for a boolean',
    { 'taskvault.config.json': task({ cacheFailures: 1 }) },
    'taskvault.config.json: tasks.build.cacheFailures must be true or false (got 1) (fix the field and retry)',
  ],
  // empty commands
  [
    "command ''",
    { 'taskvault.config.json': task({ command: '' }) },
    'taskvault.config.json: tasks.build.command must not be empty (fix the field and retry)',
  ],
  [
    'command of spaces',
    { 'taskvault.config.ts': "export default { tasks: { build: { command: '  ' } } };\n" },
    'taskvault.config.ts: tasks.build.command must not be empty (fix the field and retry)',
  ],
  [
    'command []',
    { 'taskvault.config.json': task({ command: [] }) },
    'taskvault.config.json: tasks.build.command must not be empty (fix the field and retry)',
  ],
  [
    "command ['', 'x']",
    { 'taskvault.config.json': task({ command: ['', 'x'] }) },
    'taskvault.config.json: tasks.build.command[0] (the program to run) must not be empty (fix the field and retry)',
  ],
  // and the lists
  [
    "inputs ['']",
    { 'taskvault.config.json': task({ inputs: [''] }) },
    'taskvault.config.json: tasks.build.inputs[0] must not be empty (got "") (fix the field and retry)',
  ],
  [
    "outputs ['dist/**', '']",
    { 'taskvault.config.json': task({ outputs: ['dist/**', ''] }) },
    'taskvault.config.json: tasks.build.outputs[1] must not be empty (got "") (fix the field and retry)',
  ],
  [
    "env ['A B']",
    { 'taskvault.config.json': task({ env: ['A B'] }) },
    'taskvault.config.json: tasks.build.env[0] must be an environment variable name (got "A B") (fix the field and retry)',
  ],
  [
    "env ['A=1']",
    { 'taskvault.config.json': task({ env: ['NODE_ENV', 'A=1'] }) },
    'taskvault.config.json: tasks.build.env[1] must be an environment variable name (got "A=1") (fix the field and retry)',
  ],
  [
    'a number in a list of strings',
    { 'taskvault.config.json': task({ inputs: ['src/**', 3] }) },
    'taskvault.config.json: tasks.build.inputs[1] must be a string (got 3) (fix the field and retry)',
  ],
];

for (const [name, files, expected] of cases) {
  test(`${name}: one line, exit 78, nothing runs`, async () => {
    const dir = writeTree(tempDir('tv-configerr-'), files);
    const r = await runCli(['run', 'build'], { cwd: dir });
    assert.is(r.code, EXIT_CODES.config, r.err);
    assert.is(oneErrorLine(r.err), expected);
    assert.is(r.out, '');
    assert.not.ok(existsSync(join(dir, 'ran.txt')), 'the command did not run');
  });
}

test('a config without a default export stays an error on the next run (its value is not kept)', async () => {
  const dir = writeTree(tempDir('tv-configerr-'), { 'taskvault.config.ts': 'export const tasks = {};\n' });
  for (let i = 0; i < 2; i++) {
    const r = await runCli(['run', '--', 'true'], { cwd: dir });
    assert.is(r.code, EXIT_CODES.config, r.err);
    assert.match(oneErrorLine(r.err), /^taskvault\.config\.ts: no default export/);
  }
});

test('configs with a default export still load: .ts, .mjs, CommonJS .js and module.exports in .ts', async () => {
  const configs: Record<string, string> = {
    'taskvault.config.ts':
      "export const x = 1;\nexport default { tasks: { build: { command: 'echo ran' } } };\n",
    'taskvault.config.mjs': "export default { tasks: { build: { command: 'echo ran' } } };\n",
    'taskvault.config.js': "module.exports = { tasks: { build: { command: 'echo ran' } } };\n",
    'taskvault.config.mts': "module.exports = { tasks: { build: { command: ['echo', 'ran'] } } };\n",
  };
  for (const [file, source] of Object.entries(configs)) {
    const dir = writeTree(tempDir('tv-configerr-'), { [file]: source, 'in.txt': 'x' });
    const r = await runCli(['run', 'build'], { cwd: dir });
    assert.is(r.code, 0, `${file}: ${r.err}`);
    assert.is(r.out, 'ran\n', file);
  }
});

test('an empty arg after the program and an env name with a dot are fine', async () => {
  const dir = writeTree(tempDir('tv-configerr-'), {
    'taskvault.config.json': JSON.stringify({
      tasks: { build: { command: ['node', '-e', 'console.log(process.argv.length)', ''], env: ['a.b'] } },
    }),
  });
  const r = await runCli(['run', 'build'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, '2\n');
});

test('JSON syntax positions: from the message when V8 gives one, else found by scanning', () => {
  const at = (text: string) => {
    try {
      JSON.parse(text);
    } catch (e) {
      const { line, column, message } = jsonSyntaxError(text, (e as Error).message);
      return `${line}:${column} ${message}`;
    }
    throw new Error(`valid JSON: ${text}`);
  };
  assert.is(at(''), '1:1 unexpected end of JSON input');
  assert.is(at('[1,]'), "1:4 unexpected token ']'");
  assert.is(at('{"a":tru}'), "1:9 unexpected token '}'");
  assert.is(at('{"a":01}'), '1:7 unexpected number');
  assert.is(at('{"a":1} x'), '1:9 unexpected non-whitespace character after JSON');
  assert.is(at('\r\n{\r\n  "a": 1,\r\n  "b": x\r\n}'), "4:8 unexpected token 'x'");
  assert.is(at(`{"a": "${'y'.repeat(200)}", "b": [true, nul]}`), "1:226 unexpected token ']'");
  assert.is(at('{"a": "\\q"}'), '1:9 bad escaped character');
});

test.run();

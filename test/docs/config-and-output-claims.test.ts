/**
 * Statements of README.md and docs/config.md that no other suite pins down: colours, logLevel, salt,
 * config file kinds. Each test checks that the docs still say it, then that the built CLI does it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

const ESC = '\x1b[';

/** The text of a doc with line breaks as spaces, so a statement may wrap. */
const doc = (file: string): string => readFileSync(join(REPO, file), 'utf8').replace(/\s*\n\s*/g, ' ');

test('colours only on a TTY, and never with NO_COLOR', async () => {
  for (const file of ['README.md', 'docs/cli.md'])
    assert.match(
      doc(file),
      /[Cc]olours? appears? only (on|when stderr is) a TTY,? and never with `NO_COLOR`/,
    );
  assert.is(spawnSync('script', ['--version']).status, 0, 'script(1) is needed (bsdutils; .ci installs it)');
  const dir = tempDir();
  writeTree(dir, { 'in.txt': 'x' });
  const cmd = `node ${CLI} run --inputs in.txt -- echo hi`;
  // script(1) gives the CLI a pseudo-terminal; its stderr comes back through script's stdout.
  const tty = await runProcess('script', ['-qec', cmd, '/dev/null'], {
    cwd: dir,
    env: { NO_COLOR: undefined, TERM: 'xterm' },
  });
  assert.ok(tty.out.includes(ESC), `no colour on a TTY: ${JSON.stringify(tty.out)}`);
  const noColor = await runProcess('script', ['-qec', cmd, '/dev/null'], {
    cwd: dir,
    env: { NO_COLOR: '1', TERM: 'xterm' },
  });
  assert.match(noColor.out, /taskvault: hit/, `not a hit under NO_COLOR: ${JSON.stringify(noColor.out)}`);
  assert.not.ok(noColor.out.includes(ESC), 'NO_COLOR must turn colour off');
  const pipe = await runCli(['run', '--inputs', 'in.txt', '--', 'echo', 'hi'], {
    cwd: dir,
    env: { NO_COLOR: undefined },
  });
  assert.match(pipe.err, /taskvault: hit/, `not a hit through a pipe: ${JSON.stringify(pipe.err)}`);
  assert.not.ok(pipe.err.includes(ESC), 'no colour when stderr is not a TTY');
});

test("logLevel 'silent' and 'error' hide the summary line; 'info' shows it", async () => {
  assert.match(doc('docs/config.md'), "logLevel: 'info', // 'silent' | 'error' hide the summary line");
  for (const [level, shown] of [
    ['silent', false],
    ['error', false],
    ['info', true],
  ] as const) {
    const dir = tempDir();
    writeTree(dir, { 'in.txt': 'x', 'taskvault.config.json': JSON.stringify({ logLevel: level }) });
    const r = await runCli(['run', '--inputs', 'in.txt', '--', 'echo', 'hi'], { cwd: dir });
    assert.is(r.out, 'hi\n');
    assert.is(/taskvault: miss/.test(r.err), shown, `${level}: ${r.err}`);
  }
});

test('changing the salt invalidates every entry', async () => {
  assert.match(doc('docs/config.md'), "salt: '', // change it to invalidate every entry");
  const dir = tempDir();
  writeTree(dir, { 'in.txt': 'x', 'taskvault.config.json': JSON.stringify({ salt: 'a' }) });
  const args = ['run', '--inputs', 'in.txt', '--', 'echo', 'hi'];
  assert.match((await runCli(args, { cwd: dir })).err, /miss/);
  assert.match((await runCli(args, { cwd: dir })).err, /hit/);
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify({ salt: 'b' }));
  assert.match((await runCli(args, { cwd: dir })).err, /miss/);
});

test('.mts and .js configs load too', async () => {
  for (const file of ['README.md', 'docs/config.md'])
    assert.match(doc(file), '`taskvault.config.ts` (also `.mts`, `.mjs`, `.js`, `.json`)');
  for (const [name, body] of [
    [
      'taskvault.config.mts',
      "const t: string = 'echo from-mts';\nexport default { tasks: { t: { command: t, inputs: ['in.txt'] } } };",
    ],
    [
      'taskvault.config.js',
      "export default { tasks: { t: { command: 'echo from-js', inputs: ['in.txt'] } } };",
    ],
  ] as const) {
    const dir = tempDir();
    writeTree(dir, { 'in.txt': 'x', [name]: body, 'package.json': '{ "type": "module" }' });
    const r = await runCli(['run', 't'], { cwd: dir });
    assert.is(r.code, 0, `${name}: ${r.err}`);
    assert.is(r.out, name.endsWith('.mts') ? 'from-mts\n' : 'from-js\n');
  }
});

test.run();

/** README statements that no other suite pins down: colours, logLevel, salt, config file kinds. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, runCli, runProcess, tempDir, writeTree } from './support/helpers.js';

const ESC = '\x1b[';

test('colours only on a TTY, and never with NO_COLOR', async () => {
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
  assert.match(noColor.out, /taskvault: hit/);
  assert.not.ok(noColor.out.includes(ESC), 'NO_COLOR must turn colour off');
  const pipe = await runCli(['run', '--inputs', 'in.txt', '--', 'echo', 'hi'], {
    cwd: dir,
    env: { NO_COLOR: undefined },
  });
  assert.match(pipe.err, /taskvault: hit/);
  assert.not.ok(pipe.err.includes(ESC), 'no colour when stderr is not a TTY');
});

test("logLevel 'silent' and 'error' hide the summary line; 'info' shows it", async () => {
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
  const dir = tempDir();
  writeTree(dir, { 'in.txt': 'x', 'taskvault.config.json': JSON.stringify({ salt: 'a' }) });
  const args = ['run', '--inputs', 'in.txt', '--', 'echo', 'hi'];
  assert.match((await runCli(args, { cwd: dir })).err, /miss/);
  assert.match((await runCli(args, { cwd: dir })).err, /hit/);
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify({ salt: 'b' }));
  assert.match((await runCli(args, { cwd: dir })).err, /miss/);
});

test('.mts and .js configs load too', async () => {
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

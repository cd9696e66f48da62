/** Loading configs that import taskvault, in projects without a local install. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

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

test.run();

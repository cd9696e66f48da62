/**
 * A hit restores each output file with the mode it was cached with, whatever the umask of the
 * process that restores it (copies are created with their mode; only what the umask would cut is
 * chmod-ed), never setuid/setgid; and a directory standing where a cached file goes is replaced.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, cliEnv, tempDir, writeTree } from '../support/helpers.js';

const MODES = {
  'a.txt': 0o600,
  'b.txt': 0o644,
  'c.sh': 0o755,
  'd.sh': 0o777,
  'e.txt': 0o640,
  'f.txt': 0o666,
};

const GEN = `
const fs = require('fs');
fs.mkdirSync('out/sub', { recursive: true });
for (const [name, mode] of Object.entries(${JSON.stringify(MODES)})) {
  fs.writeFileSync('out/sub/' + name, name);
  fs.chmodSync('out/sub/' + name, mode);
}
`;

/** `taskvault run` of the generator under `umask`; stderr (where TaskVault reports hit/miss). */
function run(dir: string, umask: string): string {
  const r = spawnSync(
    'sh',
    [
      '-c',
      `umask ${umask} && exec "${process.execPath}" "${CLI}" run --inputs gen.js --outputs 'out/**' -- node gen.js`,
    ],
    { cwd: dir, env: cliEnv({ TASKVAULT_CACHE_DIR: join(dir, '.cache') }), encoding: 'utf8' },
  );
  assert.is(r.status, 0, r.stderr);
  return r.stderr;
}

const modes = (dir: string) =>
  Object.fromEntries(Object.keys(MODES).map((n) => [n, statSync(join(dir, 'out/sub', n)).mode & 0o7777]));

test('restored files keep their cached modes under any umask', () => {
  const dir = writeTree(tempDir('tv-modes-'), { 'gen.js': GEN });
  assert.match(run(dir, '000'), /miss/);
  assert.equal(modes(dir), MODES);
  for (const umask of ['022', '077', '000', '027']) {
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    assert.match(run(dir, umask), /hit/, umask);
    assert.equal(modes(dir), MODES, `umask ${umask}`);
  }
});

test('a directory where a cached file goes is replaced by the file', () => {
  const dir = writeTree(tempDir('tv-modes-dir-'), { 'gen.js': GEN });
  run(dir, '022');
  rmSync(join(dir, 'out'), { recursive: true, force: true });
  mkdirSync(join(dir, 'out/sub/c.sh/inner'), { recursive: true });
  writeFileSync(join(dir, 'out/sub/c.sh/inner/x'), 'in the way');
  assert.match(run(dir, '022'), /hit/);
  assert.ok(statSync(join(dir, 'out/sub/c.sh')).isFile());
  assert.equal(modes(dir), MODES);
});

test.run();

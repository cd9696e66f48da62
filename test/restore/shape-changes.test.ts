/**
 * Outputs that change shape between runs (a file where a directory was, a symlink where a
 * directory is cached): a hit puts the cached shape back, and a blob that fails verification
 * leaves the project exactly as it was (invariant 1), whatever is in the way.
 */
import { chmodSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hashBytes } from '../../src/fingerprint/hash.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

/** out/ from src/mode: `dir` (out/d/f.txt), `link` (out/d -> ../other), `nested` (out/x/y), `file` (out/x). */
const BUILD = `#!/bin/sh
set -e
[ -n "$NOWRITE" ] && exit 1
rm -rf out; mkdir -p out other
case "$(cat src/mode)" in
  dir) mkdir out/d; echo in-dir > out/d/f.txt ;;
  link) ln -s ../other out/d ;;
  nested) mkdir out/x; echo y-content > out/x/y ;;
  file) echo precious B > out/x ;;
esac
`;

const ARGS = ['run', '--inputs', 'src/**', '--outputs', 'out/**', '--', 'sh', 'build.sh'];

function project(): string {
  const dir = writeTree(tempDir('tv-shapes-'), {
    'build.sh': BUILD,
    'src/mode': 'dir',
    '.git/HEAD': 'ref: x\n',
  });
  chmodSync(join(dir, 'build.sh'), 0o755);
  return dir;
}

async function build(dir: string, mode: string, env: Record<string, string> = {}) {
  writeFileSync(join(dir, 'src', 'mode'), mode);
  return runCli(ARGS, { cwd: dir, env });
}

test('a symlink where the entry has a directory is replaced by the directory on a hit', async () => {
  const dir = project();
  assert.match((await build(dir, 'dir')).err, /\bmiss\b/);
  assert.match((await build(dir, 'link')).err, /\bmiss\b/);
  assert.ok(lstatSync(join(dir, 'out', 'd')).isSymbolicLink());
  const r = await build(dir, 'dir');
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /\bhit\b/);
  assert.not.match(r.err, /not used/);
  assert.ok(lstatSync(join(dir, 'out', 'd')).isDirectory());
  assert.is(readFileSync(join(dir, 'out', 'd', 'f.txt'), 'utf8'), 'in-dir\n');
});

test('a corrupt blob leaves a file in the way of a cached directory as it was', async () => {
  const dir = project();
  assert.match((await build(dir, 'nested')).err, /\bmiss\b/);
  assert.match((await build(dir, 'file')).err, /\bmiss\b/);
  const hash = hashBytes('blake3', Buffer.from('y-content\n'));
  writeFileSync(join(dir, '.taskvault', 'cache', 'blobs', hash.slice(0, 2), hash.slice(2)), 'damaged!!!\n');
  // The cached entry cannot be served; the command then runs and (here) writes nothing.
  const r = await build(dir, 'nested', { NOWRITE: '1' });
  assert.is(r.code, 1, r.err);
  assert.match(r.err, /not used/);
  assert.ok(lstatSync(join(dir, 'out', 'x')).isFile(), 'out/x is still the file');
  assert.is(readFileSync(join(dir, 'out', 'x'), 'utf8'), 'precious B\n');
});

test.run();

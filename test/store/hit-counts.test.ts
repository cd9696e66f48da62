/**
 * Hit counts and last-access records belong to one entry: hits booked after another process
 * removed their entry are not written, so a later save of the same key starts from none.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

const SDK = pathToFileURL(join(REPO, 'dist', 'index.js')).href;

test('a key saved again after a clean does not inherit the hits of the removed entry', async () => {
  const dir = writeTree(tempDir('tv-hit-counts-'), { '.git/HEAD': 'ref: refs/heads/main\n', 'in.txt': 'in' });
  // The client holds its hits for a moment before booking them; the clean runs in between
  // (spawnSync blocks the client's event loop, so its batch cannot be booked first).
  const script = `
    const { spawnSync } = await import('node:child_process');
    const { Client } = await import(${JSON.stringify(SDK)});
    const tv = new Client();
    await tv.cacheResult('t', 'in', 'out');
    for (let i = 0; i < 5; i++) await tv.getCachedResult('t', 'in');
    const r = spawnSync(process.execPath, [${JSON.stringify(CLI)}, 'clean', '--yes'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    await tv.close();
  `;
  const r = await runProcess(process.execPath, ['--input-type=module', '-e', script], { cwd: dir });
  assert.is(r.code, 0, r.err);
  writeTreeOut(dir);
  const saved = await runCli(['cache', 'save', 't', 'in.txt', 'out.txt'], { cwd: dir });
  assert.is(saved.code, 0, saved.err);
  const ls = await runCli(['ls', '--json'], { cwd: dir });
  const rows = JSON.parse(ls.out) as Array<{ hits: number }>;
  assert.is(rows.length, 1);
  assert.is(rows[0]!.hits, 0, 'a new entry starts with no hits');
});

function writeTreeOut(dir: string): void {
  writeTree(dir, { 'out.txt': 'out again' });
}

test.run();

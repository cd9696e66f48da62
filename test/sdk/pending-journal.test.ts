/**
 * The pending journal of fast saves (src/store/pending.ts) after its writer is killed: a save
 * that was committed and then removed by another process stays removed, and a short write on a
 * full disk does not take the next acknowledged save down with it. Real child processes, the
 * built CLI and SDK, a real cache (and a tmpfs for the full disk, as root in CI).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cliEnv, REPO, runCli, tempDir, withTmpfs, writeTree } from '../support/helpers.js';

const SDK = pathToFileURL(join(REPO, 'dist', 'index.js')).href;

/**
 * Starts a child running `body` (with `tv`, an SDK Client) that prints "ready" when done and
 * then waits, alive, until it is killed; resolves once it is ready.
 */
async function startSaver(cwd: string, body: string, env: Record<string, string> = {}) {
  const script = `
    const { Client } = await import(${JSON.stringify(SDK)});
    const tv = new Client();
    ${body}
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd,
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d;
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.on('exit', () => reject(new Error(`saver exited early: ${err}`)));
  });
  const killed = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    kill: async () => {
      child.kill('SIGKILL');
      await killed;
    },
    err: () => err,
  };
}

const project = () => writeTree(tempDir('tv-pending-'), { '.git/HEAD': 'ref: refs/heads/main\n' });

test('saves a killed client committed, then removed by another process, stay removed', async () => {
  const dir = project();
  const saver = await startSaver(
    dir,
    `for (let i = 0; i < 3; i++) await tv.cacheResult('t', 'in' + i, 'out' + i);
     await tv.getStats(); // its commits are in the index`,
  );
  const clean = await runCli(['clean', '--yes'], { cwd: dir });
  assert.is(clean.code, 0, clean.err);
  assert.match(clean.out, /removed 3 entries/);
  await saver.kill();

  const ls = await runCli(['ls', '--json'], { cwd: dir });
  assert.is(ls.code, 0, ls.err);
  assert.equal(JSON.parse(ls.out), [], 'nothing came back when its journal was folded');
  writeFileSync(join(dir, 'in.txt'), 'in0');
  const got = await runCli(['cache', 'get', 't', 'in.txt', 'got.txt'], { cwd: dir });
  assert.is(got.code, 1, 'a miss');
  assert.equal(readdirSync(join(dir, '.taskvault', 'cache', 'pending')), [], 'the journal was folded');
});

test('a short write on a full disk does not glue the next save to its cut line', () =>
  withTmpfs('24m', 'short journal write', async (mnt) => {
    const dir = project();
    const cacheDir = join(mnt, 'cache');
    const filler = join(mnt, 'filler');
    const saver = await startSaver(
      dir,
      `const fs = await import('node:fs');
       await tv.cacheResult('t', 'first', 'one');
       await tv.getStats();
       const free = fs.statfsSync(${JSON.stringify(mnt)});
       fs.writeFileSync(${JSON.stringify(filler)}, Buffer.alloc(Math.max(0, free.bavail * free.bsize - 8192)));
       await tv.cacheResult('t', 'big', 'x'.repeat(30000)).catch(() => {});
       fs.rmSync(${JSON.stringify(filler)});
       await tv.cacheResult('t', 'small', 'precious');`,
      { TASKVAULT_CACHE_DIR: cacheDir },
    );
    const [journal] = readdirSync(join(cacheDir, 'pending'));
    const lines = readFileSync(join(cacheDir, 'pending', journal!), 'utf8')
      .split('\n')
      .filter(Boolean);
    await saver.kill();
    const parsed = lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as { entry: { key: string } }];
      } catch {
        return [];
      }
    });
    assert.is(parsed.length, lines.length, `every line whole: ${lines.map((l) => l.length).join(', ')}`);
    assert.is(parsed.length, 2, 'the saves acknowledged: first and small');
  }));

test.run();

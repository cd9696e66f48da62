/**
 * Issue 22, item 3: deleting the cache directory while a miss opens its index must never crash
 * TaskVault (lmdb-js frees its environment state twice when an open fails half-way; see
 * src/store/index/env.ts). Small counts in `npm test`; by hand: SOAK_ROUNDS=1000.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sleep, spawnCli, warnings } from '../support/fault-helpers.js';
import { REPO, runProcess, tempDir, writeTree } from '../support/helpers.js';
import { randomInt, soakReport, soakRounds, soakTimeUp } from '../support/soak.js';

/**
 * In one process, round after round: open an index (as Store.open does, through openIndexEnv)
 * while a worker thread removes its directory after a random few microseconds. Before the fix this
 * died with SIGSEGV within ~50 rounds on Node 20, 22 and 24.
 */
const RACE = `
const { Worker } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const [base, rounds, module] = process.argv.slice(1);
const remover = new Worker(\`
  const { parentPort } = require('node:worker_threads');
  const fs = require('node:fs');
  parentPort.on('message', ({ dir, us }) => {
    const until = process.hrtime.bigint() + BigInt(Math.floor(us * 1000));
    while (process.hrtime.bigint() < until);
    // rm -rf as a user's shell runs it: it retries what lmdb creates while it removes.
    for (let k = 0; k < 50; k++) { try { fs.rmSync(dir, { recursive: true, force: true }); break; } catch {} }
    parentPort.postMessage('removed');
  });\`, { eval: true });
(async () => {
  const { openIndexEnv } = await import(module);
  let opened = 0, failed = 0;
  for (let i = 0; i < Number(rounds); i++) {
    const root = path.join(base, 'c' + i), dir = path.join(root, 'index');
    fs.mkdirSync(dir, { recursive: true });
    const removed = new Promise((r) => remover.once('message', r));
    remover.postMessage({ dir: root, us: Math.random() * 3000 });
    try {
      const db = openIndexEnv(dir, { maxDbs: 16, compression: false, noMemInit: true });
      const meta = db.openDB({ name: 'meta' });
      if (meta.get('schema') === undefined) meta.putSync('schema', 1);
      await db.openDB({ name: 'entries' }).put('k' + i, { i });
      await db.close();
      opened++;
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
      failed++;
    }
    await removed;
  }
  console.log(JSON.stringify({ opened, failed }));
  process.exit(0);
})();
`;

test('the index opened while its directory is removed at random moments: never a crash', async () => {
  const rounds = soakRounds(100);
  const base = tempDir('tv-soak-race-');
  const r = await runProcess(
    process.execPath,
    ['-e', RACE, base, String(rounds), join(REPO, 'dist', 'store', 'index', 'env.js')],
    { cwd: base, timeoutMs: 30 * 60_000 },
  );
  assert.is(r.signal, null, `crashed with ${r.signal}:\n${r.err}`);
  assert.is(r.code, 0, r.err);
  const { opened, failed } = JSON.parse(r.out.trim().split('\n').pop()!) as {
    opened: number;
    failed: number;
  };
  assert.is(opened + failed, rounds);
  soakReport('index-open-race', { rounds, opened, removedDuringOpen: failed, crashes: 0 });
});

/** Removes the cache dir when told to (now, or after a few ms), prints, exits with 3. */
const CMD = `
const fs = require('fs');
const rm = () => { for (let k = 0; k < 50; k++) { try { fs.rmSync(process.env.REMOVE, { recursive: true, force: true }); return; } catch {} } };
const ms = Number(process.env.AFTER_MS);
const done = () => { console.log('ran'); process.exitCode = Number(process.env.EXIT || 3); };
if (ms < 0) done();
else if (ms === 0) { rm(); done(); }
else setTimeout(() => { rm(); done(); }, ms);
`;

/** A miss with stdin on /dev/null: a pipe that is slow to close (a loaded machine) skips caching. */
async function cli(dir: string, cacheDir: string, env: Record<string, string>) {
  const p = spawnCli(
    ['run', '--cache-dir', cacheDir, '--inputs', 'src/**', '--', 'node', 'cmd.js'],
    dir,
    env,
  );
  const { code, signal } = await p.done;
  return { code, signal, out: p.out(), err: p.err() };
}

test('cache dir deleted at a random moment of a miss: the exit code passes through, never a crash', async () => {
  const rounds = soakRounds(6);
  const dir = writeTree(tempDir('tv-soak-deleted-'), { 'cmd.js': CMD, 'src/in.txt': '' });
  const cacheDir = join(dir, 'cache');
  const tally = { rounds, crashes: 0, passedThrough: 0, warned: 0, byCommand: 0, byOther: 0 };
  let i = 0;
  for (; i < rounds && !soakTimeUp(); i++) {
    writeFileSync(join(dir, 'src', 'in.txt'), `round ${i} ${Math.random()}`);
    rmSync(cacheDir, { recursive: true, force: true });
    mkdirSync(cacheDir);
    // Half the rounds the command removes the cache, half another process does, at any moment
    // from before the index is opened to after the command ended.
    const byCommand = i % 2 === 0;
    const env = { REMOVE: cacheDir, AFTER_MS: byCommand ? String(randomInt(40)) : '-1' };
    const run = cli(dir, cacheDir, env);
    let ended = false;
    void run.then(() => (ended = true));
    // Another process: as soon as lmdb has begun opening the index, or a few ms later.
    if (!byCommand) {
      while (!ended && !existsSync(join(cacheDir, 'index', 'lock.mdb'))) await sleep(1);
      await sleep(randomInt(4));
      // The run may be making the cache's directories again meanwhile (that is what it does when
      // they vanish): a removal that loses that race tries again, until the run has ended.
      for (;;) {
        try {
          rmSync(cacheDir, { recursive: true, force: true, maxRetries: 50, retryDelay: 1 });
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' || ended) break;
        }
      }
    }
    const r = await run;
    if (byCommand) tally.byCommand++;
    else tally.byOther++;
    if (r.signal !== null || (r.code !== 3 && r.code !== null)) {
      tally.crashes++;
      console.log(`round ${i}: code ${r.code} signal ${r.signal}\n${r.err}`);
      continue;
    }
    tally.passedThrough++;
    const w = warnings(r.err);
    if (w.length > 0) tally.warned++;
    assert.ok(w.length <= 1, `at most one warning:\n${r.err}`);
    assert.is(r.out, 'ran\n');
    assert.not.match(r.err, /\n\s+at /, 'no stack trace');
  }
  soakReport('cache-deleted', { ...tally, rounds: i });
  assert.is(tally.crashes, 0);
  // And the cache works again afterwards.
  rmSync(cacheDir, { recursive: true, force: true });
  const again = await cli(dir, cacheDir, { AFTER_MS: '-1', EXIT: '0' });
  assert.is(again.code, 0, again.err);
  assert.match(again.err, /· cached /, again.err);
});

test.run();

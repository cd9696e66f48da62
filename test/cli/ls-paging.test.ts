/**
 * `taskvault ls` on a cache of many entries: newest first (ties in key order) from the index's
 * creation-order records, a page at a time, so `ls | head` ends cleanly once the reader goes; an
 * index written before those records existed (or left short by an older TaskVault) is listed the
 * same and brought back in step; gc's recount repairs them.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STORE_SCHEMA } from '../../src/store/entry.js';
import { Store } from '../../src/store/store.js';
import { CLI, cliEnv, runCli, tempDir } from '../support/helpers.js';

const T0 = Date.now() - 3_600_000; // recent: gc must not expire them
const COUNT = 260; // more than two pages of ls (100 rows each)

function entry(key: string, createdAt: number) {
  return {
    schema: STORE_SCHEMA,
    key,
    task: `task-${key.slice(0, 4)}`,
    algorithm: 'blake3' as const,
    outputs: [],
    outputGlobs: [],
    cwd: '.',
    logs: { stdout: null, stderr: null, chunks: [] },
    exitCode: 0,
    durationMs: 1_000,
    createdAt,
    bytes: 0,
    ttlMs: 365 * 86_400_000,
    provenance: { host: 'h', user: 'u', version: '0', origin: 'local' as const },
  };
}

/** A cache of COUNT entries, three of them created in the same millisecond; the keys, as ls orders them. */
async function filled(): Promise<{ cacheDir: string; order: string[] }> {
  const cacheDir = tempDir('tv-ls-paging-');
  const opened = Store.open(cacheDir);
  if (!opened.ok) throw new Error(opened.error.message);
  const made: Array<{ key: string; at: number }> = [];
  for (let i = 0; i < COUNT; i++) {
    // Keys not in creation order, so an order by key would show.
    const key = ((i * 7919) % 65_536).toString(16).padStart(4, '0') + 'c'.repeat(60);
    const at = i >= 10 && i < 13 ? T0 + 10 : T0 + i;
    made.push({ key, at });
    const r = await opened.value.commit(entry(key, at), { schema: 1 } as never, key);
    assert.ok(r.ok);
  }
  await opened.value.close();
  made.sort((a, b) => b.at - a.at || (a.key < b.key ? -1 : 1));
  return { cacheDir, order: made.map((m) => m.key) };
}

const listedKeys = async (cacheDir: string): Promise<string[]> => {
  const r = await runCli(['ls', '--json'], { cwd: cacheDir, env: { TASKVAULT_CACHE_DIR: cacheDir } });
  assert.is(r.code, 0, r.err);
  return (JSON.parse(r.out) as Array<{ key: string }>).map((row) => row.key);
};

/** Drops the creation-order records, as an index from before them (or an older writer) has it. */
function dropCreationOrder(cacheDir: string, keep: number): void {
  const env = openLmdb({ path: join(cacheDir, 'index'), maxDbs: 16, compression: false });
  const db = env.openDB({ name: 'byCreation' });
  let n = 0;
  env.transactionSync(() => {
    for (const key of db.getKeys()) if (n++ >= keep) db.remove(key);
  });
  env.close();
}

test('ls lists newest first, ties in key order, the table and --json alike', async () => {
  const { cacheDir, order } = await filled();
  assert.equal(await listedKeys(cacheDir), order);
  const table = await runCli(['ls'], { cwd: cacheDir, env: { TASKVAULT_CACHE_DIR: cacheDir } });
  const lines = table.out.trimEnd().split('\n');
  assert.is(lines.length, COUNT + 1, 'a header and one line per entry, across pages');
  assert.match(lines[0]!, /^TASK +KIND +KEY/);
  assert.equal(
    lines.slice(1).map((l) => l.split(/ +/)[2]),
    order.map((k) => k.slice(0, 12)),
  );
  assert.is(table.out.match(/^TASK /gm)?.length, 1, 'one header');
});

test('ls | head: ends with exit 0 and no error once the reader has gone', async () => {
  const { cacheDir } = await filled();
  for (const reader of ['head -n 2 >/dev/null', 'true']) {
    // `true` exits without reading: ls's first write fails (EPIPE), where Node crashed by default.
    const r = spawnSync(
      'bash',
      ['-c', `"${process.execPath}" "${CLI}" ls | ${reader}; exit \${PIPESTATUS[0]}`],
      {
        env: cliEnv({ TASKVAULT_CACHE_DIR: cacheDir }),
        encoding: 'utf8',
      },
    );
    assert.is(r.stderr, '', reader);
    assert.is(r.status, 0, reader);
  }
});

test('an index without (or short of) creation-order records lists the same and is repaired', async () => {
  const { cacheDir, order } = await filled();
  dropCreationOrder(cacheDir, 0);
  assert.equal(await listedKeys(cacheDir), order, 'rebuilt on the way');
  dropCreationOrder(cacheDir, 50);
  assert.equal(await listedKeys(cacheDir), order, 'short: rebuilt');
  dropCreationOrder(cacheDir, 0);
  const gc = await runCli(['gc', '--json'], { cwd: cacheDir, env: { TASKVAULT_CACHE_DIR: cacheDir } });
  assert.is(gc.code, 0, gc.err);
  assert.ok(JSON.parse(gc.out).refsRepaired >= COUNT, 'gc recounts the records it put back');
  assert.equal(await listedKeys(cacheDir), order);
});

test.run();

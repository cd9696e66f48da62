/**
 * Eviction and `clean` over more entries than one write transaction takes: every entry that must
 * go goes, in order, while the batches grow (src/store/evict.ts, inBatches).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hashBytes } from '../../src/fingerprint/hash.js';
import { STORE_SCHEMA } from '../../src/store/entry.js';
import { inBatches } from '../../src/store/evict.js';
import { Store } from '../../src/store/store.js';
import { runCli, tempDir } from '../support/helpers.js';

const COUNT = 4_000; // more than 1,024 + 2,048: the batches grow twice
const SIZE = 100;

test('batches cover every item once, in order, as they grow', async () => {
  const items = Array.from({ length: 20_000 }, (_, i) => i);
  const seen: number[] = [];
  const sizes: number[] = [];
  await inBatches(items, async (batch) => {
    seen.push(...batch);
    sizes.push(batch.length);
    return true;
  });
  assert.equal(seen, items);
  assert.ok(sizes.length > 1 && sizes[1]! > sizes[0]!, `batches grew: ${sizes.join(', ')}`);
});

/** A cache of COUNT small results of SIZE bytes, entry i created (and last used) at T0 + i. */
async function filled(): Promise<{ dir: string; keys: string[]; env: Record<string, string> }> {
  const dir = tempDir('tv-evict-batches-');
  const cacheDir = join(dir, 'cache');
  const opened = Store.open(cacheDir);
  if (!opened.ok) throw new Error(opened.error.message);
  const t0 = Date.now() - 3_600_000;
  const keys: string[] = [];
  const commits = [];
  for (let i = 0; i < COUNT; i++) {
    const data = Buffer.from(`${String(i).padStart(8, '0')}`.padEnd(SIZE, '.'));
    // Keys in another order than their age, as hashes are.
    const key = ((i * 7919) % 65_536).toString(16).padStart(4, '0') + 'c'.repeat(60);
    keys.push(key);
    const entry = {
      schema: STORE_SCHEMA,
      key,
      task: i % 2 === 0 ? 'even' : 'odd',
      algorithm: 'blake3' as const,
      outputs: [
        { path: 'result', type: 'file' as const, mode: 0o644, size: SIZE, hash: hashBytes('blake3', data) },
      ],
      outputGlobs: [],
      cwd: '',
      logs: { stdout: null, stderr: null, chunks: [] },
      exitCode: 0,
      durationMs: 10,
      createdAt: t0 + i,
      bytes: SIZE,
      ttlMs: 365 * 86_400_000,
      provenance: { host: 'h', user: 'u', version: '0', origin: 'local' as const },
      result: { encoding: 'raw' as const },
    };
    commits.push(opened.value.commit(entry, { schema: 1 } as never, `result:${entry.task}`, { data }));
  }
  for (const r of await Promise.all(commits)) assert.ok(r.ok);
  await opened.value.close();
  return { dir, keys, env: { TASKVAULT_CACHE_DIR: cacheDir } };
}

const listed = async (dir: string, env: Record<string, string>): Promise<Set<string>> => {
  const r = await runCli(['ls', '--json'], { cwd: dir, env });
  assert.is(r.code, 0, r.err);
  return new Set((JSON.parse(r.out) as Array<{ key: string }>).map((row) => row.key));
};

test('gc over its size limit evicts exactly the oldest entries', async () => {
  const { dir, keys, env } = await filled();
  const keep = 1_000;
  // Everything fits at first; then a limit that holds `keep` results, with no low-water margin.
  writeFileSync(
    join(dir, 'taskvault.config.ts'),
    `export default { maxSizeGb: ${(keep * SIZE) / 1e9}, lowWaterMark: 1 };\n`,
  );
  const gc = await runCli(['gc', '--json'], { cwd: dir, env });
  assert.is(gc.code, 0, gc.err);
  const report = JSON.parse(gc.out) as { entries: number; usage: number };
  assert.is(report.entries, COUNT - keep);
  assert.is(report.usage, keep * SIZE);
  assert.equal(await listed(dir, env), new Set(keys.slice(COUNT - keep)), 'the newest are the ones left');
});

test('clean --task removes every entry of the task, however many', async () => {
  const { dir, keys, env } = await filled();
  const r = await runCli(['clean', '--task', 'even', '--yes'], { cwd: dir, env });
  assert.is(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`removed ${COUNT / 2} entries of task 'even'`));
  assert.equal(await listed(dir, env), new Set(keys.filter((_, i) => i % 2 === 1)));
});

test.run();

/** Eviction and policies, end to end through the built CLI: TTL, LRU, low-water mark, size limits. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { audit, blobFiles, gcJson, MIN, project, run, runs, T0, tv } from '../support/evict-helpers.js';

test('TTL: an expired entry is a miss, is removed with EVICT reason=ttl, and the command runs again', async () => {
  const dir = project({
    tasks: { a: { size: 100 } },
    extra: { policies: { default: { ttlSeconds: '1h' } } },
  });
  await run(dir, 'a', T0);
  const hit = await run(dir, 'a', T0 + 59 * MIN);
  assert.match(hit.err, /hit/);
  assert.equal(runs(dir), ['a']);

  const expired = await run(dir, 'a', T0 + 61 * MIN);
  assert.match(expired.err, /miss/);
  assert.equal(runs(dir), ['a', 'a']);
  const evicts = audit(dir, 'EVICT');
  assert.is(evicts.length, 1);
  assert.is(evicts[0]!.reason, 'ttl');
  assert.is(evicts[0]!.task, 'a');
  // The re-run stored a fresh entry, which hits within its own TTL.
  assert.match((await run(dir, 'a', T0 + 62 * MIN)).err, /hit/);
});

test('TTL: --ttl flag with a human duration overrides the policy', async () => {
  const dir = project({ tasks: { a: { size: 100 } } });
  await run(dir, 'a', T0, ['--ttl', '30m']);
  assert.match((await run(dir, 'a', T0 + 20 * MIN, ['--ttl', '30m'])).err, /hit/);
  assert.match((await run(dir, 'a', T0 + 31 * MIN, ['--ttl', '30m'])).err, /miss/);
  assert.is(audit(dir, 'EVICT')[0]!.reason, 'ttl');
  const bad = await tv(dir, ['run', 'a', '--ttl', 'soon'], T0);
  assert.is(bad.code, 2);
  assert.match(bad.err, /invalid TTL "soon"/);
});

test('gc expires entries past their TTL and deletes their blobs; --dry-run removes nothing', async () => {
  const dir = project({
    tasks: { a: { size: 300 }, b: { size: 200, policy: { ttlSeconds: 7200 } } },
    extra: { policies: { default: { ttlSeconds: 3600 } } },
  });
  await run(dir, 'a', T0);
  await run(dir, 'b', T0);
  assert.is(blobFiles(dir).length, 2);

  const dry = await gcJson(dir, T0 + 90 * MIN, ['--dry-run']);
  assert.is(dry.entries, 1);
  assert.is(dry.byReason.ttl!.bytes, 300);
  assert.is(blobFiles(dir).length, 2);
  assert.is(audit(dir, 'EVICT').length, 0);

  const real = await gcJson(dir, T0 + 90 * MIN);
  assert.is(real.entries, 1);
  assert.is(real.bytes, 300);
  assert.is(real.usage, 200);
  assert.equal(
    blobFiles(dir).map((b) => b.size),
    [200],
  );
  assert.equal(
    audit(dir, 'EVICT').map((e) => [e.task, e.reason, e.source]),
    [['a', 'ttl', 'gc']],
  );
  // b has its own, longer policy: still a hit.
  assert.match((await run(dir, 'b', T0 + 90 * MIN)).err, /hit/);
});

test('LRU: over maxSizeGb, least recently hit entries go first, down to the low-water mark', async () => {
  // 4500-byte limit, low-water 70% = 3150 bytes; each entry is one 1000-byte blob.
  const dir = project({
    tasks: { a: { size: 1000 }, b: { size: 1000 }, c: { size: 1000 }, d: { size: 1000 }, e: { size: 1000 } },
    extra: { maxSizeGb: 0.0000045, lowWaterMark: 0.7 },
  });
  let minute = 0;
  const tick = () => T0 + ++minute * MIN;
  for (const t of ['a', 'b', 'c']) await run(dir, t, tick());
  // a is the oldest entry but the most recently used one.
  assert.match((await run(dir, 'a', tick())).err, /hit/);
  await run(dir, 'd', tick());
  assert.is(audit(dir, 'EVICT').length, 0, 'at 4000 bytes the cache is under its limit');
  const over = await run(dir, 'e', tick());
  assert.match(over.err, /evicted 2 entries, freed 2\.0 KB/);

  assert.equal(
    audit(dir, 'EVICT').map((e) => [e.task, e.reason]),
    [
      ['b', 'lru'],
      ['c', 'lru'],
    ],
  );
  assert.is(blobFiles(dir).length, 3);
  const before = runs(dir).length;
  for (const t of ['a', 'd', 'e']) assert.match((await run(dir, t, tick())).err, /hit/);
  assert.is(runs(dir).length, before);
  assert.match((await run(dir, 'b', tick())).err, /miss/);
});

test('LRU: gc evicts to the low-water mark only when over the limit', async () => {
  const dir = project({
    tasks: { a: { size: 1000 }, b: { size: 1000 }, c: { size: 1000 } },
    extra: { maxSizeGb: 0.0000025, lowWaterMark: 0.5 },
  });
  await run(dir, 'a', T0 + 1);
  await run(dir, 'b', T0 + 2);
  assert.is((await gcJson(dir, T0 + 3)).entries, 0, '2000 bytes is within the 2500-byte limit');
  // A save that crosses the limit evicts at once; the new entry itself is never the victim.
  await run(dir, 'c', T0 + 4);
  assert.equal(
    audit(dir, 'EVICT').map((e) => [e.task, e.reason]),
    [
      ['a', 'lru'],
      ['b', 'lru'],
    ],
  );
  assert.is((await gcJson(dir, T0 + 5)).usage, 1000);
});

test('over the limit, expired entries go before least-recently-used ones', async () => {
  // 2500-byte limit, low-water 80% = 2000 bytes.
  const dir = project({
    tasks: { a: { size: 1000 }, b: { size: 1000 }, c: { size: 1000 } },
    extra: { maxSizeGb: 0.0000025, lowWaterMark: 0.8, policies: { default: { ttlSeconds: '1h' } } },
  });
  await run(dir, 'a', T0);
  await run(dir, 'b', T0 + MIN);
  assert.match((await run(dir, 'a', T0 + 2 * MIN)).err, /hit/);
  // b is now the least recently used, but a has expired: a goes, and that is enough.
  await run(dir, 'c', T0 + 60.5 * MIN);
  assert.equal(
    audit(dir, 'EVICT').map((e) => [e.task, e.reason]),
    [['a', 'ttl']],
  );
  assert.match((await run(dir, 'b', T0 + 60.5 * MIN)).err, /hit/);
});

test('size: a result over its policy limit is not stored, the user is told once, no blob is written', async () => {
  const dir = project({
    tasks: {
      big: { size: 1000 },
      roomy: { size: 1000, policy: { maxSizeBytes: 2000 } },
      named: { size: 1000 },
    },
    extra: { policies: { default: { maxSizeBytes: '500B' }, named: { maxSizeBytes: '1KB' } } },
  });
  const r = await tv(dir, ['run', 'big'], T0);
  assert.is(r.code, 0);
  assert.is(
    r.err.match(/warning: not cached: result is 1\.0 KB, over the 500 B per-entry limit/g)?.length,
    1,
  );
  assert.is(blobFiles(dir).length, 0);
  assert.match((await run(dir, 'big', T0 + 1)).err, /miss/);
  assert.equal(runs(dir), ['big', 'big']);

  // The task's own policy, then policies[task], override policies.default; the flag overrides all.
  assert.match((await run(dir, 'roomy', T0)).err, /cached 1 file/);
  assert.match((await run(dir, 'named', T0)).err, /cached 1 file/);
  assert.match((await run(dir, 'big', T0 + 2, ['--max-entry-size', '5KB'])).err, /cached 1 file/);
  assert.is(blobFiles(dir).length, 3);
});

test('size: the default per-entry limit is 100 MiB', async () => {
  const dir = project({ tasks: { a: { size: 10 } } });
  const r = await tv(dir, ['run', 'a', '--max-entry-size', '5B'], T0);
  assert.match(r.err, /over the 5 B per-entry limit/);
  const { resolvePolicy } = await import('../../src/config/resolve.js');
  const p = resolvePolicy({ config: {} }, 'x');
  assert.ok(p.ok);
  if (p.ok) {
    assert.is(p.value.maxEntryBytes, 104_857_600);
    assert.is(p.value.ttlMs, 604_800_000);
  }
});

test('gc removes entries over a per-entry limit lowered after they were saved (reason=size)', async () => {
  const dir = project({ tasks: { a: { size: 1000 }, b: { size: 100 } } });
  await run(dir, 'a', T0);
  await run(dir, 'b', T0);
  const config = JSON.parse(readFileSync(join(dir, 'taskvault.config.json'), 'utf8'));
  config.policies = { default: { maxSizeBytes: 500 } };
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify(config));
  const r = await gcJson(dir, T0 + 1);
  assert.is(r.byReason.size!.entries, 1);
  assert.equal(
    audit(dir, 'EVICT').map((e) => [e.task, e.reason]),
    [['a', 'size']],
  );
});

test.run();

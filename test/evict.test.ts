/** Eviction and policies, end to end through the built CLI: TTL, LRU, size limits, gc, clean. */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, runCli, runProcess, tempDir, writeTree } from './helpers.js';

const T0 = 1_900_000_000_000;
const MIN = 60_000;

/**
 * A project whose tasks each write `out/<name>.bin` (`size` bytes of the content letter) and append
 * a line to runs.log (not an input, not an output), so a test can count how often each really ran.
 */
function project(config: {
  tasks: Record<string, { size: number; letter?: string; policy?: Record<string, unknown> }>;
  extra?: Record<string, unknown>;
}): string {
  const dir = tempDir('tv-evict-');
  const tasks: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(config.tasks)) {
    const code = [
      "const fs=require('fs');",
      "fs.mkdirSync('out',{recursive:true});",
      `fs.writeFileSync('out/${name}.bin', ${JSON.stringify(t.letter ?? name[0])}.repeat(${t.size}));`,
      `fs.appendFileSync('runs.log', '${name}\\n');`,
    ].join('');
    tasks[name] = {
      command: ['node', '-e', code],
      inputs: ['in.txt'],
      outputs: [`out/${name}.bin`],
      ...(t.policy ? { policy: t.policy } : {}),
    };
  }
  writeTree(dir, {
    'in.txt': 'input\n',
    'taskvault.config.json': JSON.stringify({ ...config.extra, tasks }, null, 2),
  });
  return dir;
}

const cache = (dir: string) => join(dir, '.taskvault', 'cache');

async function tv(dir: string, args: string[], now: number, env: Record<string, string> = {}) {
  const r = await runCli(args, { cwd: dir, env: { TASKVAULT_NOW_MS: String(now), ...env } });
  return r;
}

async function run(dir: string, task: string, now: number, flags: string[] = []) {
  const r = await tv(dir, ['run', task, ...flags], now);
  assert.is(r.code, 0, `run ${task} failed: ${r.err}`);
  return r;
}

const runs = (dir: string): string[] =>
  existsSync(join(dir, 'runs.log')) ? readFileSync(join(dir, 'runs.log'), 'utf8').trim().split('\n') : [];

function audit(dir: string, event?: string): Array<Record<string, string>> {
  const p = join(cache(dir), 'audit.log');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [, ev, source, rest] = /^\[[^\]]+\] (\w+) (\S+) ?(.*)$/.exec(line)!;
      const fields: Record<string, string> = { event: ev!, source: source! };
      for (const m of rest!.matchAll(/(\w+)=(\S+)/g)) fields[m[1]!] = m[2]!;
      return fields;
    })
    .filter((f) => event === undefined || f.event === event);
}

function blobFiles(dir: string): Array<{ hash: string; size: number }> {
  const root = join(cache(dir), 'blobs');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((fan) =>
    readdirSync(join(root, fan)).map((name) => ({
      hash: fan + name,
      size: statSync(join(root, fan, name)).size,
    })),
  );
}

async function gcJson(dir: string, now: number, flags: string[] = []) {
  const r = await tv(dir, ['gc', '--json', ...flags], now);
  assert.is(r.code, 0, r.err);
  return JSON.parse(r.out) as {
    entries: number;
    bytes: number;
    byReason: Record<string, { entries: number; bytes: number }>;
    orphanBlobs: { files: number; bytes: number };
    staleTmp: { files: number; bytes: number };
    refsRepaired: number;
    missingBlobs: number;
    usage: number;
  };
}

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
  const { resolvePolicy } = await import('../src/config/resolve.js');
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

test('shared blobs: counted once, kept while any entry references them', async () => {
  const dir = project({ tasks: { s1: { size: 1000, letter: 'z' }, s2: { size: 1000, letter: 'z' } } });
  await run(dir, 's1', T0);
  await run(dir, 's2', T0);
  assert.is(blobFiles(dir).length, 1);
  const counted = await gcJson(dir, T0);
  assert.is(counted.usage, 1000);
  assert.is(counted.refsRepaired, 0, 'commits kept the reference counts exact');

  const c1 = await tv(dir, ['clean', '--task', 's1', '--yes'], T0);
  assert.is(c1.code, 0, c1.err);
  assert.match(c1.out, /removed 1 entry of task 's1'; reclaimed 0 B/);
  assert.is(blobFiles(dir).length, 1, 's2 still references the blob');
  rmSync(join(dir, 'out'), { recursive: true });
  assert.match((await run(dir, 's2', T0 + 1)).err, /hit/);
  assert.is(readFileSync(join(dir, 'out', 's2.bin'), 'utf8'), 'z'.repeat(1000));

  const c2 = await tv(dir, ['clean', '--task', 's2', '--yes'], T0);
  assert.match(c2.out, /removed 1 entry of task 's2'; reclaimed 1\.0 KB/);
  assert.is(blobFiles(dir).length, 0);
  const after = await gcJson(dir, T0);
  assert.is(after.usage, 0);
  assert.is(after.refsRepaired, 0);
  assert.equal(
    audit(dir, 'EVICT').map((e) => [e.task, e.reason, e.freed]),
    [
      ['s1', 'manual', '0'],
      ['s2', 'manual', '1000'],
    ],
  );
});

function deadPid(): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', '']);
    child.on('exit', () => resolve(child.pid!));
  });
}

test('gc sweeps orphan blobs and stale temp files past the grace period, never a live writer', async () => {
  const dir = project({ tasks: { a: { size: 100 } } });
  await run(dir, 'a', T0);
  const [kept] = blobFiles(dir);
  const now = Date.now();
  const hours = (h: number) => new Date(now - h * 3600_000);
  const blobs = join(cache(dir), 'blobs');
  const tmp = join(cache(dir), 'tmp');
  const put = (path: string, content: string, age: number) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content);
    utimesSync(path, hours(age), hours(age));
  };
  const oldOrphan = join(blobs, 'ab', 'c0ffee');
  const freshOrphan = join(blobs, 'cd', 'beef00');
  put(oldOrphan, 'orphan!', 3);
  put(freshOrphan, 'fresh', 0.1);
  // An old referenced blob stays whatever its age.
  utimesSync(join(blobs, kept!.hash.slice(0, 2), kept!.hash.slice(2)), hours(5), hours(5));

  const dead = await deadPid();
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  try {
    const deadOld = join(tmp, `${dead}-${now - 3 * 3600_000}-aaaa1111.blob`);
    const deadFresh = join(tmp, `${dead}-${now}-bbbb2222.stdout`);
    const liveOld = join(tmp, `${live.pid}-${now - 3 * 3600_000}-cccc3333.stdout`);
    put(deadOld, 'partial', 3);
    put(deadFresh, 'partial', 0.1);
    put(liveOld, 'still writing', 3);

    const dry = await gcJson(dir, now, ['--dry-run']);
    assert.equal(dry.orphanBlobs, { files: 1, bytes: 7 });
    assert.equal(dry.staleTmp, { files: 1, bytes: 7 });
    assert.ok(existsSync(oldOrphan) && existsSync(deadOld));

    const r = await tv(dir, ['gc'], now);
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /removed 0 entries, 1 orphan blob, 1 stale temp file; reclaimed 14 B/);
    assert.not.ok(existsSync(oldOrphan));
    assert.not.ok(existsSync(deadOld));
    assert.ok(existsSync(freshOrphan), 'a blob younger than the grace period may be about to be committed');
    assert.ok(existsSync(deadFresh));
    assert.ok(existsSync(liveOld), "a live process's temp file is never deleted");
    // A shorter grace period reaches the fresh ones.
    const short = await gcJson(dir, now, ['--grace', '1m']);
    assert.is(short.orphanBlobs.files, 1);
    assert.is(short.staleTmp.files, 1);
    assert.ok(existsSync(liveOld));
  } finally {
    live.kill('SIGKILL');
  }
  rmSync(join(dir, 'out'), { recursive: true });
  assert.match((await run(dir, 'a', T0 + 1)).err, /hit/);
  const bad = await tv(dir, ['gc', '--grace', 'a while'], now);
  assert.is(bad.code, 2);
});

test('clean: refuses without --yes on a non-TTY; with --yes removes everything (reason=manual)', async () => {
  const dir = project({ tasks: { a: { size: 100 }, b: { size: 200 } } });
  await run(dir, 'a', T0);
  await run(dir, 'b', T0);
  const refused = await tv(dir, ['clean'], T0);
  assert.is(refused.code, 2);
  assert.is(refused.err.trim().split('\n').length, 1);
  assert.match(
    refused.err,
    /clean removes cached results and needs confirmation \(stdin is not a terminal: pass --yes/,
  );
  assert.is(blobFiles(dir).length, 2);

  const r = await tv(dir, ['clean', '--yes'], T0);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /removed 2 entries; reclaimed 300 B/);
  assert.is(blobFiles(dir).length, 0);
  assert.equal(
    audit(dir, 'EVICT').map((e) => e.reason),
    ['manual', 'manual'],
  );
  assert.match((await run(dir, 'a', T0)).err, /miss/);

  const empty = await runCli(['clean', '--yes'], { cwd: tempDir() });
  assert.is(empty.code, 0);
  assert.match(empty.out, /nothing to do: no cache/);
});

test('clean on a terminal asks first and removes nothing unless the answer is yes', async () => {
  // util-linux `script` gives the CLI a real pseudo-terminal; without it this case cannot be driven.
  if (spawnSync('script', ['--version']).status !== 0) {
    console.log('  (skipped: no `script` for a pseudo-terminal)');
    return;
  }
  const dir = project({ tasks: { a: { size: 100 } } });
  await run(dir, 'a', T0);
  const inTty = (answer: string) =>
    runProcess('script', ['-qec', `node ${CLI} clean --task a`, '/dev/null'], { cwd: dir, input: answer });
  const no = await inTty('n\n');
  assert.match(no.out, /remove 1 entry \(100 B\) of task 'a'\? \[y\/N\]/);
  assert.is(no.code, 1);
  assert.is(blobFiles(dir).length, 1);
  const yes = await inTty('y\n');
  assert.is(yes.code, 0);
  assert.match(yes.out, /removed 1 entry of task 'a'; reclaimed 100 B/);
  assert.is(blobFiles(dir).length, 0);
});

test.run();

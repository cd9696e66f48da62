/** `taskvault cache save|get|stats` and `taskvault stats` through the built CLI. */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, cliEnv, runCli, tempDir, withTmpfs, writeTree } from '../support/helpers.js';
import { overwriteSmallResults, smallResults } from '../support/small-results.js';

const oneLine = (s: string) => s.trim().split('\n').length === 1;

const AUDIT_LINE =
  /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] (HIT|MISS|SAVE|EVICT|ERROR) (get|save|run|memoize) task=\S+ hash=[0-9a-f]{12}( \S+=\S+)*$/;

function project(): string {
  const dir = tempDir('tv-cache-');
  writeTree(dir, { 'data.csv': 'id,value\n1,10\n2,32\n', '.git/HEAD': 'ref: refs/heads/main\n' });
  writeFileSync(join(dir, 'model.bin'), randomBytes(5242880));
  return dir;
}

const audit = (dir: string): string[] =>
  readFileSync(join(dir, '.taskvault/cache/audit.log'), 'utf8').trimEnd().split('\n');

const statsJson = async (dir: string) =>
  JSON.parse((await runCli(['cache', 'stats', '--json'], { cwd: dir })).out);

test('get on an empty cache misses: stderr line, exit 1, output not created', async () => {
  const dir = project();
  const r = await runCli(['cache', 'get', 'train_model', 'data.csv', 'out/model.bin'], { cwd: dir });
  assert.is(r.code, 1);
  assert.is(r.out, '');
  assert.match(r.err, /^✗ Cache miss for train_model \(hash: [0-9a-f]{8}\.\.\.\)\n$/);
  assert.not.ok(existsSync(join(dir, 'out')), 'nothing is created on a miss, not even the directory');
});

test('save then get: exact lines, identical bytes, content-only key', async () => {
  const dir = project();
  const saved = await runCli(['cache', 'save', 'train_model', 'data.csv', 'model.bin'], { cwd: dir });
  assert.is(saved.code, 0, saved.err);
  assert.match(saved.out, /^✓ Cached train_model \(hash: [0-9a-f]{8}\.\.\., size: 5242880 bytes\)\n$/);
  const got = await runCli(['cache', 'get', 'train_model', 'data.csv', 'restored/model.bin'], { cwd: dir });
  assert.is(got.code, 0, got.err);
  assert.is(got.out, '✓ Cache hit for train_model (size: 5242880 bytes)\n');
  assert.ok(readFileSync(join(dir, 'restored/model.bin')).equals(readFileSync(join(dir, 'model.bin'))));
  assert.not.ok(
    readdirSync(join(dir, 'restored')).some((n) => n.includes('.tmp')),
    'no temp file is left beside the output',
  );

  // The key is the input's content: the same bytes under another name hit, other bytes miss.
  writeFileSync(join(dir, 'copy.csv'), readFileSync(join(dir, 'data.csv')));
  assert.is((await runCli(['cache', 'get', 'train_model', 'copy.csv', 'b.bin'], { cwd: dir })).code, 0);
  writeFileSync(join(dir, 'data.csv'), 'id,value\n1,10\n2,33\n');
  const changed = await runCli(['cache', 'get', 'train_model', 'data.csv', 'c.bin'], { cwd: dir });
  assert.is(changed.code, 1);
  assert.not.ok(existsSync(join(dir, 'c.bin')));
  // Another task with the same input is another key.
  assert.is((await runCli(['cache', 'get', 'other_task', 'copy.csv', 'd.bin'], { cwd: dir })).code, 1);
  // The hash algorithm is part of the key.
  const sha = await runCli(['cache', 'get', 'train_model', 'copy.csv', 'e.bin'], {
    cwd: dir,
    env: { TASKVAULT_HASH_ALGORITHM: 'sha256' },
  });
  assert.is(sha.code, 1);
});

test('get overwrites an existing output file atomically and keeps the saved mode', async () => {
  const dir = project();
  writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\necho trained\n');
  chmodSync(join(dir, 'run.sh'), 0o755);
  assert.is((await runCli(['cache', 'save', 'script', 'data.csv', 'run.sh'], { cwd: dir })).code, 0);
  writeFileSync(join(dir, 'target.sh'), 'old content that is longer than the new one......\n');
  const r = await runCli(['cache', 'get', 'script', 'data.csv', 'target.sh'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(readFileSync(join(dir, 'target.sh'), 'utf8'), '#!/bin/sh\necho trained\n');
  assert.is(spawnSync(join(dir, 'target.sh')).stdout.toString(), 'trained\n');
});

for (const [kind, value] of [
  ['small result, kept in the index', '{"accuracy":0.93}\n'],
  ['larger result, a blob file', `{"weights":[${'0.5,'.repeat(5000)}1]}\n`],
] as const)
  test(`a corrupt blob is a miss: no output, entry dropped, ERROR in the audit log (${kind})`, async () => {
    const dir = project();
    writeFileSync(join(dir, 'small.json'), value);
    assert.is((await runCli(['cache', 'save', 'eval', 'data.csv', 'small.json'], { cwd: dir })).code, 0);
    const damaged = Buffer.from(value.replace(/0\.\d/, '0.1'));
    const cache = join(dir, '.taskvault/cache');
    let files = 0;
    for (const sub of readdirSync(join(cache, 'blobs')))
      for (const f of readdirSync(join(cache, 'blobs', sub))) {
        writeFileSync(join(cache, 'blobs', sub, f), damaged);
        files++;
      }
    const indexed = await overwriteSmallResults(cache, damaged);
    assert.equal([files, indexed], value.length > 16 * 1024 ? [1, 0] : [0, 1], 'where the result was kept');
    const r = await runCli(['cache', 'get', 'eval', 'data.csv', 'out.json'], { cwd: dir });
    assert.is(r.code, 1);
    assert.match(
      r.err,
      /✗ Cache miss for eval \(hash: [0-9a-f]{8}\.\.\., stored blob was corrupt and was removed\)/,
    );
    assert.not.ok(existsSync(join(dir, 'out.json')));
    const lines = audit(dir);
    assert.ok(
      lines.some((l) => / ERROR get task=eval hash=[0-9a-f]{12} error=".*does not match its name/.test(l)),
      lines.join('\n'),
    );
    assert.is((await statsJson(dir)).entries, 0);
    assert.is((await smallResults(cache)).size, 0, 'the damaged bytes are gone from the index');
    assert.is((await runCli(['cache', 'get', 'eval', 'data.csv', 'out.json'], { cwd: dir })).code, 1);
  });

test('usage and input errors are one line with the right exit code', async () => {
  const dir = project();
  const missing = await runCli(['cache', 'save', 't', 'nope.csv', 'model.bin'], { cwd: dir });
  assert.is(missing.code, 66);
  assert.match(missing.err, /^taskvault: error: cannot read input file nope\.csv: ENOENT.*\n$/);
  const noOut = await runCli(['cache', 'save', 't', 'data.csv', 'nope.bin'], { cwd: dir });
  assert.is(noOut.code, 66);
  assert.is(noOut.err.split('\n').length, 2);
  const few = await runCli(['cache', 'get', 't', 'data.csv'], { cwd: dir });
  assert.is(few.code, 2);
  assert.match(
    few.err,
    /cache get needs 3 arguments, got 2 \(usage: taskvault cache get <task> <input-file> <output-file>\)/,
  );
  // A hit that cannot be written (the output path is a directory): one line, exit 74, no temp left.
  assert.is((await runCli(['cache', 'save', 't', 'data.csv', 'model.bin'], { cwd: dir })).code, 0);
  writeTree(dir, { 'adir/keep': '' });
  const unwritable = await runCli(['cache', 'get', 't', 'data.csv', 'adir'], { cwd: dir });
  assert.is(unwritable.code, 74);
  assert.match(unwritable.err, /^taskvault: error: cannot write adir: EISDIR.*\(check the output path\)\n$/);
  assert.not.ok(readdirSync(dir).some((n) => n.includes('.tmp')));
  const bad = await runCli(['cache', 'put', 't', 'a', 'b'], { cwd: dir });
  assert.is(bad.code, 2);
  assert.match(bad.err, /unknown cache action 'put'/);
});

test('the bash wrapper from the issue works as written', async () => {
  const dir = project();
  const bin = join(dir, 'bin');
  writeTree(bin, { taskvault: `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n` });
  chmodSync(join(bin, 'taskvault'), 0o755);
  writeTree(dir, {
    'train.sh': '#!/bin/sh\necho run >> trainings.txt\ncat "$1" "$1" > "$2"\n',
    'wrapper.sh': [
      '#!/usr/bin/env bash',
      'KEY=train_model',
      'IN=data.csv',
      'OUT=models/model.bin',
      'if taskvault cache get "$KEY" "$IN" "$OUT" 2>/dev/null; then',
      '  echo "using the cached model"',
      'else',
      '  mkdir -p models',
      '  sh train.sh "$IN" "$OUT"',
      '  taskvault cache save "$KEY" "$IN" "$OUT"',
      'fi',
      '',
    ].join('\n'),
  });
  const env = { ...cliEnv(), PATH: `${bin}:${process.env.PATH}` };
  const first = spawnSync('bash', ['wrapper.sh'], { cwd: dir, env });
  assert.is(first.status, 0, first.stderr.toString());
  assert.is(first.stderr.toString(), '', 'the miss line went to /dev/null');
  assert.match(
    first.stdout.toString(),
    /^✓ Cached train_model \(hash: [0-9a-f]{8}\.\.\., size: 38 bytes\)\n$/,
  );
  const model = readFileSync(join(dir, 'models/model.bin'));
  rmSync(join(dir, 'models'), { recursive: true });

  const second = spawnSync('bash', ['wrapper.sh'], { cwd: dir, env });
  assert.is(second.status, 0, second.stderr.toString());
  assert.is(
    second.stdout.toString(),
    '✓ Cache hit for train_model (size: 38 bytes)\nusing the cached model\n',
  );
  assert.ok(readFileSync(join(dir, 'models/model.bin')).equals(model));
  assert.is(readFileSync(join(dir, 'trainings.txt'), 'utf8'), 'run\n', 'trained once');

  const lines = audit(dir);
  assert.equal(
    lines.map((l) => l.split(' ').slice(1, 3).join(' ')),
    ['MISS get', 'SAVE save', 'HIT get'],
  );
  for (const l of lines) assert.match(l, AUDIT_LINE);
  assert.match(lines[2]!, / HIT get task=train_model hash=[0-9a-f]{12} bytes=38$/);
});

test('stats: aligned table, --json, the stats alias, time saved from --duration', async () => {
  const dir = project();
  const fresh = await runCli(['stats'], { cwd: dir });
  assert.is(fresh.code, 0);
  assert.match(fresh.out, /Entries {6}0\n/);
  assert.not.ok(existsSync(join(dir, '.taskvault')), 'stats does not create a cache');

  await runCli(['cache', 'get', 'train_model', 'data.csv', 'm.bin'], { cwd: dir }); // miss
  await runCli(['cache', 'save', 'train_model', 'data.csv', 'model.bin', '--duration', '1h'], { cwd: dir });
  await runCli(['cache', 'get', 'train_model', 'data.csv', 'm.bin'], { cwd: dir }); // hit
  await runCli(['cache', 'get', 'train_model', 'data.csv', 'm.bin'], { cwd: dir }); // hit
  await runCli(['cache', 'get', 'train_model', 'model.bin', 'x.bin'], { cwd: dir }); // miss

  const s = await statsJson(dir);
  assert.is(s.entries, 1);
  assert.is(s.totalBytes, 5242880);
  assert.is(s.limitBytes, 10e9);
  assert.is(s.hits, 2);
  assert.is(s.misses, 2);
  assert.is(s.hitRate, 0.5);
  assert.ok(s.savedMs > 2 * 3500_000, `two hits of a 1 h job saved ~2 h, got ${s.savedMs}`);
  assert.ok(Math.abs(s.usagePercent - (5242880 / 10e9) * 100) < 1e-9);

  const table = await runCli(['cache', 'stats'], { cwd: dir });
  assert.is(table.code, 0);
  const lines = table.out.trimEnd().split('\n');
  assert.is(lines[0], 'TaskVault Cache Statistics');
  assert.equal(
    lines.slice(2).map((l) => l.slice(0, 13)),
    [
      'Entries      ',
      'Total size   ',
      'Cache limit  ',
      'Usage        ',
      'Hits         ',
      'Misses       ',
      'Hit rate     ',
      'Time saved   ',
    ],
  );
  assert.ok(lines.includes('Total size   5.2 MB (5242880 bytes)'), table.out);
  assert.ok(lines.includes('Cache limit  10 GB'));
  assert.ok(lines.includes('Usage        0.05%'));
  assert.ok(lines.includes('Hit rate     50.0%'));
  assert.match(table.out, /Time saved {3}(1h59m|2h0m)\n/);
  assert.is((await runCli(['stats'], { cwd: dir })).out, table.out);
});

test('without --duration, a save after a miss records the time in between', async () => {
  const dir = project();
  await runCli(['cache', 'get', 'slow', 'data.csv', 'out.bin'], { cwd: dir });
  spawnSync('sleep', ['0.3']); // the "work" between the miss and the save
  await runCli(['cache', 'save', 'slow', 'data.csv', 'model.bin'], { cwd: dir });
  const [row] = JSON.parse((await runCli(['ls', '--json'], { cwd: dir })).out);
  assert.ok(row.durationMs >= 300, `duration ${row.durationMs}`);
  // A plain save with no miss before it claims no time.
  await runCli(['cache', 'save', 'fast', 'data.csv', 'model.bin'], { cwd: dir });
  const rows = JSON.parse((await runCli(['ls', '--json'], { cwd: dir })).out);
  assert.is(rows.find((r: { task: string }) => r.task === 'fast').durationMs, 0);
});

test('an entry past its policy TTL is evicted on get: miss + EVICT line', async () => {
  const dir = project();
  writeTree(dir, {
    'taskvault.config.json': JSON.stringify({ policies: { train_model: { ttlSeconds: '1ms' } } }),
  });
  assert.is((await runCli(['cache', 'save', 'train_model', 'data.csv', 'model.bin'], { cwd: dir })).code, 0);
  const r = await runCli(['cache', 'get', 'train_model', 'data.csv', 'o.bin'], { cwd: dir });
  assert.is(r.code, 1);
  assert.match(r.err, /, expired\)/);
  assert.not.ok(existsSync(join(dir, 'o.bin')));
  const lines = audit(dir);
  assert.match(lines[1]!, / EVICT get task=train_model hash=[0-9a-f]{12} reason=ttl$/);
  assert.match(lines[2]!, / MISS get task=train_model hash=[0-9a-f]{12} reason=expired$/);
  assert.is((await statsJson(dir)).entries, 0);
});

test('a result over the policy size limit is not cached: one error line, non-zero exit', async () => {
  const dir = project();
  writeTree(dir, {
    'taskvault.config.json': JSON.stringify({ policies: { default: { maxSizeBytes: '1MB' } } }),
  });
  const r = await runCli(['cache', 'save', 'train_model', 'data.csv', 'model.bin'], { cwd: dir });
  assert.is(r.code, 74);
  assert.match(r.err, /not cached: the result is 5\.2 MB, over the 1\.0 MB per-entry limit/);
  assert.is((await statsJson(dir)).entries, 0);
});

test('stats and ls on a cache that cannot be opened fail with one line, never an empty-looking cache', async () => {
  const dir = writeTree(tempDir(), { 'a-file': '' });
  for (const args of [['stats'], ['stats', '--json'], ['ls'], ['cache', 'stats']]) {
    const r = await runCli([...args, '--cache-dir', 'a-file'], { cwd: dir });
    assert.is(r.code, 74, `${args.join(' ')}: ${r.out}${r.err}`);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /cannot open the cache at .*a-file: ENOTDIR/);
    assert.is(r.out, '');
  }
  // No cache yet is still simply empty.
  const none = await runCli(['stats', '--cache-dir', 'not-yet'], { cwd: dir });
  assert.is(none.code, 0, none.err);
  assert.match(none.out, /Entries\s+0/);
});

test('cache save on a disk that fills up: one line, exit 74, what was cached is kept', () =>
  withTmpfs('24m', 'cache save on a full disk', async (mnt) => {
    const dir = project();
    const env = { TASKVAULT_CACHE_DIR: join(mnt, 'cache') };
    assert.is((await runCli(['cache', 'save', 't', 'data.csv', 'model.bin'], { cwd: dir, env })).code, 0);
    writeFileSync(join(dir, 'huge.bin'), Buffer.alloc(30 << 20, 1));
    const r = await runCli(['cache', 'save', 'big', 'data.csv', 'huge.bin'], { cwd: dir, env });
    assert.is(r.code, 74, r.err);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /^taskvault: error: cannot save the result: ENOSPC/);
    const got = await runCli(['cache', 'get', 't', 'data.csv', 'again.bin'], { cwd: dir, env });
    assert.is(got.code, 0, got.err);
    assert.equal(readFileSync(join(dir, 'again.bin')), readFileSync(join(dir, 'model.bin')));
  }));

test.run();

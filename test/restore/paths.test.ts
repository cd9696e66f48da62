/** Pure functions: formats, paths, config validation, canonical JSON, entry path checks. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateConfig } from '../../src/config/validate.js';
import { canonicalJson, hashBytes } from '../../src/fingerprint/hash.js';
import { checkEntryPaths } from '../../src/runner/restore.js';
import { formatBytes, formatDuration, parseDuration, parseSize } from '../../src/util/format.js';
import { safeJoin } from '../../src/util/paths.js';

test('parseDuration and parseSize accept human units and reject junk', () => {
  assert.is(parseDuration('90'), 90_000);
  assert.is(parseDuration('2h'), 7_200_000);
  assert.is(parseDuration('7d'), 604_800_000);
  assert.is(parseDuration('1h30m'), 5_400_000);
  assert.is(parseDuration('soon'), undefined);
  assert.is(parseDuration('5x'), undefined);
  assert.is(parseSize('500MB'), 500_000_000);
  assert.is(parseSize('10GB'), 10_000_000_000);
  assert.is(parseSize('1GiB'), 1024 ** 3);
  assert.is(parseSize('1024'), 1024);
  assert.is(parseSize('big'), undefined);
  assert.is(formatBytes(999), '999 B');
  assert.is(formatBytes(1_500_000), '1.5 MB');
  assert.is(formatDuration(45), '45ms');
  assert.is(formatDuration(3_200), '3.20s');
});

test('safeJoin refuses absolute paths, .., empty segments and backslashes', () => {
  const root = '/project';
  assert.ok(safeJoin(root, 'dist/a.js').ok);
  for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a//b', './a', 'a\\..\\b', '', 'a/\0b', '..']) {
    assert.not.ok(safeJoin(root, bad).ok, bad);
  }
});

test('checkEntryPaths refuses symlinks out of the root and files written through an entry symlink', () => {
  const root = '/project';
  assert.ok(checkEntryPaths(root, [{ path: 'out/l', type: 'symlink', target: 'a.txt' }]).ok);
  assert.not.ok(checkEntryPaths(root, [{ path: 'out/l', type: 'symlink', target: '../../etc' }]).ok);
  assert.not.ok(checkEntryPaths(root, [{ path: 'out/l', type: 'symlink', target: '/etc' }]).ok);
  assert.not.ok(
    checkEntryPaths(root, [
      { path: 'out/l', type: 'symlink', target: 'sub' },
      { path: 'out/l/x', type: 'file', mode: 0o644, size: 1, hash: 'ab' },
    ]).ok,
  );
});

test('validateConfig accepts a full config and names the bad field', () => {
  const good = validateConfig(
    {
      cacheDir: '.cache',
      maxSizeGb: 5,
      hashAlgorithm: 'sha256',
      policies: { default: { ttlSeconds: '7d', maxSizeBytes: 100 }, train: { ttlSeconds: 60 } },
      tasks: {
        build: {
          command: 'tsc',
          inputs: ['src/**'],
          outputs: ['dist/**'],
          env: ['NODE_ENV'],
          cacheFailures: true,
        },
      },
      remote: { url: 'http://127.0.0.1:1/c', readOnly: true },
    },
    'c.json',
  );
  assert.ok(good.ok);
  const bad = validateConfig({ policies: { default: { ttlSeconds: 'later' } } }, 'c.json');
  assert.not.ok(bad.ok);
  if (!bad.ok)
    assert.match(bad.error.message, /c\.json: policies\.default\.ttlSeconds must be seconds or a duration/);
});

test('canonicalJson writes exactly what JSON.stringify with sorted keys writes', () => {
  const reference = (value: unknown) =>
    JSON.stringify(value, (_k, v: unknown) =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(
            Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
          )
        : v,
    );
  const samples: unknown[] = [
    {
      schema: 1,
      argv: ['node', 'a "quoted" \\ arg', 'ünï\u2028'],
      env: { Z: null, A: '' },
      inputs: [
        ['src/a.ts', 'ab'.repeat(32), true],
        ['src/b.ts', 'cd', false],
      ],
      skip: undefined,
      fn: () => 1,
      nested: [undefined, null, 1.5, -0, 1e21, { b: [], a: {} }],
      when: new Date(0),
    },
    'text',
    42,
    null,
    [],
    // Arrays of plain values take a native shortcut; the text must not change with it.
    [
      ['a', Number.NaN, true],
      [null, undefined, Number.POSITIVE_INFINITY],
      // biome-ignore lint/suspicious/noSparseArray: holes are written as null
      [, 1],
      [{ b: 1, a: 2 }],
    ],
    ['x', -0, 1e21, false],
  ];
  for (const s of samples) assert.is(canonicalJson(s), reference(s));
});

test('canonicalJson is independent of key order, so keys are stable', () => {
  assert.is(
    canonicalJson({ b: 1, a: { d: 2, c: [3, { f: 1, e: 2 }] } }),
    canonicalJson({ a: { c: [3, { e: 2, f: 1 }], d: 2 }, b: 1 }),
  );
  assert.is(hashBytes('blake3', 'abc'), '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
  assert.is(hashBytes('sha256', 'abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test.run();

/** canonicalJson, which key derivation hashes, and the hash functions themselves. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalJson, hashBytes } from '../../src/fingerprint/hash.js';

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

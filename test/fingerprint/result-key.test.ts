/** The key of a stored result: written out by hand, it must stay the canonical JSON of its fingerprint. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { keyOf } from '../../src/fingerprint/fingerprint.js';
import { canonicalJson, hashBytes } from '../../src/fingerprint/hash.js';
import { resultFingerprint, resultFingerprintJson, resultKey } from '../../src/fingerprint/result-key.js';

// Computed by the general walk (keyOf), before the JSON was written out.
const GOLDEN = 'a970fc08f0483925d613cfa52ce4b9d5ce4d31ceb5e0163121afb0ac44b57710';

const ODD = [
  '',
  'aggregate',
  'a"b\\c',
  'line\nbreak\t',
  'ünïcode ✓',
  '\u0000\u001f',
  'lone \udcff',
  '</script>',
];

test('the written-out JSON is the canonical JSON of the fingerprint, for any task and salt', () => {
  for (const algorithm of ['blake3', 'sha256'] as const)
    for (const task of ODD)
      for (const salt of ODD) {
        const input = hashBytes(algorithm, `${task}|${salt}`);
        const fp = resultFingerprint(algorithm, task, input, salt);
        assert.is(resultFingerprintJson(algorithm, task, input, salt), canonicalJson(fp));
        assert.is(resultKey(algorithm, task, input, salt), keyOf(fp));
      }
});

test('a result key is the one earlier versions computed (caches stay valid)', () => {
  assert.is(
    resultKey('blake3', 'aggregate', hashBytes('blake3', 'north,10\n'), ''),
    keyOf(resultFingerprint('blake3', 'aggregate', hashBytes('blake3', 'north,10\n'), '')),
  );
  assert.is(resultKey('blake3', 'aggregate', hashBytes('blake3', 'north,10\n'), ''), GOLDEN);
});

test.run();

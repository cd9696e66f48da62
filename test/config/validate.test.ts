/** Config values: human durations and sizes, and validation that names the bad field. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateConfig } from '../../src/config/validate.js';
import { formatBytes, formatDuration, parseDuration, parseSize } from '../../src/util/format.js';

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

test.run();

/** diffFingerprints / describeChange: the pure part of `taskvault explain`. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeChange, diffFingerprints } from '../../src/fingerprint/diff.js';
import type { Fingerprint } from '../../src/fingerprint/fingerprint.js';

const base = (): Fingerprint => ({
  schema: 1,
  algorithm: 'blake3',
  task: 'build',
  argv: ['tsc', '-p', '.'],
  shell: false,
  cwd: '',
  env: { NODE_ENV: 'development', CI: null },
  inputs: [
    ['src/a.ts', 'aaaa1111', false],
    ['src/b.ts', 'bbbb2222', false],
    ['tools/run.sh', 'cccc3333', true],
  ],
  outputs: ['dist/**'],
  salt: '',
});

test('identical fingerprints have no differences', () => {
  assert.equal(diffFingerprints(base(), base()), []);
});

test('inputs added, removed, changed and mode changes are reported by path, in path order', () => {
  const next = base();
  next.inputs = [
    ['src/a.ts', 'aaaa9999', false],
    ['src/c.ts', 'dddd4444', false],
    ['tools/run.sh', 'cccc3333', false],
  ];
  assert.equal(diffFingerprints(base(), next), [
    { kind: 'input-changed', path: 'src/a.ts', from: 'aaaa1111', to: 'aaaa9999' },
    { kind: 'input-removed', path: 'src/b.ts' },
    { kind: 'input-added', path: 'src/c.ts' },
    { kind: 'input-mode', path: 'tools/run.sh', executable: false },
  ]);
});

test('env values old → new, unset vs empty, and newly declared names', () => {
  const next = base();
  next.env = { NODE_ENV: 'production', CI: '', API_URL: 'x' };
  assert.equal(diffFingerprints(base(), next), [
    { kind: 'env-declared', name: 'API_URL', declared: true },
    { kind: 'env', name: 'CI', from: null, to: '' },
    { kind: 'env', name: 'NODE_ENV', from: 'development', to: 'production' },
  ]);
  assert.is(
    describeChange({ kind: 'env', name: 'NODE_ENV', from: 'development', to: 'production' }),
    'env changed      NODE_ENV: "development" → "production"',
  );
  assert.is(
    describeChange({ kind: 'env', name: 'CI', from: null, to: '' }),
    'env changed      CI: (unset) → ""',
  );
});

test('argv, shell, cwd, outputs, salt, task and schema', () => {
  const next: Fingerprint = {
    ...base(),
    argv: ['tsc', '-p', 'tsconfig.build.json'],
    shell: true,
    cwd: 'packages/app',
    outputs: ['dist/**', 'types/**'],
    salt: 'v2',
    task: 'build:app',
    schema: 2,
  };
  const kinds = diffFingerprints(base(), next).map((c) => c.kind);
  assert.equal(kinds, ['argv', 'shell', 'cwd', 'outputs', 'salt', 'schema', 'task']);
  assert.is(
    describeChange(diffFingerprints(base(), next)[0]!),
    'command changed  tsc -p . → tsc -p tsconfig.build.json',
  );
  assert.is(
    describeChange({ kind: 'argv', from: ['sh', '-c', 'echo a b'], to: ['sh'] }),
    'command changed  sh -c "echo a b" → sh',
  );
  assert.is(describeChange({ kind: 'cwd', from: '', to: 'pkg' }), 'cwd changed      . → pkg');
});

test('a changed algorithm is reported once, not as every file changed', () => {
  const next = base();
  next.algorithm = 'sha256';
  next.inputs = next.inputs.map(([p, h, x]) => [p, `${h}ffff`, x]);
  next.inputs.push(['src/new.ts', 'eeee', false]);
  assert.equal(diffFingerprints(base(), next), [
    { kind: 'input-added', path: 'src/new.ts' },
    { kind: 'algorithm', from: 'blake3', to: 'sha256' },
  ]);
});

test('describeChange gives one line for every kind', () => {
  const next: Fingerprint = {
    ...base(),
    inputs: [['src/z.ts', 'zz', true]],
    env: {},
    argv: ['x'],
    shell: true,
    cwd: 'a',
    outputs: [],
    salt: 's',
    algorithm: 'sha256',
    schema: 9,
    task: 't',
  };
  const lines = diffFingerprints(base(), next).map(describeChange);
  assert.ok(lines.length >= 10);
  for (const l of lines) assert.not.match(l, /\n|undefined/);
  assert.ok(lines.includes('outputs changed  dist/** → (none)'));
  assert.ok(lines.includes('env undeclared   NODE_ENV'));
});

test.run();

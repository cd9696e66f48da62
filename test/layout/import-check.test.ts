/**
 * scripts/check-imports.mjs (`npm run check:imports`, run by CI): it fails on an import circle and
 * on an import up the layers of ARCHITECTURE.md, one line per problem, and passes a clean tree. Run
 * as CI runs it, on small real source trees in temp dirs.
 */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REPO, runProcess, tempDir, writeTree } from '../support/helpers.js';

const SCRIPT = join(REPO, 'scripts', 'check-imports.mjs');

/** A tree in the target shape: each folder imports only the ones below it. */
const CLEAN: Record<string, string> = {
  'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } }),
  'src/util/result.ts': 'export type Result = { ok: boolean };\n',
  'src/version.ts':
    "import type { Result } from './util/result.js';\nexport const VERSION = '1';\nexport type R = Result;\n",
  'src/config/load.ts': "import { VERSION } from '../version.js';\nexport const load = () => VERSION;\n",
  'src/fingerprint/key.ts': "import { load } from '../config/load.js';\nexport const key = () => load();\n",
  'src/store/index.ts': "import { key } from '../fingerprint/key.js';\nexport const get = () => key();\n",
  'src/runner/types.ts': 'export interface RemoteTier { pull(key: string): Promise<void> }\n',
  'src/runner/lookup.ts':
    "import { get } from '../store/index.js';\nimport type { RemoteTier } from './types.js';\nexport const lookup = (t?: RemoteTier) => [get(), t];\n",
  'src/remote/tier.ts':
    "import { get } from '../store/index.js';\nexport const tier = { async pull(k: string) { get(); void k; } };\n",
  'src/cli/run.ts':
    "import { lookup } from '../runner/lookup.js';\nimport { tier } from '../remote/tier.js';\nexport const run = () => lookup(tier);\n",
  'src/cli/watch.ts':
    "import { run } from './run.js';\nexport const watch = async () => (await import('../watch/loop.js')).loop(run);\n",
  'src/watch/loop.ts': 'export const loop = (f: () => unknown) => f();\n',
  'src/index.ts': "export { run } from './cli/run.js';\n",
};

async function check(files: Record<string, string>) {
  const dir = writeTree(tempDir('tv-imports-'), files);
  const r = await runProcess(process.execPath, [SCRIPT, dir], { cwd: REPO });
  return { ...r, lines: r.out.trim().split('\n') };
}

test('a tree whose imports all point down the layers passes', async () => {
  const r = await check(CLEAN);
  assert.is(r.code, 0, r.out + r.err);
  assert.equal(r.lines, ['imports: 12 files, no circle, no import up the layers']);
});

test('a circle fails, named file by file (a type-only import and a dynamic import count)', async () => {
  const r = await check({
    ...CLEAN,
    'src/fingerprint/manifest.ts':
      "import type { Walk } from './walk.js';\nexport type Listing = { w?: Walk };\n",
    'src/fingerprint/walk.ts':
      "import type { Listing } from './manifest.js';\nexport type Walk = { l?: Listing };\n",
    'src/cli/watch.ts': "import { run } from './run.js';\nexport const watch = () => run;\n",
    'src/cli/run.ts':
      "import { lookup } from '../runner/lookup.js';\nexport const run = () => lookup();\nexport const w = () => import('./watch.js');\n",
  });
  assert.is(r.code, 1, r.out);
  assert.equal(r.lines, [
    'circle: src/cli/run.ts -> src/cli/watch.ts -> src/cli/run.ts',
    'circle: src/fingerprint/manifest.ts -> src/fingerprint/walk.ts -> src/fingerprint/manifest.ts',
    'imports: 2 problems in 14 files',
  ]);
});

test('an import up the layers fails, one line per import', async () => {
  const r = await check({
    ...CLEAN,
    // store -> runner (up), config -> fingerprint (up), util -> cli (up, type only)
    'src/store/index.ts':
      "import { key } from '../fingerprint/key.js';\nimport type { RemoteTier } from '../runner/types.js';\nexport const get = (t?: RemoteTier) => [key(), t];\n",
    'src/config/load.ts':
      "import { VERSION } from '../version.js';\nimport { key } from '../fingerprint/key.js';\nexport const load = () => VERSION + typeof key;\n",
    'src/util/format.ts': "import type { run } from '../cli/run.js';\nexport type Run = typeof run;\n",
  });
  assert.is(r.code, 1, r.out);
  const problems = r.lines.filter((l) => !l.startsWith('circle:') && !l.startsWith('imports:'));
  assert.equal(problems, [
    'src/config/load.ts -> src/fingerprint/key.ts (config may not import fingerprint)',
    'src/store/index.ts -> src/runner/types.ts (store may not import runner)',
    'src/util/format.ts -> src/cli/run.ts (util may not import cli)',
  ]);
});

test('runner and remote are siblings: neither may import the other', async () => {
  const r = await check({
    ...CLEAN,
    'src/runner/lookup.ts':
      "import { get } from '../store/index.js';\nimport { tier } from '../remote/tier.js';\nexport const lookup = () => [get(), tier];\n",
    'src/remote/tier.ts':
      "import { get } from '../store/index.js';\nimport type { RemoteTier } from '../runner/types.js';\nexport const tier: RemoteTier = { async pull(k: string) { get(); void k; } };\n",
  });
  assert.is(r.code, 1, r.out);
  assert.equal(r.lines, [
    'src/remote/tier.ts -> src/runner/types.ts (remote may not import runner)',
    'src/runner/lookup.ts -> src/remote/tier.ts (runner may not import remote)',
    'imports: 2 problems in 12 files',
  ]);
});

test('a folder in no layer fails until it is given one', async () => {
  const r = await check({ ...CLEAN, 'src/misc/helpers.ts': 'export const x = 1;\n' });
  assert.is(r.code, 1, r.out);
  assert.equal(r.lines, [
    'src/misc/helpers.ts: src/misc is in no layer (add it to LAYERS in scripts/check-imports.mjs)',
    'imports: 1 problem in 13 files',
  ]);
});

test.run();

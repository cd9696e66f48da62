/**
 * The SDK examples of the docs, verbatim: every ```ts block that starts with `// file: NAME` in the
 * "Examples" section of docs/sdk.md and in the "SDK" section of README.md is type-checked against the
 * built package's types and run in the csv-report fixture.
 */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fixture, REPO, runProcess } from '../support/helpers.js';

/** The text of the `## heading` section of a markdown file (up to the next `## `). */
function section(file: string, heading: string): string {
  const text = readFileSync(join(REPO, file), 'utf8');
  const start = text.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `${file} has no "## ${heading}" section`);
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

const examples = new Map(
  [section('docs/sdk.md', 'Examples'), section('README.md', 'SDK')].flatMap((text) =>
    [...text.matchAll(/```ts\n\/\/ file: (\S+)\n([\s\S]*?)```/g)].map(
      (m) => [m[1]!, `// file: ${m[1]}\n${m[2]}`] as const,
    ),
  ),
);
const TSX = pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

function project(): string {
  const dir = fixture('csv-report');
  for (const [name, code] of examples) writeFileSync(join(dir, name), code);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noUncheckedIndexedAccess: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
      },
      files: [...examples.keys()],
    }),
  );
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  symlinkSync(join(REPO, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'));
  return dir;
}

const run = (dir: string, file: string) =>
  runProcess(process.execPath, ['--import', TSX, file], { cwd: dir });
const audit = (dir: string) =>
  readFileSync(join(dir, '.taskvault/cache/audit.log'), 'utf8').trimEnd().split('\n');

test('docs/sdk.md has both worked examples, the README its short one, and they type-check', async () => {
  assert.equal([...examples.keys()], ['pipeline.ts', 'train.ts', 'quick.ts']);
  const dir = project();
  const tsc = await runProcess(
    process.execPath,
    [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'],
    {
      cwd: dir,
    },
  );
  assert.is(tsc.code, 0, tsc.out + tsc.err);
});

test('the CSV pipeline computes once, then reads the aggregation from the cache', async () => {
  const dir = project();
  const first = await run(dir, 'pipeline.ts');
  assert.is(first.code, 0, first.err);
  assert.match(first.out, /north: \{ orders: \d+, revenue: [\d.]+ \}/);
  const second = await run(dir, 'pipeline.ts');
  assert.is(second.out, first.out);
  const lines = audit(dir).map((l) => l.split(' ').slice(1, 4).join(' '));
  assert.equal(
    lines.map((l) => l.replace(/ hash=.*/, '')),
    ['MISS get task=sales-by-region', 'SAVE save task=sales-by-region', 'HIT get task=sales-by-region'],
  );
  // The CLI finds the SDK's entry under the same task and input file.
  const cli = await runProcess(
    process.execPath,
    [join(REPO, 'dist', 'cli.cjs'), 'cache', 'get', 'sales-by-region', 'data/sales.csv', 'totals.json'],
    { cwd: dir },
  );
  assert.is(cli.code, 0, cli.err);
  assert.ok(JSON.parse(readFileSync(join(dir, 'totals.json'), 'utf8')).north.orders > 0);
});

test('the training example trains once per (hyperparameters, dataset bytes)', async () => {
  const dir = project();
  const first = await run(dir, 'train.ts');
  assert.is(first.code, 0, first.err);
  assert.is(first.out, '32 true\n');
  const second = await run(dir, 'train.ts');
  assert.is(second.out, '32 true\n');
  const events = audit(dir).map((l) => l.split(' ').slice(1, 3).join(' '));
  assert.equal(events, ['MISS memoize', 'SAVE memoize', 'HIT memoize', 'HIT memoize', 'HIT memoize']);
  // Another dataset is another key.
  writeFileSync(
    join(dir, 'data/sales.csv'),
    `${readFileSync(join(dir, 'data/sales.csv'), 'utf8')}999,north,1,1.00\n`,
  );
  await run(dir, 'train.ts');
  assert.is(audit(dir).filter((l) => / SAVE memoize /.test(l)).length, 2);
});

test("the README's short example counts rows once, then reads them and the memoized call from the cache", async () => {
  const dir = project();
  const first = await run(dir, 'quick.ts');
  assert.is(first.code, 0, first.err);
  const rows = readFileSync(join(dir, 'data/sales.csv'), 'utf8').trim().split('\n').length - 1;
  assert.is(first.out, `${rows} 144\n`);
  const second = await run(dir, 'quick.ts');
  assert.is(second.out, first.out);
  const events = audit(dir).map((l) =>
    l
      .split(' ')
      .slice(1, 4)
      .join(' ')
      .replace(/ hash=.*/, ''),
  );
  assert.equal(events, [
    'MISS get task=row-count',
    'SAVE save task=row-count',
    'MISS memoize task=square',
    'SAVE memoize task=square',
    'HIT get task=row-count',
    'HIT memoize task=square',
  ]);
});

test.run();

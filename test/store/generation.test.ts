/**
 * <cache>/generation (store/generation.ts): rewritten after every change to the entries, by any
 * command, and left alone by hits, so a client serving results from memory knows when to ask again.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

function project(): string {
  return writeTree(tempDir('tv-generation-'), {
    '.git/HEAD': 'ref: refs/heads/main\n',
    'in.txt': 'input',
    'out.txt': 'output',
    'src/a.txt': 'a',
  });
}

const generation = (dir: string) => readFileSync(join(dir, '.taskvault', 'cache', 'generation'), 'utf8');

async function ok(dir: string, args: string[]): Promise<void> {
  const r = await runCli(args, { cwd: dir });
  assert.is(r.code, 0, `${args.join(' ')}: ${r.err}`);
}

test('a save, a run that misses, a removal, a new index and a rebuild rewrite it; hits and no-op gc do not', async () => {
  const dir = project();
  await ok(dir, ['cache', 'save', 'agg', 'in.txt', 'out.txt']);
  const first = generation(dir);
  assert.match(first, /^[0-9a-f]{16}$/);

  await ok(dir, ['cache', 'get', 'agg', 'in.txt', 'got.txt']);
  await ok(dir, ['gc']);
  assert.is(generation(dir), first, 'a hit and a gc that removed nothing change no entry');

  const run = ['run', '--inputs', 'src/**', '--', 'node', '-e', 'console.log(1)'];
  await ok(dir, run);
  const afterMiss = generation(dir);
  assert.is.not(afterMiss, first);
  await ok(dir, run);
  assert.is(generation(dir), afterMiss, 'a run hit');

  await ok(dir, ['clean', '--yes', '--task', 'agg']);
  const afterClean = generation(dir);
  assert.is.not(afterClean, afterMiss);

  // A new index where the old one was deleted by hand.
  rmSync(join(dir, '.taskvault', 'cache', 'index'), { recursive: true });
  const miss = await runCli(['cache', 'get', 'agg', 'in.txt', 'got.txt'], { cwd: dir });
  assert.is(miss.code, 1, miss.err); // a miss, on a new index
  assert.is.not(generation(dir), afterClean);

  // A corrupt index, rebuilt from hot/: entries removed since their copies were made may be back.
  writeFileSync(join(dir, '.taskvault', 'cache', 'index', 'data.mdb'), Buffer.alloc(98304, 0xa5));
  const beforeRepair = generation(dir);
  const repaired = await runCli(['verify', '--repair'], { cwd: dir });
  assert.match(repaired.err + repaired.out, /rebuilt/);
  assert.is.not(generation(dir), beforeRepair);
});

test.run();

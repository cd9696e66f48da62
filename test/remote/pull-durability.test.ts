/**
 * What a remote hit flushes to disk. By default (durability 'fast') a pull flushes none of the
 * blobs it writes: the remote keeps the bytes, and a blob a power cut damages is a verified miss
 * that pulls again. With `durability: 'strict'` each pulled blob is flushed before the entry is
 * committed, as a miss's are. Observed on the built CLI with strace(1), against a real nginx.
 */
import { readFileSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Entry } from '../../src/store/entry.js';
import { uniqueBlobs } from '../../src/store/entry.js';
import { blobPath } from '../../src/store/layout.js';
import {
  CLI,
  listSorted,
  readTreeSnapshot,
  runCli,
  runTraced,
  tempDir,
  writeTree,
} from '../support/helpers.js';
import { nginxFor } from '../support/servers.js';

const test = suite('remote: what a pull flushes');
const ng = nginxFor(test);

// One output above the 1 MB that pulls keep in memory (streamed to a temp file), the rest below it.
const GEN = `import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
mkdirSync('out', { recursive: true });
writeFileSync('out/large.bin', randomBytes(3 * 1024 * 1024));
for (let i = 0; i < 5; i++) writeFileSync('out/small' + i + '.bin', randomBytes(1000 + i));
console.log('generated');
`;

const machine = () =>
  writeTree(tempDir('tv-pull-'), {
    'gen.mjs': GEN,
    'taskvault.config.json': JSON.stringify({
      tasks: { gen: { command: ['node', 'gen.mjs'], inputs: ['gen.mjs'], outputs: ['out/**'] } },
    }),
  });

/** Machine B's remote hit under strace; the flush calls on paths of its cache, and its entry. */
async function tracedPull(origin: string, env: Record<string, string>) {
  const b = machine();
  const r = await runTraced('fsync,fdatasync,rename', [process.execPath, CLI, 'run', 'gen'], { cwd: b, env });
  assert.is(r.code, 0, r.err);
  assert.match(r.err, /hit \(remote\)/);
  assert.equal(
    readTreeSnapshot(join(b, 'out')),
    readTreeSnapshot(join(origin, 'out')),
    'outputs are identical',
  );
  const cache = join(b, '.taskvault', 'cache');
  const [key] = listSorted(join(cache, 'hot'));
  const entry = JSON.parse(readFileSync(join(cache, 'hot', key!), 'utf8')) as Entry;
  const { lines } = r;
  const flushes = lines.filter((l) => /\bf(data)?sync\(\d+</.test(l));
  const verify = await runCli(['verify'], { cwd: b });
  assert.is(verify.code, 0, `the pulled entry verifies: ${verify.out}${verify.err}`);
  return { cache, entry, lines, flushes };
}

test('by default a pull writes its blobs without flushing them; with durability strict each is flushed before the commit', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/durability` };
  const a = machine();
  const filled = await runCli(['run', 'gen'], { cwd: a, env });
  assert.is(filled.code, 0, filled.err);

  const fast = await tracedPull(a, env);
  const ofBlobs = (flushes: string[], cache: string) =>
    flushes.filter((l) => l.includes(`<${join(cache, 'blobs')}`) || l.includes(`<${join(cache, 'tmp')}`));
  assert.equal(ofBlobs(fast.flushes, fast.cache), [], 'no blob or temp file flushed');

  const strict = await tracedPull(a, { ...env, TASKVAULT_DURABILITY: 'strict' });
  const blobs = uniqueBlobs(strict.entry);
  const large = blobs.filter((b) => b.size > 1024 * 1024);
  assert.is(large.length, 1);
  const committed = strict.lines.findIndex(
    (l) => l.includes(`rename(`) && l.includes(join(strict.cache, 'hot', strict.entry.key)),
  );
  assert.ok(committed > 0, 'the hot copy was renamed into place');
  const before = strict.lines.slice(0, committed);
  // Small blobs are flushed under their temp name before they are named; the large one at commit.
  const tempFlushes = before.filter(
    (l) => /fdatasync\(\d+</.test(l) && l.includes(`<${join(strict.cache, 'tmp')}`),
  );
  assert.is(
    tempFlushes.length,
    blobs.length - 1,
    `small blobs flushed: ${tempFlushes.length} of ${blobs.length - 1}`,
  );
  const largePath = blobPath(join(strict.cache, 'blobs'), large[0]!.hash);
  assert.ok(
    before.some((l) => /fsync\(\d+</.test(l) && l.includes(`<${largePath}>`)),
    'the large blob is fsynced before the commit',
  );
});

test('a pulled blob damaged later (as a power loss can leave it) fails its check, and the entry is pulled again', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/damaged` };
  const a = machine();
  assert.is((await runCli(['run', 'gen'], { cwd: a, env })).code, 0);
  // Found through its hot/ copy (the usual way), and through the index alone (a copy gone).
  for (const withHotCopy of [true, false]) {
    const b = machine();
    const first = await runCli(['run', 'gen'], { cwd: b, env });
    assert.match(first.err, /hit \(remote\)/);
    const cache = join(b, '.taskvault', 'cache');
    const [key] = listSorted(join(cache, 'hot'));
    const entry = JSON.parse(readFileSync(join(cache, 'hot', key!), 'utf8')) as Entry;
    const large = uniqueBlobs(entry).find((x) => x.size > 1024 * 1024)!;
    truncateSync(blobPath(join(cache, 'blobs'), large.hash), 1000);
    if (!withHotCopy) rmSync(join(cache, 'hot', key!));
    rmSync(join(b, 'out'), { recursive: true });

    const again = await runCli(['run', 'gen'], { cwd: b, env });
    assert.is(again.code, 0, again.err);
    assert.match(again.err, /not used: .*; trying the team cache/);
    assert.match(
      again.err,
      /hit \(remote\)/,
      `served from the team cache, not run (hot copy: ${withHotCopy})`,
    );
    assert.equal(readTreeSnapshot(join(b, 'out')), readTreeSnapshot(join(a, 'out')), 'outputs are identical');
    assert.is((await runCli(['verify'], { cwd: b })).code, 0, 'the blob is whole again');
  }
});

test.run();

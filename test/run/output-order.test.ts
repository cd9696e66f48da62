/**
 * The order of stdout and stderr on a miss, and on the hit that replays it. They are two pipes, so
 * their chunks keep the order in which TaskVault reads them: a miss that blocked its thread right
 * after starting the command (loading and opening the index, 20-40 ms) found both pipes full and
 * read them one after the other, printed `out1 out2 err1 err2` for `out1 err1 out2 err2`, and
 * stored that order for every hit to replay.
 */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, runProcess, tempDir } from '../support/helpers.js';

const PAIRS = 8;
/** Starts writing at once (sh starts in ~1 ms), a line every 10 ms, alternating streams. */
const SCRIPT = `for i in $(seq ${PAIRS}); do echo out$i; sleep 0.01; echo err$i >&2; sleep 0.01; done`;
const EXPECTED = Array.from({ length: PAIRS }, (_, i) => `out${i + 1}\nerr${i + 1}\n`).join('');

/** `taskvault run` with stderr into the same pipe as stdout, as `2>&1` in a terminal. */
const both = (dir: string, cacheDir: string) =>
  runProcess('sh', ['-c', `node "$CLI" run --cache-dir "$CACHE" -- sh -c "$SCRIPT" 2>&1`], {
    cwd: dir,
    env: { CLI, CACHE: cacheDir, SCRIPT, TASKVAULT_QUIET: '1' },
  });

test('a miss keeps the order of stdout and stderr, and its hit replays exactly that', async () => {
  const rounds = 5;
  let inOrder = 0;
  const seen: string[] = [];
  for (let round = 0; round < rounds; round++) {
    // A fresh cache each round: the miss of a key with no copy in hot/, which used to open the
    // index while the command ran.
    const dir = tempDir('tv-order-');
    const cache = join(dir, 'cache');
    const miss = await both(dir, cache);
    const hit = await both(dir, cache);
    assert.is(miss.code, 0);
    assert.is(hit.out, miss.out, `round ${round}: the hit replays what the miss printed`);
    if (miss.out === EXPECTED) inOrder++;
    else seen.push(miss.out.replace(/\n/g, ' '));
  }
  // Two pipes read by one thread keep their order only as well as that thread keeps up: a CI
  // machine that does not schedule it for 10 ms can mix one round up. Blocking it after every
  // start mixed up all of them.
  assert.ok(
    inOrder >= 3,
    `${inOrder} of ${rounds} misses kept the order; the others printed:\n${seen.join('\n')}`,
  );
});

test.run();

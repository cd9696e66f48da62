/**
 * The daemon never makes a stale hit: with it vouching for the inputs just before, an edit made
 * immediately before a run (no sleep) of any kind is seen, and the output always matches the tree
 * (support: every run's out/o.txt is compared with the files as they are). Also: a daemon that
 * lost events (its inotify queue overflowed while it was stopped) trusts nothing it vouched for.
 */
import {
  chmodSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  daemonSaid,
  foregroundDaemon,
  killed,
  run,
  settle,
  settledProject,
  untilVouched,
  wasHit,
} from '../support/daemon.js';
import { runCli, writeTree } from '../support/helpers.js';

/** Writes `content` and puts the old mtime back, as tools that keep timestamps do. */
function writeKeepingMtime(path: string, content: string): void {
  const before = statSync(path);
  writeFileSync(path, content);
  utimesSync(path, before.atime, before.mtime);
}

const EDITS: Array<[string, (dir: string, n: number) => void]> = [
  ['a file rewritten, same size, mtime kept', (d, n) => writeKeepingMtime(join(d, 'src/a.txt'), `${n % 10}`)],
  ['a file appended to', (d, n) => writeFileSync(join(d, 'src/lib/deep/c.txt'), `c${n}`, { flag: 'a' })],
  ['a file added', (d, n) => writeFileSync(join(d, 'src/lib', `new${n}.txt`), `${n}`)],
  ['a file deleted', (d) => unlinkSync(join(d, 'src/lib/b.txt'))],
  ['a file made executable', (d) => chmodSync(join(d, 'src/a.txt'), 0o755)],
  ['a file renamed', (d, n) => renameSync(join(d, 'src/a.txt'), join(d, `src/a${n}.txt`))],
  ['a directory added', (d, n) => writeTree(d, { [`src/more${n}/x.txt`]: 'x' })],
  ['a directory removed', (d) => rmSync(join(d, 'src/lib/deep'), { recursive: true })],
  [
    'a file replaced by rename over it',
    (d, n) => {
      writeFileSync(join(d, 'tmp.txt'), `replaced ${n}`);
      renameSync(join(d, 'tmp.txt'), join(d, 'src/lib/deep/c.txt'));
    },
  ],
];

test('an edit made just before a run is never served with the old key', async () => {
  const dir = await settledProject();
  const miss = await run(dir);
  assert.not.ok(wasHit(miss));
  const daemon = await foregroundDaemon(dir);
  try {
    for (const [i, [what, edit]] of EDITS.entries()) {
      // The daemon vouches for the tree as it is now (each edit leaves it unsettled for 2 s).
      writeTree(dir, { 'src/a.txt': 'a', 'src/lib/b.txt': 'b', 'src/lib/deep/c.txt': 'c' });
      chmodSync(join(dir, 'src/a.txt'), 0o644);
      await settle();
      await untilVouched(dir);
      edit(dir, i);
      const after = await run(dir); // checks out/o.txt against the tree
      assert.not.ok(wasHit(after), `${what}: a hit\n${after.err}`);
      assert.is.not(daemonSaid(after), 'unchanged', what);
    }
  } finally {
    await killed(daemon);
  }
});

test('the command or its env changing is a miss even while the daemon vouches', async () => {
  const dir = await settledProject();
  await run(dir);
  const daemon = await foregroundDaemon(dir);
  try {
    await untilVouched(dir);
    const other = await run(dir, {}, ['--env', 'SOME_VAR']);
    assert.not.ok(wasHit(other), other.err);
  } finally {
    await killed(daemon);
  }
});

test('an input named outside the listed directories is watched too; its neighbours are not', async () => {
  const dir = await settledProject({ 'extra.txt': 'e', 'unrelated.txt': 'u' });
  const extra = ['--inputs', 'extra.txt'];
  await run(dir, {}, extra);
  const daemon = await foregroundDaemon(dir);
  try {
    await untilVouched(dir, {}, extra);
    writeFileSync(join(dir, 'unrelated.txt'), 'not an input');
    assert.is(daemonSaid(await run(dir, {}, extra)), 'unchanged', 'a neighbour withdrew the vouch');
    writeFileSync(join(dir, 'extra.txt'), 'edited just before the run');
    const after = await run(dir, {}, extra);
    assert.not.ok(wasHit(after), after.err);
  } finally {
    await killed(daemon);
  }
});

test('a vouched key with no entry any more runs the command and caches it again', async () => {
  // The file list is then decoded from the vouched manifest (it was not, for the key).
  const dir = await settledProject();
  await run(dir);
  const daemon = await foregroundDaemon(dir);
  try {
    await untilVouched(dir);
    const cleaned = await runCli(['clean', '--yes'], { cwd: dir });
    assert.is(cleaned.code, 0, cleaned.err);
    const again = await run(dir);
    assert.is(daemonSaid(again), 'unchanged');
    assert.not.ok(wasHit(again), again.err);
    assert.match(again.err, /cached 1 file/);
    assert.ok(wasHit(await run(dir)));
  } finally {
    await killed(daemon);
  }
});

test('a daemon whose inotify queue overflowed vouches for nothing it vouched for before', async () => {
  // Two projects on one cache (one daemon): a burst in one overflows the kernel's queue while the
  // daemon is stopped, so the edit in the other is lost; the daemon must not vouch for it.
  const a = await settledProject();
  const b = await settledProject();
  const cache = join(a, 'shared-cache');
  const env = { TASKVAULT_CACHE_DIR: cache };
  await run(a, env);
  await run(b, env);
  const daemon = await foregroundDaemon(a, { args: ['--cache-dir', cache] });
  try {
    await untilVouched(a, env);
    await untilVouched(b, env);
    daemon.kill('SIGSTOP');
    const one = join(a, 'src/a.txt');
    const two = join(a, 'src/lib/b.txt');
    const t = new Date();
    // Alternating files: the kernel merges only an event identical to the last one queued.
    for (let i = 0; i < 20_000; i++) utimesSync(i % 2 ? one : two, t, t);
    writeFileSync(join(b, 'src/lib/deep/c.txt'), 'edited while events were being dropped');
    daemon.kill('SIGCONT');
    const after = await run(b, env);
    assert.not.ok(wasHit(after), after.err);
    assert.is.not(daemonSaid(after), 'unchanged');
    assert.match(readFileSync(join(cache, 'daemon/log'), 'utf8'), /queue may have overflowed/);
  } finally {
    daemon.kill('SIGCONT');
    await killed(daemon);
  }
});

test.run();

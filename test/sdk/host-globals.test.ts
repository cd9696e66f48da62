/**
 * A library must leave its host alone: after a program uses the Client (every method, on a sound
 * cache, on one that cannot be opened, on a read-only one, and on a disk that fills up while it is
 * open), its console.* functions and its process listeners are exactly the ones it had, nothing
 * rejected unhandled (the host runs with --unhandled-rejections=strict), and every cache failure
 * came back through onWarning or a returned value.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REPO, runProcess, tempDir, writeTree } from '../support/helpers.js';

const HOST = `
import { Client, TaskVaultError } from ${JSON.stringify(pathToFileURL(join(REPO, 'dist', 'index.js')).href)};
import { closeSync, openSync, writeSync } from 'node:fs';

const EVENTS = ['unhandledRejection', 'uncaughtException', 'warning', 'exit', 'beforeExit', 'SIGINT', 'SIGTERM', 'SIGHUP'];
const snapshot = () => ({
  console: { error: console.error, warn: console.warn, log: console.log, info: console.info },
  listeners: Object.fromEntries(
    [...new Set([...EVENTS, ...process.eventNames()])].map((e) => [String(e), process.listeners(e)]),
  ),
});
// The host's own handler, as a real program might have one.
process.on('SIGTERM', () => process.exit(143));
const before = snapshot();

/** Fills the filesystem of \`path\` until it has no space left. */
function fill(path) {
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(1 << 16);
  try { for (;;) writeSync(fd, block); } catch (e) { if (e.code !== 'ENOSPC') throw e; }
  // The last few blocks a bigger write could not use.
  try { for (;;) writeSync(fd, block.subarray(0, 512)); } catch (e) { if (e.code !== 'ENOSPC') throw e; }
  closeSync(fd);
}

const warnings = [];
const results = {};
const errors = {};
const step = async (name, f) => {
  try {
    results[name] = await f();
  } catch (e) {
    results[name] = e instanceof TaskVaultError ? 'TaskVaultError ' + e.reason : 'threw ' + String(e);
    errors[name] = e.message;
  }
};
const tv = new Client({ cwd: process.env.PROJECT, cacheDir: process.env.CACHE, onWarning: (m) => warnings.push(m) });
await step('stats', async () => (await tv.getStats()).entries);
if (process.env.FILL) fill(process.env.FILL);
await step('save', () => tv.cacheResult('t', 'in', process.env.OUTPUT ?? 'out').then((k) => k.length));
await step('get', async () => (await tv.getCachedResult('t', 'in')).hit);
let calls = 0;
const memo = tv.memoize('m', async (x) => ({ x, call: ++calls }));
await step('memo', async () => [await memo(1), await memo(1)].map((r) => r.call));
await step('run', async () => (await tv.run({ command: ['node', '-e', '1'], inputs: ['in.txt'] })).kind);
await step('explain', async () => (await tv.explain({ command: ['node', '-e', '1'], inputs: ['in.txt'] })).key.length);
await tv.close();
// Anything rejected late (a commit failing after close) would end this process here.
await new Promise((r) => setTimeout(r, 300));

const after = snapshot();
const changed = [];
for (const [name, f] of Object.entries(before.console)) if (after.console[name] !== f) changed.push('console.' + name);
// lmdb-js (not TaskVault) adds one native 'exit' hook per process, the first time it opens an
// environment, to finish its pending syncs: counted apart, and at most one.
const isLmdbExitHook = (l) => String(l) === 'function () { [native code] }' && !before.listeners.exit.includes(l);
const lmdbExitHooks = after.listeners.exit.filter(isLmdbExitHook).length;
after.listeners.exit = after.listeners.exit.filter((l) => !isLmdbExitHook(l));
for (const name of new Set([...Object.keys(before.listeners), ...Object.keys(after.listeners)])) {
  const a = before.listeners[name] ?? [];
  const b = after.listeners[name] ?? [];
  if (a.length !== b.length || a.some((l, i) => l !== b[i])) changed.push('process listeners for ' + name);
}
console.log('RESULT ' + JSON.stringify({ changed, lmdbExitHooks, results, errors, warnings }));
`;

interface HostResult {
  changed: string[];
  lmdbExitHooks: number;
  results: Record<string, unknown>;
  errors: Record<string, string>;
  warnings: string[];
}

async function host(env: Record<string, string>): Promise<HostResult> {
  const project = writeTree(tempDir('tv-host-'), { '.git/HEAD': 'ref: refs/heads/main\n', 'in.txt': 'x' });
  const script = join(tempDir('tv-host-script-'), 'host.mjs');
  writeFileSync(script, HOST);
  const r = await runProcess(process.execPath, ['--unhandled-rejections=strict', script], {
    cwd: project,
    env: { PROJECT: project, ...env },
  });
  assert.is(r.code, 0, `the host program ended with ${r.code}:\n${r.out}\n${r.err}`);
  const line = r.out.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, r.out + r.err);
  const result = JSON.parse(line.slice('RESULT '.length)) as HostResult;
  assert.equal(result.changed, [], 'the host program’s console and process listeners are untouched');
  assert.ok(result.lmdbExitHooks <= 1, `${result.lmdbExitHooks} exit hooks from lmdb`);
  return result;
}

test('a sound cache: every method works and leaves the host as it was', async () => {
  const r = await host({ CACHE: join(tempDir('tv-host-cache-'), 'cache') });
  assert.equal(r.results, { stats: 0, save: 64, get: true, memo: [1, 1], run: 'miss', explain: 64 });
  assert.equal(r.warnings, []);
});

test('a cache that cannot be opened: warnings and TaskVaultError values, the host untouched', async () => {
  const dir = tempDir('tv-host-cache-');
  writeFileSync(join(dir, 'file'), '');
  const r = await host({ CACHE: join(dir, 'file', 'cache') });
  assert.equal(r.results, {
    stats: 'TaskVaultError cache',
    save: 'TaskVaultError cache',
    get: false,
    memo: [1, 2],
    run: 'uncached',
    explain: 'TaskVaultError cache',
  });
  assert.ok(r.warnings.length > 0);
  for (const w of r.warnings) assert.match(w, /cannot open the cache at .*ENOTDIR/);
});

function tryMount(args: string[]): boolean {
  try {
    execFileSync('mount', args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('a read-only cache (EROFS mount): the host untouched', async () => {
  const cache = join(tempDir('tv-host-cache-'), 'cache');
  await host({ CACHE: cache }); // something cached
  if (!tryMount(['--bind', cache, cache])) {
    assert.not.ok(process.env.CI, 'CI must be able to mount (it runs as root)');
    console.log('read-only cache: SKIPPED (no permission to mount here)');
    return;
  }
  try {
    assert.ok(tryMount(['-o', 'remount,ro,bind', cache]), 'remount read-only');
    const r = await host({ CACHE: cache });
    // The run's entry is served from hot/, which needs no writes; the rest needs the index.
    assert.equal(r.results, {
      stats: 'TaskVaultError cache',
      save: 'TaskVaultError cache',
      get: false,
      memo: [1, 2],
      run: 'hit',
      explain: 'TaskVaultError cache',
    });
    assert.ok(r.warnings.length > 0);
    for (const w of r.warnings) assert.match(w, /cannot open the cache at .*Read-only file system/);
  } finally {
    execFileSync('umount', [cache]);
  }
});

test('a disk that fills up while the cache is open: failures come back as values, the host untouched', async () => {
  const mnt = tempDir('tv-host-tmpfs-');
  if (!tryMount(['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt])) {
    assert.not.ok(process.env.CI, 'CI must be able to mount a tmpfs (it runs as root)');
    console.log('disk full: SKIPPED (no permission to mount a tmpfs here)');
    return;
  }
  try {
    // Opened with space to spare, then the disk fills: an empty result needs no blob space, so its
    // LMDB commit is what fails (asynchronously, in lmdb-js's write thread).
    const r = await host({ CACHE: join(mnt, 'cache'), FILL: join(mnt, 'filler'), OUTPUT: '' });
    assert.equal(r.results, {
      stats: 0,
      save: 'TaskVaultError cache',
      get: false,
      memo: [1, 2],
      run: 'uncached',
      explain: 64,
    });
    assert.match(r.errors.save!, /^index commit failed: No space left on device/);
    assert.equal(
      r.warnings.filter((w) => w.startsWith('memoize')),
      [
        // Small results go in the index (store/index/small-blobs.ts): its commit is what fails.
        'memoize m: not cached: index commit failed: No space left on device',
        'memoize m: not cached: index commit failed: No space left on device',
      ],
    );
    assert.match(r.warnings.at(-1)!, /^not cached: the cache disk is full/);
  } finally {
    execFileSync('umount', [mnt]);
  }
});

test.run();

/**
 * Input manifests (src/fingerprint/manifest.ts) only ever save work: after any edit to the tree,
 * the key computed with a manifest is the key computed from scratch. Manifests are kept in memory
 * here, and "recorded later" by moving their recording time forward, so that the trusted paths
 * run without waiting out the racy window; the same sequence is then checked on a real LMDB index.
 */
import {
  chmodSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TaskSpec } from '../../src/config/resolve.js';
import {
  type Fingerprinted,
  fingerprintTask,
  type ManifestStore,
} from '../../src/fingerprint/fingerprint.js';
import {
  decodeManifest,
  encodeManifest,
  type Manifest,
  peekManifest,
  RACY_WINDOW_MS,
} from '../../src/fingerprint/manifest.js';
import { Store } from '../../src/store/store.js';
import { taskSpec, tempDir, writeTree } from '../support/helpers.js';

const spec = (root: string, inputs: string[] | undefined, env: string[] = []): TaskSpec =>
  taskSpec(root, { inputs, outputs: ['out/**'], env });

/** Manifests in memory, round-tripped through their binary form; `puts` counts writes. */
function memoryManifests(o: { settle: boolean }): ManifestStore & { puts: number } {
  const kept = new Map<string, Buffer>();
  const store = {
    puts: 0,
    get: (id: string, algo: 'blake3' | 'sha256', root: string) => decodeManifest(kept.get(id), algo, root),
    put: (id: string, m: Manifest) => {
      store.puts++;
      // As if recorded well after every write so far: the trusted paths are then taken.
      const recordedMs = o.settle ? m.recordedMs + 3 * RACY_WINDOW_MS : m.recordedMs;
      kept.set(id, encodeManifest({ ...m, recordedMs }));
    },
  };
  return store;
}

const options = (root: string, manifests?: ManifestStore) => ({
  algorithm: 'blake3' as const,
  salt: '',
  cacheDir: join(root, '.taskvault/cache'),
  ...(manifests ? { manifests } : {}),
});

async function fp(s: TaskSpec, manifests?: ManifestStore): Promise<Fingerprinted> {
  const r = await fingerprintTask(s, options(s.root, manifests));
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

/** Writes `content` keeping the file's mtime, as an editor that restores timestamps would. */
function writeKeepingMtime(path: string, content: string): void {
  const before = statSync(path);
  writeFileSync(path, content);
  utimesSync(path, before.atime, before.mtime);
}

const EDITS: Array<[string, (root: string, n: number) => void]> = [
  ['modify a file', (r, n) => writeFileSync(join(r, 'src/a.txt'), `a ${n}`)],
  ['same size, mtime kept', (r, n) => writeKeepingMtime(join(r, 'src/a.txt'), `A ${n}`)],
  ['add a file in a new directory', (r, n) => writeTree(r, { [`src/new${n}/deep/x.txt`]: `x ${n}` })],
  ['add a file to an existing directory', (r, n) => writeFileSync(join(r, 'src/lib', `f${n}.txt`), `f ${n}`)],
  // The files before the changed one are taken from the manifest, not statted twice.
  ['modify the last file', (r, n) => writeFileSync(join(r, 'src/lib/c.txt'), `c ${n}`)],
  ['the last file: same size, mtime kept', (r, n) => writeKeepingMtime(join(r, 'src/lib/c.txt'), `C ${n}`)],
  ['remove a file', (r) => unlinkSync(join(r, 'src/lib/b.txt'))],
  ['restore the removed file', (r) => writeFileSync(join(r, 'src/lib/b.txt'), 'b')],
  ['make a file executable', (r) => chmodSync(join(r, 'src/lib/b.txt'), 0o755)],
  ['rename a file', (r, n) => renameSync(join(r, 'src/lib/b.txt'), join(r, `src/lib/b${n}.txt`))],
  ['remove a directory', (r) => rmSync(join(r, 'src/lib'), { recursive: true })],
  ['a new directory where one was', (r) => writeTree(r, { 'src/lib/b.txt': 'b again' })],
  ['add a symbolic link to a file', (r, n) => symlinkSync('../a.txt', join(r, 'src/lib', `link${n}`))],
  ['change an ignored directory', (r, n) => writeTree(r, { [`src/node_modules/m${n}.js`]: 'x' })],
  ['change an output', (r, n) => writeTree(r, { [`out/o${n}.txt`]: 'o' })],
];

for (const inputs of [['src/**'], undefined]) {
  test(`manifest: after each edit the key is the key computed from scratch (inputs ${JSON.stringify(inputs)})`, async () => {
    const root = writeTree(tempDir(), { 'src/a.txt': 'a', 'src/lib/b.txt': 'b', 'src/lib/c.txt': 'c' });
    const s = spec(root, inputs);
    const manifests = memoryManifests({ settle: true });
    let key = (await fp(s, manifests)).key;
    assert.is(key, (await fp(s)).key);
    let n = 0;
    for (const [name, edit] of EDITS) {
      edit(root, n++);
      const withManifest = await fp(s, manifests);
      const scratch = await fp(s);
      assert.is(withManifest.key, scratch.key, `after "${name}"`);
      assert.equal(withManifest.fingerprint.inputs, scratch.fingerprint.inputs, `inputs after "${name}"`);
      const ignored = name.includes('ignored') || name.includes('output');
      if (ignored) assert.is(withManifest.key, key, `"${name}" changed the key`);
      else assert.is.not(withManifest.key, key, `"${name}" did not change the key`);
      key = withManifest.key;

      // Unchanged since: answered from the manifest, nothing read and nothing written.
      const puts = manifests.puts;
      const again = await fp(s, manifests);
      assert.is(again.key, key, `repeat after "${name}"`);
      assert.is(again.bytesHashed, 0, `repeat after "${name}" read files`);
      assert.is(manifests.puts, puts, `repeat after "${name}" rewrote the manifest`);
    }
  });
}

test('manifest: absolute input globs, inside and outside the root, give the keys of relative ones', async () => {
  const root = writeTree(tempDir(), { 'src/a.txt': 'a', 'src/lib/b.txt': 'b', 'top.txt': 't' });
  const other = writeTree(tempDir(), { 'o.txt': 'o' });
  const outside = relative(root, other);
  const pairs: Array<[string[], string[]]> = [
    [[join(root, 'src/**')], ['src/**']],
    [
      [join(root, 'top.txt'), `!${join(root, 'src/lib/**')}`, join(root, 'src/**')],
      ['top.txt', '!src/lib/**', 'src/**'],
    ],
    [[join(other, '*.txt')], [`${outside}/*.txt`]],
  ];
  let edits = 0;
  for (const [absolute, relativeGlobs] of pairs) {
    const s = spec(root, absolute);
    const manifests = memoryManifests({ settle: true });
    const same = async (what: string) => {
      const withManifest = await fp(s, manifests);
      const scratch = await fp(spec(root, relativeGlobs));
      assert.ok(withManifest.fingerprint.inputs.length > 0, `${absolute}: no inputs ${what}`);
      assert.equal(withManifest.fingerprint.inputs, scratch.fingerprint.inputs, `${absolute} ${what}`);
      assert.is(withManifest.key, scratch.key, `${absolute} ${what}`);
      return withManifest.key;
    };
    let key = await same('at first');
    for (const file of [join(root, 'src/a.txt'), join(root, 'top.txt'), join(other, 'o.txt')]) {
      writeFileSync(file, `edit ${edits++}`);
      const now = await same(`after editing ${file}`);
      assert.is(await same(`repeat after editing ${file}`), now);
      const isInput = (await fp(s)).fingerprint.inputs.some(([p]) => join(root, p) === file);
      assert.is(now !== key, isInput, `${absolute}: editing ${file}`);
      key = now;
    }
  }
});

test('manifest: input globs that matched nothing come from a fresh expansion; a manifest hit matches nothing', async () => {
  const root = writeTree(tempDir(), { 'src/a.txt': 'a' });
  mkdirSync(join(root, 'lib'));
  const s = spec(root, ['src/**', 'lib/**']);
  const manifests = memoryManifests({ settle: true });
  assert.equal((await fp(s, manifests)).unmatchedInputs, ['lib/**']);
  const again = await fp(s, manifests);
  assert.is(again.bytesHashed, 0);
  assert.equal(again.unmatchedInputs, [], 'answered by the manifest: nothing listed, nothing to warn about');
  writeFileSync(join(root, 'lib/b.txt'), 'b');
  assert.equal((await fp(s, manifests)).unmatchedInputs, []);
  assert.equal((await fp(spec(root, undefined))).unmatchedInputs, [], 'no globs declared');
});

/**
 * The "racy git" case, which a real filesystem produces only by chance: a file (or directory)
 * changed within the same timestamp tick as the recording keeps the stat that was recorded. The
 * manifest is rewritten to hold exactly that (the current stat, the old hash or listing, recorded
 * just after the change); it must not be trusted.
 */
test('manifest: a stat recorded within the racy window of a change is not trusted', async () => {
  const root = writeTree(tempDir(), { 'src/a.txt': 'a', 'src/lib/b.txt': 'b' });
  const s = spec(root, ['src/**']);
  let kept: Manifest | undefined;
  const manifests: ManifestStore = {
    get: () => kept,
    put: (_id, m) => {
      kept = decodeManifest(encodeManifest(m), 'blake3', root);
    },
  };
  await fp(s, manifests);
  const old = kept!;
  const justAfter = (ms: number) => ms + RACY_WINDOW_MS / 2;

  // A file: same size, new content, and the manifest claims the new stat for the old hash.
  writeFileSync(join(root, 'src/a.txt'), 'A');
  const st = statSync(join(root, 'src/a.txt'));
  const i = old.files.paths.indexOf('src/a.txt');
  const nums = Float64Array.from(old.files.nums);
  nums.set([st.dev, st.ino, st.size, st.mode, st.mtimeMs, st.ctimeMs], 6 * i);
  const listing = {
    dirs: old.listing!.dirs,
    stats: old.listing!.dirs.map((d) => {
      const ds = statSync(join(root, d));
      return [ds.dev, ds.ino, ds.mtimeMs, ds.ctimeMs];
    }),
  };
  kept = { ...old, files: { ...old.files, nums }, listing, recordedMs: justAfter(st.ctimeMs) };
  const afterFile = await fp(s, manifests);
  assert.ok(afterFile.bytesHashed > 0, 'racy file stat trusted');
  assert.is(afterFile.key, (await fp(s)).key);

  // A directory: an entry added, and the manifest claims the directory's new stat for the old list.
  const before = kept!;
  writeFileSync(join(root, 'src/lib/new.txt'), 'new');
  const lib = before.listing!.dirs.indexOf('src/lib');
  const ds = statSync(join(root, 'src/lib'));
  const stats = before.listing!.stats.map((x) => [...x]);
  stats[lib] = [ds.dev, ds.ino, ds.mtimeMs, ds.ctimeMs];
  kept = { ...before, listing: { dirs: before.listing!.dirs, stats }, recordedMs: justAfter(ds.ctimeMs) };
  const afterDir = await fp(s, manifests);
  assert.ok(
    afterDir.files.some((f) => f.path === 'src/lib/new.txt'),
    'racy directory listing trusted: the new file was missed',
  );
  assert.is(afterDir.key, (await fp(s)).key);
});

test('manifest: the command, env and salt still count when no input changed', async () => {
  const root = writeTree(tempDir(), { 'src/a.txt': 'a' });
  const manifests = memoryManifests({ settle: true });
  const base = spec(root, ['src/**'], ['TV_MANIFEST_TEST']);
  const k1 = (await fp(base, manifests)).key;
  const other = await fingerprintTask(base, { ...options(root, manifests), env: { TV_MANIFEST_TEST: '1' } });
  assert.ok(other.ok);
  assert.is.not(other.value.key, k1);
  assert.is.not((await fp({ ...base, command: ['false'] }, manifests)).key, k1);
  const salted = await fingerprintTask(base, { ...options(root, manifests), salt: 'v2' });
  assert.ok(salted.ok);
  assert.is.not(salted.value.key, k1);
  assert.is((await fp(base, manifests)).key, k1);
});

test('manifest: a corrupt or foreign record is ignored, never trusted', async () => {
  const root = writeTree(tempDir(), { 'src/a.txt': 'a' });
  const s = spec(root, ['src/**']);
  const manifests = memoryManifests({ settle: true });
  await fp(s, manifests);
  let stored: Manifest | undefined;
  const spy: ManifestStore = {
    get: (id, algo, r) => {
      stored = manifests.get(id, algo, r);
      return stored;
    },
    put: () => {},
  };
  await fp(s, spy);
  assert.ok(stored);
  const buf = encodeManifest(stored!);
  assert.is(decodeManifest(buf.subarray(0, buf.length - 1), 'blake3', root), undefined, 'truncated');
  assert.is(decodeManifest(buf, 'sha256', root), undefined, 'other algorithm');
  const garbled = Buffer.from(buf);
  garbled.fill(0x7b, garbled.length - 10);
  assert.is(decodeManifest(garbled, 'blake3', root), undefined, 'bad JSON');
});

test('manifest: a peek reads the key and digests as decoding would, and refuses what decoding refuses', async () => {
  const root = writeTree(tempDir(), { 'src/a.txt': 'a', 'src/lib/"restHash":"x".txt': 'tricky name' });
  const s = spec(root, ['src/**']);
  const manifests = memoryManifests({ settle: true });
  const r = await fp(s, manifests);
  let stored: Manifest | undefined;
  await fp(s, {
    get: (id, algo, at) => {
      stored = manifests.get(id, algo, at);
      return stored;
    },
    put: () => {},
  });
  assert.ok(stored);
  const buf = encodeManifest(stored!);
  const peek = peekManifest(buf, 'blake3', root);
  assert.ok(peek);
  assert.is(peek!.key, r.key);
  assert.is(peek!.restHash, stored!.restHash);
  assert.is(peek!.count, 2);
  assert.is(peek!.recordedMs, stored!.recordedMs);
  assert.ok(peek!.digests.equals(stored!.digests));
  assert.equal(peek!.decode()?.files.paths, stored!.files.paths);
  assert.is(peekManifest(buf.subarray(0, buf.length - 1), 'blake3', root), undefined, 'truncated');
  assert.is(peekManifest(buf, 'sha256', root), undefined, 'other algorithm');
  const garbled = Buffer.from(buf);
  garbled.fill(0x7b, garbled.length - 10);
  assert.is(peekManifest(garbled, 'blake3', root), undefined, 'bad tail');
});

test('manifest on a real index: edits through the CLI pipeline give from-scratch keys', async () => {
  const root = writeTree(tempDir(), { 'src/a.txt': 'a', 'src/lib/b.txt': 'b' });
  const s = spec(root, ['src/**']);
  const cacheDir = join(root, '.taskvault/cache');
  const opened = Store.open(cacheDir);
  assert.ok(opened.ok);
  const store = opened.value;
  try {
    const withIndex = async () => {
      const r = await fingerprintTask(s, {
        ...options(root),
        manifests: store.manifestStore(),
      });
      assert.ok(r.ok);
      await store.flush();
      return r.value.key;
    };
    assert.is(await withIndex(), (await fp(s)).key);
    mkdirSync(join(root, 'src/empty'));
    writeFileSync(join(root, 'src/lib/b.txt'), 'bb');
    assert.is(await withIndex(), (await fp(s)).key);
    unlinkSync(join(root, 'src/a.txt'));
    assert.is(await withIndex(), (await fp(s)).key);
    assert.is(await withIndex(), (await fp(s)).key);
  } finally {
    await store.close();
  }
});

test.run();

#!/usr/bin/env node
/**
 * The `taskvault` bin. Start-up is most of a cache hit and a large part of a miss's overhead, and
 * compiling the CLI's JavaScript is much of start-up, on every run. So the build puts the whole CLI
 * into one CommonJS file (dist/cli-bundle.cjs, scripts/bundle.mjs), and this runs it with V8's code
 * cache: the first run saves the compiled code at exit, later runs load it instead of compiling
 * (a miss ~30 ms faster, a hit ~8 ms; bench/results.md). execa, lmdb's JavaScript and fast-glob,
 * which only some paths need, are parts of their own (dist/vendor/*.cjs) with their own cache
 * files, loaded when the CLI asks (VendorLoader). On Node >= 22.1 Node's own compile cache,
 * pointed at the same directory, covers what loads afterwards (jiti, the hash worker).
 *
 * CommonJS, so that Node starts it without its ESM loader, and so that the bundle can be compiled
 * here (vm.Script takes a code cache; ESM source text needs a flag on Node 20).
 *
 * The cache must never run stale or damaged code: its file is named by a BLAKE3 hash of the bundle's
 * bytes (V8 itself checks only the source's length) and of the Node flags (V8 rejects code cached
 * under other flags), carries a hash of its own payload (V8 does not check one), is read only from
 * a directory this user owns and no one else can write to, and is written whole or not at all. Any
 * problem with it costs only the speed-up. `NODE_DISABLE_COMPILE_CACHE=1` turns it off;
 * `TASKVAULT_COMPILE_CACHE=<dir>` moves it; `TASKVAULT_TRACE=1` says what it did.
 */
import fs = require('node:fs');
import nodeModule = require('node:module');
import os = require('node:os');
import path = require('node:path');
import vm = require('node:vm');

/** Loads dist/vendor/<part>.cjs (src/util/vendor.ts), compiled with its own code cache. */
type VendorLoader = (part: string) => unknown;

/** The CLI (src/cli/main.ts); it says whether it ran a command (the miss path). */
type Main = (
  argv?: string[],
  importer?: (specifier: string) => Promise<unknown>,
  requireVendor?: VendorLoader,
) => Promise<{ ranCommand: boolean; exitNow?: boolean } | undefined>;

const MAGIC = Buffer.from('TVCC\x03\x00\x00', 'latin1');
const HASH = 32;
/** The magic, a flags byte, the key's hash, the payload's hash. */
const HEADER = MAGIC.length + 1 + 2 * HASH;
/** Flags byte: the run that wrote the file ran a command, so the miss path's code is in it. */
const WITH_MISS_PATH = 1;
const trace = process.env.TASKVAULT_TRACE
  ? (m: string) => process.stderr.write(`taskvault: trace: ${m}\n`)
  : undefined;

type Hash = (...parts: Array<Buffer | string>) => Buffer;

/**
 * BLAKE3 (native, and loaded by the CLI anyway for fingerprints): hashing the bundle and the cached
 * code this way costs ~0.3 ms, against ~3 ms for loading node:crypto and SHA-1, which nothing else
 * on the run path needs. Undefined if blake-hash cannot be loaded: then there is no code cache, and
 * the bundle, which needs it too, says what is wrong in its one-line error.
 */
function loadHash(): Hash | undefined {
  try {
    const binding = blakeBinding();
    // The bundle's src/util/blake-native.ts takes it from here instead of finding it again.
    (globalThis as Record<symbol, unknown>)[Symbol.for('taskvault.blake-hash')] = binding;
    const { Blake3Hasher } = binding;
    return (...parts) => {
      const h = new Blake3Hasher();
      for (const p of parts) h.update(p);
      return h.digestBuffer();
    };
  } catch {
    // Not installed, or no prebuilt binary for this platform: run without a code cache.
    return undefined;
  }
}

/**
 * blake-hash's binding loaded as src/util/blake-native.ts loads it (from its platform package on
 * Linux with glibc, ~2 ms less than through the package's loader); the bundle is handed it.
 */
function blakeBinding(): typeof import('@napi-rs/blake-hash') {
  const overridden = process.env.NAPI_RS_NATIVE_LIBRARY_PATH || process.env.NAPI_RS_FORCE_WASI;
  if (!overridden && process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    try {
      if (!fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')) {
        const from = nodeModule.createRequire(require.resolve('@napi-rs/blake-hash'));
        return from(`@napi-rs/blake-hash-linux-${process.arch}-gnu`);
      }
    } catch {
      // As blake-native.ts: the package's own loader decides.
    }
  }
  return require('@napi-rs/blake-hash');
}

/** Whether `st` is this user's and no one else can write it: another user's code would run as us. */
function whyNotOurs(st: fs.Stats, uid: number | undefined): string | undefined {
  if (uid !== undefined && st.uid !== uid) return 'belongs to another user';
  if (process.platform !== 'win32' && (st.mode & 0o022) !== 0) return 'is writable by other users';
  return undefined;
}

/**
 * This user's cache directory (created 0700, refused if others could write it) and the hash that
 * names and checks its files, or why there is none.
 */
function cacheDir(): { dir: string; hash: Hash } | { off: string } {
  if (process.env.NODE_DISABLE_COMPILE_CACHE) return { off: 'NODE_DISABLE_COMPILE_CACHE is set' };
  const hash = loadHash();
  if (!hash) return { off: 'cannot load @napi-rs/blake-hash' };
  const uid = process.getuid?.();
  const dir = path.resolve(
    process.env.TASKVAULT_COMPILE_CACHE ||
      path.join(os.tmpdir(), `taskvault-compile-cache-${uid ?? os.userInfo().username}`),
  );
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory()) return { off: `${dir} is not a directory` };
    const why = whyNotOurs(st, uid);
    return why ? { off: `${dir} ${why}` } : { dir, hash };
  } catch (e) {
    return { off: `${dir}: ${(e as Error).message}` };
  }
}

/** The cached code for `key`, if present, ours and whole, with its flags byte. */
function readCache(file: string, key: Buffer, hash: Hash): { payload: Buffer; flags: number } | undefined {
  let data: Buffer;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
    try {
      // Checked on the open file: the directory was checked before, but it could be swapped since.
      const why = whyNotOurs(fs.fstatSync(fd), process.getuid?.());
      if (why) {
        trace?.(`code cache: ${file} ${why}; compiling`);
        return undefined;
      }
      data = fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // No cache file yet, or one that cannot be read: compile from source, as without one.
    return undefined;
  }
  const at = MAGIC.length + 1;
  const payload = data.subarray(HEADER);
  const whole =
    data.length > HEADER &&
    data.subarray(0, MAGIC.length).equals(MAGIC) &&
    data.subarray(at, at + HASH).equals(key) &&
    data.subarray(at + HASH, HEADER).equals(hash(payload));
  if (!whole) trace?.(`code cache: ${file} is damaged; compiling`);
  return whole ? { payload, flags: data[MAGIC.length]! } : undefined;
}

/** Written beside and renamed over, so a reader sees a whole file or none. Never throws. */
function writeCache(file: string, key: Buffer, hash: Hash, script: vm.Script, flags: number): void {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    const payload = script.createCachedData();
    fs.writeFileSync(temp, Buffer.concat([MAGIC, Buffer.of(flags), key, hash(payload), payload]), {
      mode: 0o600,
    });
    fs.renameSync(temp, file);
    trace?.(`code cache: wrote ${file}`);
  } catch (e) {
    try {
      fs.rmSync(temp, { force: true });
    } catch {
      // A temp file that cannot be removed is harmless: it is never read, and the next write replaces it.
    }
    trace?.(`code cache: not written: ${(e as Error).message}`);
  }
}

const PRUNE_AFTER_MS = 24 * 3600_000;

/**
 * Removes what other builds or flags left a day or more ago (each upgrade writes new files), and
 * temp files of killed writers. Only when a cache file is written, which is rare. `current`: the
 * keys of this build's parts, loaded in this run or not.
 */
function prune(dir: string, current: string[]): void {
  try {
    for (const name of fs.readdirSync(dir)) {
      const temp = name.endsWith('.tmp');
      if (!name.startsWith('cli-') || (!temp && current.some((k) => name.startsWith(`cli-${k}-`)))) continue;
      const p = path.join(dir, name);
      if (Date.now() - fs.statSync(p).mtimeMs > (temp ? 3600_000 : PRUNE_AFTER_MS))
        fs.rmSync(p, { force: true });
    }
  } catch {
    // Left for the next writer.
  }
}

/**
 * Node's own compile cache (Node >= 22.1), in the directory checked above unless NODE_COMPILE_CACHE
 * names one: by default it would use a shared directory in the system temp dir.
 */
function enableNodeCache(dir: string): void {
  const enable = (nodeModule as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache;
  if (typeof enable !== 'function') return;
  try {
    enable(process.env.NODE_COMPILE_CACHE ? undefined : path.join(dir, 'node'));
  } catch {
    // Only the speed-up is lost.
  }
}

/** Where this run keeps compiled code: the directory, the hash, and what else goes into a key. */
interface CodeCache {
  dir: string;
  hash: Hash;
  /** What V8 compiles the source in (Node's module wrapper) and the flags it compiles under. */
  flagsKey: string;
  /**
   * The cache holds what the run that wrote it compiled: `run` (what must start fast) and `watch`
   * keep their own; the other commands share one.
   */
  command: string;
}

/**
 * The parts of the CLI that the bin compiles, each with its own cache file: the bundle ('cli'), and
 * the libraries only some paths need, dist/vendor/<part>.cjs (scripts/bundle.mjs). A hit then
 * reads no compiled code of execa or lmdb, which a miss's cache of one big bundle held.
 */
const VENDOR = path.join(__dirname, 'vendor');
const partFile = (part: string) =>
  part === 'cli' ? path.join(__dirname, 'cli-bundle.cjs') : path.join(VENDOR, `${part}.cjs`);

const partKey = (cc: CodeCache, source: Buffer) => cc.hash(source, '\0', cc.flagsKey);

/** A part compiled (with its cached code where it can) and evaluated. */
interface Loaded {
  exports: unknown;
  /** Writes the compiled code out (at exit, so that it holds every function the run compiled). */
  save?: (flags: number) => void;
  /** The flags byte of the cache file used; undefined if none was. */
  usedFlags?: number;
}

function compilePart(part: string, source: Buffer, cc: CodeCache | undefined): Loaded {
  const file = partFile(part);
  let cache: { path: string; key: Buffer; hash: Hash; found: ReturnType<typeof readCache> } | undefined;
  if (cc) {
    const key = partKey(cc, source);
    const name = part === 'cli' ? cc.command : `${part}-${cc.command}`;
    const p = path.join(cc.dir, `cli-${key.toString('hex')}-${name}-v8-${process.versions.v8}.bin`);
    cache = { path: p, key, hash: cc.hash, found: readCache(p, key, cc.hash) };
  }
  const cached = cache?.found;
  const script = new vm.Script(nodeModule.wrap(source.toString('utf8')), {
    filename: file,
    ...(cached ? { cachedData: cached.payload } : {}),
  });
  const used = cached !== undefined && !script.cachedDataRejected;
  if (cache && used) trace?.(`code cache: used ${cache.path}`);
  else if (cache && cached) trace?.(`code cache: ${cache.path} rejected by V8; compiling`);
  const mod = { exports: {} as unknown };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(mod.exports, mod.exports, nodeModule.createRequire(file), mod, file, path.dirname(file));
  const loaded: Loaded = { exports: mod.exports };
  if (used) loaded.usedFlags = cached.flags;
  if (cache) {
    const { path: at, key, hash } = cache;
    loaded.save = (flags) => writeCache(at, key, hash, script, flags);
  }
  return loaded;
}

/** The keys of every part of this build, for prune: those this run did not load are current too. */
function currentKeys(cc: CodeCache): string[] {
  const keys: string[] = [];
  let vendor: string[] = [];
  try {
    vendor = fs.readdirSync(VENDOR).filter((f) => f.endsWith('.cjs'));
  } catch {
    // No parts built.
  }
  for (const part of ['cli', ...vendor.map((f) => f.slice(0, -'.cjs'.length))]) {
    try {
      keys.push(partKey(cc, fs.readFileSync(partFile(part))).toString('hex'));
    } catch {
      // Gone meanwhile: nothing of it to keep.
    }
  }
  return keys;
}

/**
 * The bundle compiled (with the code cache where it can) and evaluated: its `main`, with a loader
 * for the vendor parts that compiles each with its own cache file.
 */
function loadBundle(source: Buffer): Main {
  const where = cacheDir();
  if ('dir' in where) enableNodeCache(where.dir);
  const command = process.argv[2] === 'run' || process.argv[2] === 'watch' ? process.argv[2] : 'other';
  const cc: CodeCache | undefined =
    'dir' in where
      ? {
          dir: where.dir,
          hash: where.hash,
          flagsKey: JSON.stringify([nodeModule.wrap(''), process.execArgv, process.env.NODE_OPTIONS ?? '']),
          command,
        }
      : undefined;
  if (!cc) trace?.(`code cache: off (${'off' in where ? where.off : ''})`);
  const bundle = compilePart('cli', source, cc);
  const main = (bundle.exports as { main?: Main }).main;
  if (typeof main !== 'function') throw new Error(`${partFile('cli')} has no main()`);

  // What to write at exit: a part loaded without its cache file, and a bundle file written by a
  // run without a command (a hit), which lacks the miss path: the first miss using it rewrites it.
  const saves: Array<() => void> = [];
  let ranCommand = false;
  const vendor = new Map<string, unknown>();
  const requireVendor: VendorLoader = (part) => {
    if (!vendor.has(part)) {
      const loaded = compilePart(part, fs.readFileSync(partFile(part)), cc);
      if (loaded.save && loaded.usedFlags === undefined) saves.push(() => loaded.save?.(0));
      vendor.set(part, loaded.exports);
    }
    return vendor.get(part);
  };
  if (cc)
    process.once('exit', () => {
      const flags = bundle.usedFlags;
      if (flags === undefined || (ranCommand && (flags & WITH_MISS_PATH) === 0))
        saves.push(() => bundle.save?.(ranCommand ? WITH_MISS_PATH : 0));
      for (const save of saves) save();
      if (saves.length > 0) prune(cc.dir, currentKeys(cc));
    });
  return async (argv, importer) => {
    const outcome = await main(argv, importer, requireVendor);
    ranCommand = outcome?.ranCommand === true;
    return outcome;
  };
}

async function start(): Promise<void> {
  let source: Buffer | undefined;
  try {
    source = fs.readFileSync(partFile('cli'));
  } catch {
    // A plain `tsc` build has no bundle: the same CLI, unbundled.
  }
  const main: Main = source ? loadBundle(source) : (await import('./cli/main.js')).main;
  // The bundle's code cannot use import() itself (src/util/import-module.ts).
  const outcome = await main(process.argv, (specifier) => import(specifier));
  if (outcome?.exitNow) exitWhenDrained();
}

/**
 * A finished `run` (main's `exitNow`: its writes all done, the index closed) exits at once instead
 * of waiting for Node to wind down on its own (measured: a miss 3.7 ms sooner, a hit 0.9 ms;
 * bench/ab.mjs); 'exit' handlers still run. Not while stdout or stderr still hold output (a slow
 * reader of a pipe).
 */
function exitWhenDrained(): void {
  if (process.stdout.writableLength > 0 || process.stderr.writableLength > 0) return;
  process.exit();
}

start().catch((e: unknown) => {
  // Commands report their own failures; this is a bug or a broken install, said in one line.
  process.stderr.write(`taskvault: error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 70;
});

#!/usr/bin/env node
/**
 * The `taskvault` bin. Start-up is most of a cache hit and a large part of a miss's overhead, and
 * compiling the CLI's JavaScript is much of start-up, on every run. So the build puts the whole CLI
 * into one CommonJS file (dist/cli-bundle.cjs, scripts/bundle.mjs), and this runs it with V8's code
 * cache: the first run saves the compiled code at exit, later runs load it instead of compiling
 * (a miss ~30 ms faster, a hit ~8 ms; bench/results.md). Node 22's module.enableCompileCache()
 * does the same for what loads afterwards (lmdb, jiti, the hash worker); Node 20 has no such API.
 *
 * CommonJS, so that Node starts it without its ESM loader, and so that the bundle can be compiled
 * here (vm.Script takes a code cache; ESM source text needs a flag on Node 20).
 *
 * The cache must never run stale or damaged code: its file is named by a SHA-1 of the bundle's
 * bytes (V8 itself checks only the source's length), carries a SHA-1 of its own payload (V8 does
 * not check one), lives in a directory only this user can write, and is written whole or not at
 * all. Any problem with it costs only the speed-up. `NODE_DISABLE_COMPILE_CACHE=1` turns it off;
 * `TASKVAULT_COMPILE_CACHE=<dir>` moves it; `TASKVAULT_TRACE=1` says what it did.
 */
import crypto = require('node:crypto');
import fs = require('node:fs');
import nodeModule = require('node:module');
import os = require('node:os');
import path = require('node:path');
import vm = require('node:vm');

type Main = (argv?: string[], importer?: (specifier: string) => Promise<unknown>) => Promise<void>;

const MAGIC = Buffer.from('TVCC\x01\x00\x00\x00', 'latin1');
const SHA1 = 20;
/** The magic, the bundle's SHA-1, the payload's SHA-1. */
const HEADER = MAGIC.length + 2 * SHA1;
const trace = process.env.TASKVAULT_TRACE
  ? (m: string) => process.stderr.write(`taskvault: trace: ${m}\n`)
  : undefined;

const enableNodeCache = (nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache;
const cacheOff = Boolean(process.env.NODE_DISABLE_COMPILE_CACHE);
if (typeof enableNodeCache === 'function' && !cacheOff) {
  try {
    enableNodeCache();
  } catch {
    // An unwritable cache directory only costs the speed-up.
  }
}

const sha1 = (b: Buffer): Buffer => crypto.createHash('sha1').update(b).digest();

/** This user's cache directory, or why there is none: created 0700, refused if others could write it. */
function cacheDir(): { dir: string } | { off: string } {
  if (cacheOff) return { off: 'NODE_DISABLE_COMPILE_CACHE is set' };
  const uid = process.getuid?.();
  const dir =
    process.env.TASKVAULT_COMPILE_CACHE ||
    path.join(os.tmpdir(), `taskvault-compile-cache-${uid ?? os.userInfo().username}`);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory()) return { off: `${dir} is not a directory` };
    // Another user's code in it would run as this one.
    if (uid !== undefined && st.uid !== uid) return { off: `${dir} belongs to another user` };
    if (process.platform !== 'win32' && (st.mode & 0o022) !== 0)
      return { off: `${dir} is writable by other users` };
    return { dir };
  } catch (e) {
    return { off: `${dir}: ${(e as Error).message}` };
  }
}

/** The cached code for the bundle whose hash is `sourceHash`, if present and whole. */
function readCache(file: string, sourceHash: Buffer): Buffer | undefined {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  const payload = data.subarray(HEADER);
  const whole =
    data.length > HEADER &&
    data.subarray(0, MAGIC.length).equals(MAGIC) &&
    data.subarray(MAGIC.length, MAGIC.length + SHA1).equals(sourceHash) &&
    data.subarray(MAGIC.length + SHA1, HEADER).equals(sha1(payload));
  if (!whole) trace?.(`code cache: ${file} is damaged; compiling`);
  return whole ? payload : undefined;
}

/** Written beside and renamed over, so a reader sees a whole file or none. */
function writeCache(file: string, sourceHash: Buffer, payload: Buffer): void {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(temp, Buffer.concat([MAGIC, sourceHash, sha1(payload), payload]), { mode: 0o600 });
    fs.renameSync(temp, file);
    trace?.(`code cache: wrote ${file}`);
  } catch (e) {
    fs.rmSync(temp, { force: true });
    trace?.(`code cache: not written: ${(e as Error).message}`);
  }
  prune(path.dirname(file), sourceHash.toString('hex'));
}

const PRUNE_AFTER_MS = 7 * 24 * 3600_000;

/**
 * Removes what other builds left a week or more ago (each upgrade writes new files), and temp files
 * of killed writers. Only when a cache file is written, which is rare.
 */
function prune(dir: string, current: string): void {
  try {
    for (const name of fs.readdirSync(dir)) {
      const temp = name.endsWith('.tmp');
      if (!name.startsWith('cli-') || (!temp && name.startsWith(`cli-${current}-`))) continue;
      const p = path.join(dir, name);
      if (Date.now() - fs.statSync(p).mtimeMs > (temp ? 3600_000 : PRUNE_AFTER_MS))
        fs.rmSync(p, { force: true });
    }
  } catch {
    // Left for the next writer.
  }
}

/** Compiles and evaluates the bundle (with the code cache where it can), giving its `main`. */
function loadBundle(bundle: string, source: Buffer): Main {
  const sourceHash = sha1(source);
  const where = cacheDir();
  // The cache holds what the run that wrote it compiled: `run` (what must start fast) and `watch`
  // keep their own; the other commands share one.
  const command = process.argv[2] === 'run' || process.argv[2] === 'watch' ? process.argv[2] : 'other';
  const file =
    'dir' in where
      ? path.join(where.dir, `cli-${sourceHash.toString('hex')}-${command}-v8-${process.versions.v8}.bin`)
      : undefined;
  const cachedData = file ? readCache(file, sourceHash) : undefined;
  const script = new vm.Script(nodeModule.wrap(source.toString('utf8').replace(/^#!.*/, '')), {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
  });
  if (!file) trace?.(`code cache: off (${'off' in where ? where.off : ''})`);
  else if (cachedData && !script.cachedDataRejected) trace?.(`code cache: used ${file}`);
  else {
    if (cachedData) trace?.(`code cache: ${file} rejected by V8 (other flags?); compiling`);
    // At exit, so that it holds every function this run compiled, not only the top level.
    process.once('exit', () => writeCache(file, sourceHash, script.createCachedData()));
  }
  const mod = { exports: {} as { main?: Main } };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(mod.exports, mod.exports, nodeModule.createRequire(bundle), mod, bundle, path.dirname(bundle));
  if (typeof mod.exports.main !== 'function') throw new Error(`${bundle} has no main()`);
  return mod.exports.main;
}

async function start(): Promise<void> {
  const bundle = path.join(__dirname, 'cli-bundle.cjs');
  let source: Buffer | undefined;
  try {
    source = fs.readFileSync(bundle);
  } catch {
    // A plain `tsc` build has no bundle: the same CLI, unbundled.
  }
  const main = source ? loadBundle(bundle, source) : (await import('./cli/main.js')).main;
  // The bundle's code cannot use import() itself (src/util/import-module.ts).
  await main(process.argv, (specifier) => import(specifier));
}

start().catch((e: unknown) => {
  // Commands report their own failures; this is a bug or a broken install, said in one line.
  process.stderr.write(`taskvault: error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 70;
});

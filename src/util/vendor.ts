/**
 * Pure-JS dependencies on the hot paths, loaded from single-file bundles that the build writes to
 * dist/vendor/ (scripts/bundle.mjs): loading one file instead of dozens is most of their
 * start-up cost (measured: execa 75 → 22 ms CPU, fast-glob 25 → 9 ms). Without the bundles (a
 * plain tsc build, tests run from src/) the packages themselves are imported. The CLI loads them
 * as CommonJS parts with their own code caches (requireVendor, below); the SDK loads the ESM
 * bundles.
 */
import { createRequire } from 'node:module';
import { besideCode } from '../package-dir.js';
import { importModule } from './import-module.js';

type FastGlob = typeof import('fast-glob');
type Execa = typeof import('execa');
type Picomatch = typeof import('picomatch');
type Lmdb = typeof import('lmdb');
/** What fast-glob's bundles export: it, and the picomatch inside it. */
type FastGlobPart = { default: FastGlob; picomatch?: Picomatch };

/** An ESM bundle in dist/vendor/, through import(). */
const bundled = <T>(file: string): Promise<T> => importModule<T>(besideCode(`vendor/${file}`).href);

let fastGlob: Promise<FastGlob> | undefined;
export function loadFastGlob(): Promise<FastGlob> {
  const part = fromPart<FastGlobPart>('fast-glob');
  fastGlob ??= part
    ? Promise.resolve(part.default)
    : bundled<FastGlobPart>('fast-glob.js').then(
        (m) => m.default,
        () => importModule<{ default: FastGlob }>('fast-glob').then((m) => m.default),
      );
  return fastGlob;
}

let picomatch: Promise<Picomatch> | undefined;
/** picomatch, the matcher inside fast-glob: from fast-glob's bundle, which loads no more for it. */
export function loadPicomatch(): Promise<Picomatch> {
  const own = () => importModule<{ default: Picomatch }>('picomatch').then((m) => m.default);
  const part = fromPart<FastGlobPart>('fast-glob');
  picomatch ??= part?.picomatch
    ? Promise.resolve(part.picomatch)
    : bundled<FastGlobPart>('fast-glob.js').then((m) => m.picomatch ?? own(), own);
  return picomatch;
}

/**
 * Inside the CLI, the bin's loader for dist/vendor/<part>.cjs (scripts/bundle.mjs), each compiled
 * with its own V8 code cache (src/cli.cts), so that only the runs that need a part read its
 * compiled code (a hit needs none of them), and none goes through Node's ESM loader. Unset
 * elsewhere (the SDK, an unbundled build), which import the ESM bundles or the packages.
 */
type VendorPart = 'execa' | 'lmdb' | 'fast-glob';
let requireVendor: ((part: VendorPart) => unknown) | undefined;

export function useVendorLoader(f: (part: VendorPart) => unknown): void {
  requireVendor = f;
}

/** A part through the bin's loader; undefined without one, or if it is not built (or damaged). */
function fromPart<T>(part: VendorPart): T | undefined {
  if (!requireVendor) return undefined;
  try {
    return requireVendor(part) as T;
  } catch {
    return undefined;
  }
}

let execa: Promise<Execa> | undefined;
export function loadExeca(): Promise<Execa> {
  const esm = () => bundled<Execa>('execa.js').catch(() => import('execa'));
  const load = requireVendor;
  execa ??= load
    ? Promise.resolve()
        .then(() => load('execa') as Execa)
        .catch(esm)
    : esm();
  return execa;
}

let lmdb: Lmdb | undefined;
/**
 * lmdb. In the CLI, its JavaScript comes from dist/vendor/lmdb.cjs with the code cache (only the
 * native addon is loaded from node_modules): ~6 ms to load instead of ~17. Elsewhere its CommonJS
 * build, which is one file; its ESM entry is a graph of a dozen modules that takes ~13 ms more to
 * load. One instance per process.
 */
export function loadLmdb(): Lmdb {
  lmdb ??= fromPart<Lmdb>('lmdb') ?? (createRequire(import.meta.url)('lmdb') as Lmdb);
  return lmdb;
}

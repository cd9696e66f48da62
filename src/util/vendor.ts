/**
 * Dependencies on the hot paths, loaded from single-file CommonJS parts that the build writes to
 * dist/vendor/ (scripts/bundle.mjs): loading one file instead of dozens is most of their start-up
 * cost (measured: execa 75 → 22 ms CPU, fast-glob 25 → 9 ms, lmdb's JavaScript 17 → 6 ms). In the
 * CLI the bin compiles each part with its own V8 code cache (src/cli.cts, useVendorLoader), so
 * that only the runs that need a part read its compiled code (a hit needs none of them); elsewhere
 * (the SDK) a part is a plain require(). Without the parts (a plain tsc build, tests run from src/)
 * the packages themselves are loaded.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { besideCode } from '../package-dir.js';
import { importModule } from './import-module.js';

type FastGlob = typeof import('fast-glob');
type Execa = typeof import('execa');
type Picomatch = typeof import('picomatch');
type Lmdb = typeof import('lmdb');
/** What the fast-glob part exports: it, and the picomatch inside it. */
type FastGlobPart = { default: FastGlob; picomatch: Picomatch };

/** The parts the build writes, dist/vendor/<part>.cjs. */
export type VendorPart = 'execa' | 'lmdb' | 'fast-glob';

const require = createRequire(import.meta.url);
let requirePart = (part: VendorPart): unknown => require(fileURLToPath(besideCode(`vendor/${part}.cjs`)));

/** The CLI's loader, which compiles each part with its code cache (src/cli.cts). */
export function useVendorLoader(load: (part: VendorPart) => unknown): void {
  requirePart = load;
}

/**
 * A part; undefined if it is not built, or cannot load (the lmdb part refuses an lmdb installed at
 * another version than it was built with): the package is loaded then.
 */
function fromPart<T>(part: VendorPart): T | undefined {
  try {
    return requirePart(part) as T;
  } catch {
    return undefined;
  }
}

let fastGlob: FastGlobPart | undefined;
const fastGlobPart = (): FastGlobPart =>
  (fastGlob ??= fromPart<FastGlobPart>('fast-glob') ?? {
    default: require('fast-glob') as FastGlob,
    picomatch: require('picomatch') as Picomatch,
  });

export const loadFastGlob = async (): Promise<FastGlob> => fastGlobPart().default;

/** picomatch, the matcher inside fast-glob: from fast-glob's part, which loads no more for it. */
export const loadPicomatch = async (): Promise<Picomatch> => fastGlobPart().picomatch;

let execa: Promise<Execa> | undefined;
/** execa is ESM only: without its part, import() (through the bin's importer in the CLI). */
export function loadExeca(): Promise<Execa> {
  // After a tick: it is called to start loading early, and must not hold up its caller.
  execa ??= Promise.resolve().then(() => fromPart<Execa>('execa') ?? importModule<Execa>('execa'));
  return execa;
}

let lmdb: Lmdb | undefined;
/**
 * lmdb, one instance per process. Only its native addon is loaded from node_modules when its part
 * loads; the package's own CommonJS build is one file too (its ESM entry is a graph of a dozen
 * modules, ~13 ms more to load).
 */
export function loadLmdb(): Lmdb {
  lmdb ??= fromPart<Lmdb>('lmdb') ?? (require('lmdb') as Lmdb);
  return lmdb;
}

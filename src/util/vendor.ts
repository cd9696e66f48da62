/**
 * Pure-JS dependencies on the hot paths, loaded from single-file bundles that the build writes to
 * dist/vendor/ (scripts/bundle.mjs): loading one file instead of dozens is most of their
 * start-up cost (measured: execa 75 → 22 ms CPU, fast-glob 25 → 9 ms). Without the bundles (a
 * plain tsc build, tests run from src/) the packages themselves are imported. The CLI bundle
 * carries execa itself (below); the SDK and fast-glob users load dist/vendor/.
 */
import { besideCode } from '../package-dir.js';
import { importModule } from './import-module.js';

type FastGlob = typeof import('fast-glob');
type Execa = typeof import('execa');
type Picomatch = typeof import('picomatch');

const bundled = <T>(file: string): Promise<T> => importModule<T>(besideCode(`vendor/${file}`).href);

let fastGlob: Promise<FastGlob> | undefined;
export function loadFastGlob(): Promise<FastGlob> {
  fastGlob ??= bundled<{ default: FastGlob }>('fast-glob.js').then(
    (m) => m.default,
    () => importModule<{ default: FastGlob }>('fast-glob').then((m) => m.default),
  );
  return fastGlob;
}

let picomatch: Promise<Picomatch> | undefined;
/** picomatch, the matcher inside fast-glob: from fast-glob's bundle, which loads no more for it. */
export function loadPicomatch(): Promise<Picomatch> {
  const own = () => importModule<{ default: Picomatch }>('picomatch').then((m) => m.default);
  picomatch ??= bundled<{ picomatch?: Picomatch }>('fast-glob.js').then((m) => m.picomatch ?? own(), own);
  return picomatch;
}

/**
 * Defined (true) only inside the CLI bundle (scripts/bundle.mjs), which compiles execa in with the
 * rest of the CLI, so that a miss loads it from the same V8 code cache (src/cli.cts).
 */
declare const TASKVAULT_CLI_BUNDLE: boolean | undefined;

let execa: Promise<Execa> | undefined;
export function loadExeca(): Promise<Execa> {
  execa ??=
    typeof TASKVAULT_CLI_BUNDLE !== 'undefined'
      ? import('execa')
      : bundled<Execa>('execa.js').catch(() => import('execa'));
  return execa;
}

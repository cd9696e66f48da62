import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

type BlakeHash = typeof import('@napi-rs/blake-hash');

const require = createRequire(import.meta.url);
let loaded: BlakeHash | undefined;
/** Where the bin (src/cli.cts) leaves the binding it loaded, so it is not looked for again. */
const HANDED_OVER = Symbol.for('taskvault.blake-hash');

/**
 * @napi-rs/blake-hash's native binding. On Linux with glibc it is required straight from its
 * platform package, found from blake-hash's own directory as blake-hash finds it: the package's
 * loader (17 KB of JavaScript compiled without a code cache, and a read of /usr/bin/ldd to tell
 * glibc from musl) cost ~2 ms of every start. Anywhere else, or if that fails, the loader itself.
 * src/cli.cts loads it the same way for the code cache's hash and hands it over (HANDED_OVER):
 * looking it up again cost ~0.3 ms of every start.
 * Loaded with require(): imported from ESM, Node would first scan that loader for its export names.
 */
export function blakeHash(): BlakeHash {
  loaded ??=
    ((globalThis as Record<symbol, unknown>)[HANDED_OVER] as BlakeHash | undefined) ??
    platformBinding() ??
    (require('@napi-rs/blake-hash') as BlakeHash);
  return loaded;
}

function platformBinding(): BlakeHash | undefined {
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) return undefined;
  // The loader's own overrides (a binding named by path, the WebAssembly build) are its to honour.
  if (process.env.NAPI_RS_NATIVE_LIBRARY_PATH || process.env.NAPI_RS_FORCE_WASI) return undefined;
  try {
    if (readFileSync('/usr/bin/ldd', 'utf8').includes('musl')) return undefined;
    const from = createRequire(require.resolve('@napi-rs/blake-hash'));
    return from(`@napi-rs/blake-hash-linux-${process.arch}-gnu`) as BlakeHash;
  } catch {
    return undefined; // not installed beside it, or not loadable here: the package's loader decides
  }
}

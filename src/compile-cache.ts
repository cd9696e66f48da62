import module from 'node:module';

/**
 * Node >= 22.1 can keep V8's compiled code for modules on disk, so later starts skip compiling
 * them. Imported first by cli.ts; it speeds up the modules loaded after it (the lazily imported
 * ones: execa on a miss, jiti when a config changed) and is a no-op on Node 20.
 */
const enable = (module as { enableCompileCache?: () => unknown }).enableCompileCache;
if (typeof enable === 'function' && !process.env.NODE_DISABLE_COMPILE_CACHE) {
  try {
    enable();
  } catch {
    // An unwritable cache directory only costs the speed-up.
  }
}

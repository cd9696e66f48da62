#!/usr/bin/env node
// Part of `npm run build`, after tsc: start-up time is most of a cache hit, and loading one file
// costs less than resolving and compiling dozens, so
//  - pure-JS dependencies on hot paths become single files under dist/vendor/ (src/util/vendor.ts),
//  - the CLI becomes one CommonJS file, dist/cli-bundle.cjs, that the bin dist/cli.cjs compiles
//    with V8's code cache (src/cli.cts).
// dist/index.js (the SDK) and the rest of tsc's output stay as they are. esbuild is a devDependency.
import { chmodSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { build as esbuild } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
// CommonJS parts (cross-spawn, fast-glob, picomatch) call require() for Node built-ins.
const banner = {
  js: "import { createRequire as __tvCreateRequire } from 'node:module'; const require = __tvCreateRequire(import.meta.url);",
};
/**
 * Builds, then puts each output file in place by rename: a CLI starting while this runs (a test, or
 * npx installing the project, which runs `prepare`) sees the old file or the new, never none.
 */
async function build(options) {
  const result = await esbuild({ ...options, write: false });
  for (const f of result.outputFiles) {
    mkdirSync(dirname(f.path), { recursive: true });
    const temp = `${f.path}.${process.pid}.tmp`;
    writeFileSync(temp, f.contents);
    renameSync(temp, f.path);
  }
  return result;
}

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  legalComments: 'inline',
  banner,
};

await build({ ...common, entryPoints: ['execa'], outfile: `${root}dist/vendor/execa.js` });
// fast-glob's bundle also exports the picomatch it holds anyway, for matching globs one at a time.
await build({
  ...common,
  stdin: {
    contents: "export { default } from 'fast-glob'; export { default as picomatch } from 'picomatch';",
    resolveDir: root,
  },
  outfile: `${root}dist/vendor/fast-glob.js`,
});

// The CLI: one CommonJS file that the bin (src/cli.cts) compiles with V8's code cache. Everything it
// imports is in it, each lazily imported module as a part evaluated on first use, except native
// addons, what is loaded only off the hit and miss paths, and fast-glob (in dist/vendor/).
// It sits beside cli.cjs, so src/package-dir.ts resolves dist/ from it as from tsc's output.
// What earlier layouts left (chunks beside a bundled dist/cli.js).
for (const f of readdirSync(`${root}dist`))
  if (/^cli-.*\.js$|^cli\.(js|d\.ts)$/.test(f)) rmSync(`${root}dist/${f}`);
await build({
  ...common,
  format: 'cjs',
  entryPoints: [`${root}dist/cli/main.js`],
  outfile: `${root}dist/cli-bundle.cjs`,
  external: ['lmdb', '@napi-rs/blake-hash', 'jiti', 'chokidar', 'fast-glob', 'picomatch'],
  // import.meta.url is the bundle's own URL; vendor.ts takes execa from here, not dist/vendor/.
  define: { 'import.meta.url': '__tvBundleUrl', TASKVAULT_CLI_BUNDLE: 'true' },
  banner: { js: "'use strict'; const __tvBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// The bin: npx and a direct ./dist/cli.cjs need it executable.
chmodSync(`${root}dist/cli.cjs`, 0o755);

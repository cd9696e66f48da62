#!/usr/bin/env node
// Part of `npm run build`, after tsc: start-up time is most of a cache hit, and loading one file
// costs less than resolving and compiling dozens, so
//  - pure-JS dependencies on hot paths become single files under dist/vendor/ (src/util/vendor.ts),
//  - the CLI becomes dist/cli.js plus chunks beside it, one per lazily imported command.
// dist/index.js (the SDK) and the rest of tsc's output stay as they are. esbuild is a devDependency.
import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
// CommonJS parts (cross-spawn, fast-glob, picomatch) call require() for Node built-ins.
const banner = {
  js: "import { createRequire as __tvCreateRequire } from 'node:module'; const require = __tvCreateRequire(import.meta.url);",
};
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

// Chunks sit beside cli.js, so src/package-dir.ts resolves the same directory bundled or not.
for (const f of readdirSync(`${root}dist`)) if (/^cli-.*\.js$/.test(f)) rmSync(`${root}dist/${f}`);
await build({
  ...common,
  entryPoints: { cli: `${root}dist/cli.js` },
  outdir: `${root}dist`,
  allowOverwrite: true,
  splitting: true,
  chunkNames: 'cli-[name]-[hash]',
  // Native addons, what is loaded only off the hit path, and what dist/vendor/ already bundles.
  external: ['lmdb', '@napi-rs/blake-hash', 'jiti', 'chokidar', 'execa', 'fast-glob'],
});
// The bin: npx and a direct ./dist/cli.js need it executable, whatever mode the rewrite left.
chmodSync(`${root}dist/cli.js`, 0o755);

#!/usr/bin/env node
// Part of `npm run build`, after tsc: start-up time is most of a cache hit, and loading one file
// costs less than resolving and compiling dozens, so
//  - dependencies on hot paths become single CommonJS files under dist/vendor/ (src/util/vendor.ts),
//  - the CLI becomes one CommonJS file, dist/cli-bundle.cjs, that the bin dist/cli.cjs compiles
//    with V8's code cache (src/cli.cts).
// dist/index.js (the SDK) and the rest of tsc's output stay as they are. esbuild is a devDependency.
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build as esbuild } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
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
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
  legalComments: 'inline',
  // import.meta.url is the output file's own URL.
  define: { 'import.meta.url': '__tvFileUrl' },
  banner: { js: "'use strict'; const __tvFileUrl = require('node:url').pathToFileURL(__filename).href;" },
};

// What earlier layouts left: ESM bundles of execa and fast-glob (now parts, below), chunks beside a
// bundled dist/cli.js.
for (const f of ['execa.js', 'fast-glob.js']) rmSync(`${root}dist/vendor/${f}`, { force: true });
for (const f of readdirSync(`${root}dist`))
  if (/^cli-.*\.js$|^cli\.(js|d\.ts)$/.test(f)) rmSync(`${root}dist/${f}`);

/**
 * The parts for what only some runs need (src/util/vendor.ts): CommonJS files that the bin compiles
 * each with its own code cache (src/cli.cts), so that a hit reads no compiled code of them; the
 * SDK require()s them.
 *  - execa (a miss), with node:v8 loaded only if used (v8WhenCalled).
 *  - fast-glob and its picomatch (globs the plain walks do not take, e.g. `src/**\/*.ts`): through
 *    the ESM loader, without a code cache, loading it cost a hit ~30 ms.
 *  - lmdb's JavaScript (a miss, and most other commands); its native addon stays in node_modules.
 *    From the code cache it loads in ~6 ms instead of ~17. Two things in it assume it runs from its
 *    own directory: lmdb finds its addon from `__filename`, here dist/vendor/, so it is pointed at
 *    the installed lmdb (found at run time, wherever the package manager put it); and msgpackr
 *    loads msgpackr-extract, an optional native speed-up for decoding long strings, from beside
 *    itself: it is left out (the index's values are small, and msgpackr's JavaScript decoder reads
 *    the same format), which saves ~3 ms more. The build fails if lmdb's code no longer has what is
 *    patched, rather than making a CLI that cannot find its addon.
 */
const lmdbFromItsPackage = {
  name: 'lmdb-from-its-package',
  setup(b) {
    b.onResolve({ filter: /^msgpackr-extract$/ }, () => ({
      path: 'msgpackr-extract',
      namespace: 'left-out',
    }));
    b.onLoad({ filter: /.*/, namespace: 'left-out' }, () => ({ contents: 'module.exports = undefined;' }));
    b.onLoad({ filter: /[\\/]lmdb[\\/]dist[\\/]index\.cjs$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const dirName = /^let dirName = .*$/m;
      if (!dirName.test(source)) throw new Error(`${args.path}: no 'let dirName = ...' line to patch`);
      // lmdb's directory as Node's require would find it (realpath'd, as module paths are, so
      // that its platform package resolves under pnpm too), without require.resolve, which for a
      // package with "exports" loads Node's ESM resolver (~1 ms). The addon found there must be
      // the one this JavaScript was built with: an lmdb installed since (another version) makes
      // loading the part fail, and the CLI then loads that lmdb itself (src/util/vendor.ts).
      const version = JSON.parse(
        readFileSync(join(dirname(args.path), '..', 'package.json'), 'utf8'),
      ).version;
      const installed = `(() => {
        const { existsSync, readFileSync, realpathSync } = require('node:fs');
        const { dirname, join } = require('node:path');
        let dir;
        for (const at of require['resolve'].paths('lmdb') ?? []) {
          if (existsSync(join(at, 'lmdb', 'package.json'))) {
            dir = realpathSync(join(at, 'lmdb'));
            break;
          }
        }
        dir ??= dirname(dirname(require['resolve']('lmdb')));
        const version = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
        if (version !== ${JSON.stringify(version)})
          throw new Error('lmdb ' + version + ' is installed, this part was built with ${version}');
        return dir;
      })()`;
      return { contents: source.replace(dirName, `let dirName = ${installed};`), loader: 'js' };
    });
  },
};
/**
 * execa imports node:v8 for one thing, checking an `ipcInput` option TaskVault never sets; loading
 * it costs ~1.3 ms of every miss, before the command starts. It is loaded when first called instead.
 */
const v8WhenCalled = {
  name: 'v8-when-called',
  setup(b) {
    b.onResolve({ filter: /^node:v8$/ }, (args) =>
      /[\\/]execa[\\/]lib[\\/]ipc[\\/]ipc-input\.js$/.test(args.importer)
        ? { path: 'node:v8', namespace: 'when-called' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'when-called' }, () => ({
      contents: "exports.serialize = (value) => require('node:v8').serialize(value);",
    }));
  },
};
await build({
  ...common,
  entryPoints: ['execa'],
  outfile: `${root}dist/vendor/execa.cjs`,
  plugins: [v8WhenCalled],
});
await build({
  ...common,
  stdin: {
    contents: "exports.default = require('fast-glob'); exports.picomatch = require('picomatch');",
    resolveDir: root,
    loader: 'js',
  },
  outfile: `${root}dist/vendor/fast-glob.cjs`,
});
await build({
  ...common,
  stdin: { contents: "module.exports = require('lmdb');", resolveDir: root, loader: 'js' },
  outfile: `${root}dist/vendor/lmdb.cjs`,
  plugins: [lmdbFromItsPackage],
});

// The CLI: one CommonJS file that the bin (src/cli.cts) compiles with V8's code cache. Everything it
// imports is in it, each lazily imported module as a part evaluated on first use, except native
// addons, execa, lmdb and fast-glob (parts of their own, above), and what is loaded only off the
// hit and miss paths.
// It sits beside cli.cjs, so src/package-dir.ts resolves dist/ from it as from tsc's output.
await build({
  ...common,
  entryPoints: [`${root}dist/cli/main.js`],
  outfile: `${root}dist/cli-bundle.cjs`,
  external: ['@napi-rs/blake-hash', 'jiti', 'chokidar', 'fast-glob', 'picomatch', 'execa', 'lmdb'],
});
// The dashboard page of `taskvault ui` (src/ui/web/): its script with uPlot and its stylesheet, for
// the browser, bundled into the package so that it works offline (no CDN).
await build({
  absWorkingDir: root,
  entryPoints: { app: `${root}src/ui/web/app.ts` },
  outdir: `${root}dist/ui`,
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  legalComments: 'inline',
  logLevel: 'warning',
});
mkdirSync(`${root}dist/ui`, { recursive: true });
writeFileSync(`${root}dist/ui/index.html`, readFileSync(`${root}src/ui/web/index.html`));
// The bin: npx and a direct ./dist/cli.cjs need it executable.
chmodSync(`${root}dist/cli.cjs`, 0o755);

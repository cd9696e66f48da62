#!/usr/bin/env node
// Part of `npm run build`: bundles pure-JS dependencies that sit on hot paths into single files
// under dist/vendor/ (see src/util/vendor.ts for why). esbuild is a devDependency.
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
for (const name of ['execa', 'fast-glob']) {
  await build({
    entryPoints: [name],
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: `${root}dist/vendor/${name}.js`,
    logLevel: 'warning',
    legalComments: 'inline',
    // CommonJS parts (cross-spawn, fast-glob) call require() for Node built-ins.
    banner: {
      js: "import { createRequire as __tvCreateRequire } from 'node:module'; const require = __tvCreateRequire(import.meta.url);",
    },
  });
}

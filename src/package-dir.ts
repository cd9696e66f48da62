/**
 * The directory holding cli.cjs and index.js (dist/ when built, src/ when run from source), for the
 * files found beside the code: package.json, dist/vendor/, the hash worker, the public entry.
 *
 * This module must stay at the top of src/. The build bundles the CLI into dist/cli-bundle.cjs
 * beside it (scripts/bundle.mjs), so `import.meta.url` of a module deeper down would point
 * elsewhere once bundled; at the top level it is the same directory either way.
 */
export const PACKAGE_CODE_DIR = new URL('./', import.meta.url);

/** `rel` (a '/'-separated path) resolved against PACKAGE_CODE_DIR. */
export const besideCode = (rel: string): URL => new URL(rel, PACKAGE_CODE_DIR);

#!/usr/bin/env node
/**
 * The import-graph check (`npm run check:imports`, run by .ci/run): fails on any import circle in
 * src/ and on any import that points up the layer list of ARCHITECTURE.md ("Next shape"). Type-only
 * and dynamic imports count: a type import upward is still a dependency on the higher layer.
 *
 *   node scripts/check-imports.mjs [projectDir]    (default: the current directory)
 *
 * Prints one line per problem and exits 1 if there is any, else one `imports: ...` line and 0.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import madge from 'madge';

/**
 * Highest first. A module may import its own folder, anything in a lower layer, and (except in a
 * layer of siblings) the other folders of its own layer; never a higher layer. Files directly in
 * src/ are named with their extension.
 */
export const LAYERS = [
  // Parse, call the runner or the store, print. They may use one another (cli/ runs watch/).
  { dirs: ['cli', 'sdk', 'serve', 'ui', 'watch', 'daemon', 'index.ts', 'cli.cts'] },
  // The runner owns the RemoteTier interface and gets the remote tier injected; remote/ implements
  // it. Neither imports the other; both may import store/ and below.
  { dirs: ['runner', 'remote'], siblings: true },
  { dirs: ['store'] },
  { dirs: ['fingerprint'] },
  { dirs: ['config'] },
  { dirs: ['util', 'version.ts', 'package-dir.ts'] },
];

const rankOf = new Map(LAYERS.flatMap((layer, rank) => layer.dirs.map((d) => [d, { rank, layer }])));

/** 'src/cli/run.ts' -> 'cli'; 'src/version.ts' -> 'version.ts'. */
const unitOf = (file) => file.split('/')[1];

/** Why `from` may not import `to`, or undefined when it may. Both are units (see unitOf). */
export function forbidden(from, to) {
  if (from === to) return undefined;
  const a = rankOf.get(from);
  const b = rankOf.get(to);
  if (!a || !b) return undefined; // reported once per file as "in no layer"
  if (b.rank > a.rank) return undefined;
  if (b.rank === a.rank && !a.layer.siblings) return undefined;
  return `${from} may not import ${to}`;
}

const NODE_NEXT = { compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } };

/** Every circle and layering violation under `projectDir`/src, one line each. */
export async function checkImports(projectDir) {
  const tsconfig = join(projectDir, 'tsconfig.json');
  const graph = await madge(join(projectDir, 'src'), {
    baseDir: projectDir,
    fileExtensions: ['ts', 'cts', 'mts'],
    // Resolves `./x.js` to x.ts as tsc does.
    tsConfig: existsSync(tsconfig) ? tsconfig : NODE_NEXT,
  });
  const problems = [];
  const deps = graph.obj();
  const files = Object.keys(deps).filter((f) => f.startsWith('src/'));
  for (const file of files.sort()) {
    const from = unitOf(file);
    if (!rankOf.has(from)) {
      problems.push(`${file}: src/${from} is in no layer (add it to LAYERS in scripts/check-imports.mjs)`);
      continue;
    }
    for (const dep of deps[file]) {
      if (!dep.startsWith('src/')) continue;
      const why = forbidden(from, unitOf(dep));
      if (why) problems.push(`${file} -> ${dep} (${why})`);
    }
  }
  for (const circle of graph.circular()) problems.push(`circle: ${[...circle, circle[0]].join(' -> ')}`);
  return { files: files.length, problems };
}

const isMain = process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname);
if (isMain) {
  const projectDir = resolve(process.argv[2] ?? '.');
  if (!existsSync(join(projectDir, 'src'))) {
    console.error(`check-imports: no src/ in ${projectDir} (give the project directory)`);
    process.exit(2);
  }
  const { files, problems } = await checkImports(projectDir);
  for (const p of problems) console.log(p);
  if (problems.length > 0) {
    console.log(`imports: ${problems.length} problem${problems.length === 1 ? '' : 's'} in ${files} files`);
    process.exit(1);
  }
  console.log(`imports: ${files} files, no circle, no import up the layers`);
}

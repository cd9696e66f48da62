// What the benchmark scripts share: the package they time TaskVault on, and how they take medians
// of alternating runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Alternates contenders round by round (rotating who goes first) so drift in machine load hits
 * them all alike; `prep` runs before each timed call and is not timed. Medians by name.
 */
export function alternate(contenders, rounds) {
  const times = Object.fromEntries(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < contenders.length; i++) {
      const c = contenders[(i + r) % contenders.length];
      c.prep?.();
      times[c.name].push(c.run());
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

const BUILD_MJS = `import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
// A stand-in build: reads every source file and writes a digest and a manifest.
const h = createHash('sha1');
let n = 0;
const walk = (d) => { for (const e of readdirSync(d, { withFileTypes: true })) {
  const p = join(d, e.name);
  if (e.isDirectory()) walk(p); else { h.update(readFileSync(p)); n++; }
} };
walk('src');
mkdirSync('dist', { recursive: true });
writeFileSync('dist/digest.txt', h.digest('hex') + '\\n');
writeFileSync('dist/manifest.json', JSON.stringify({ files: n }) + '\\n');
console.log('built ' + n + ' files');
`;

/**
 * The package TaskVault is timed on: `files` sources of `bytes` (4 KB) in directories of 100 under src/, a
 * build.mjs that reads them all and writes dist/, and a static taskvault.config.ts for it (served
 * from its kept value, as in a real project after the first run), its inputs `inputs`.
 */
export function writePackage(dir, name, files, inputs = ['src/**'], bytes = 4096) {
  const block = Buffer.alloc(bytes);
  for (let i = 0; i < files; i++) {
    const d = join(dir, 'src', `d${String(Math.floor(i / 100)).padStart(3, '0')}`);
    if (i % 100 === 0) mkdirSync(d, { recursive: true });
    block.fill(`${name}:${i}:`, 0);
    writeFileSync(join(d, `f${String(i).padStart(5, '0')}.txt`), block);
  }
  writeFileSync(join(dir, 'build.mjs'), BUILD_MJS);
  writeFileSync(
    join(dir, 'taskvault.config.ts'),
    `export default {\n  tasks: {\n    build: { command: ['node', 'build.mjs'], inputs: ${JSON.stringify(inputs)}, outputs: ['dist/**'] },\n  },\n};\n`,
  );
}

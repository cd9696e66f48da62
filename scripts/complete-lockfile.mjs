#!/usr/bin/env node
// npm 11 leaves platform-specific optional dependencies for other platforms out of package-lock.json
// when the registry it talks to does not serve them, and `npm ci` then refuses the lock file as out
// of sync ("Missing: @scope/pkg-darwin-arm64@ from lock file"). This adds a placeholder entry for
// each such package, with the version its parent declares, marked optional, so `npm ci` accepts the
// lock file; on a machine of another platform npm fetches the real package (or skips it as optional).
// Run after every `npm install` that changes dependencies: node scripts/complete-lockfile.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
let added = 0;
for (const [key, meta] of Object.entries(packages)) {
  if (key === '') continue;
  for (const [name, range] of Object.entries(meta.optionalDependencies ?? {})) {
    const at = `node_modules/${name}`;
    const nested = `${key}/node_modules/${name}`;
    if (packages[at] || packages[nested]) continue;
    const version = String(range).replace(/^[\^~=]/, '');
    const entry = { version, optional: true };
    if (meta.dev) entry.dev = true;
    packages[at] = entry;
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: added ${added} placeholder entries`);

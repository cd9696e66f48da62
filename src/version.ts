import { readFileSync } from 'node:fs';
import { besideCode } from './package-dir.js';

/** The package version, read once from package.json beside dist/. */
export const VERSION: string = (
  JSON.parse(readFileSync(besideCode('../package.json'), 'utf8')) as { version: string }
).version;

import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const CONFIG_NAMES = [
  'taskvault.config.ts',
  'taskvault.config.mts',
  'taskvault.config.mjs',
  'taskvault.config.js',
  'taskvault.config.json',
];

export interface ProjectLocation {
  root: string;
  configPath?: string;
}

/**
 * The project root is the nearest directory upward holding a taskvault config, else the nearest
 * git root, else `cwd` itself.
 */
export function findProject(cwd: string): ProjectLocation {
  let gitRoot: string | undefined;
  for (let dir = cwd; ; dir = dirname(dir)) {
    for (const name of CONFIG_NAMES) {
      const p = join(dir, name);
      if (existsSync(p) && statSync(p).isFile()) return { root: dir, configPath: p };
    }
    if (gitRoot === undefined && existsSync(join(dir, '.git'))) gitRoot = dir;
    if (dirname(dir) === dir) break;
  }
  return { root: gitRoot ?? cwd };
}

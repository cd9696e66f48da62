import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

// mkdir -p one level at a time. Node 20's `mkdir(…, { recursive: true })` never returns for some
// paths (e.g. under /proc), and a cache dir or output path given by the user can be anything: a
// hang there would block the command TaskVault wraps.

const ignoreExists = (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EEXIST') throw e;
};

function missingDirs(dir: string, exists: (d: string) => boolean): string[] {
  const missing: string[] = [];
  for (let d = dir; !exists(d) && dirname(d) !== d; d = dirname(d)) missing.unshift(d);
  return missing;
}

export function mkdirsSync(dir: string): void {
  const exists = (d: string) => {
    try {
      statSync(d);
      return true;
    } catch {
      return false;
    }
  };
  for (const d of missingDirs(dir, exists)) {
    try {
      mkdirSync(d);
    } catch (e) {
      ignoreExists(e as NodeJS.ErrnoException);
    }
  }
}

export async function mkdirs(dir: string): Promise<void> {
  const known = new Set<string>();
  // Stat upward first (async), then create downward.
  for (let d = dir; dirname(d) !== d; d = dirname(d)) {
    if (
      await stat(d).then(
        () => true,
        () => false,
      )
    )
      break;
    known.add(d);
  }
  for (const d of [...known].reverse()) await mkdir(d).catch(ignoreExists);
}

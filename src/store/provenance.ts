import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { VERSION } from '../version.js';
import type { Provenance } from './entry.js';

/** Reads HEAD's commit straight from .git (no git process on the run path). */
export function gitCommit(root: string): string | undefined {
  try {
    const gitDir = join(root, '.git');
    const head = readFileSync(join(gitDir, 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return /^[0-9a-f]{40,64}$/.test(head) ? head : undefined;
    const ref = head.slice(5);
    try {
      return readFileSync(join(gitDir, ref), 'utf8').trim();
    } catch {
      const packed = readFileSync(join(gitDir, 'packed-refs'), 'utf8');
      return packed
        .split('\n')
        .find((l) => l.endsWith(` ${ref}`))
        ?.split(' ')[0];
    }
  } catch {
    // Not a git checkout, or refs we cannot read: provenance then just has no commit.
    return undefined;
  }
}

export function provenance(root: string): Provenance {
  let user = process.env.USER ?? '';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep $USER
  }
  const p: Provenance = { host: hostname(), user, version: VERSION, origin: 'local' };
  const commit = gitCommit(root);
  if (commit) p.gitCommit = commit;
  return p;
}

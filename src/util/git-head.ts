import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * The commit checked out in the git work tree at `root`, read from .git's files (no `git` process:
 * this runs on every cache hit). undefined when there is none or it cannot be read.
 */
export function gitHead(root: string): string | undefined {
  try {
    let gitDir = join(root, '.git');
    const dotGit = readFileSync(gitDir, 'utf8').match(/^gitdir: (.+)$/m);
    if (dotGit) gitDir = resolve(root, dotGit[1]!.trim());
    return headIn(gitDir);
  } catch (e) {
    // .git is a directory (EISDIR): the usual clone.
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') return headIn(join(root, '.git'));
    return undefined;
  }
}

function headIn(gitDir: string): string | undefined {
  try {
    const head = readFileSync(join(gitDir, 'HEAD'), 'utf8').trim();
    const ref = head.match(/^ref: (.+)$/)?.[1];
    if (!ref) return /^[0-9a-f]{40,64}$/.test(head) ? head : undefined;
    let common = gitDir;
    try {
      const c = readFileSync(join(gitDir, 'commondir'), 'utf8').trim();
      common = isAbsolute(c) ? c : resolve(gitDir, c);
    } catch {
      // not a linked worktree: refs live in gitDir itself
    }
    for (const dir of [gitDir, common]) {
      try {
        return readFileSync(join(dir, ref), 'utf8').trim();
      } catch {
        // the ref may be packed
      }
    }
    const packed = readFileSync(join(common, 'packed-refs'), 'utf8');
    return packed
      .split('\n')
      .find((l) => l.endsWith(` ${ref}`))
      ?.split(' ')[0];
  } catch {
    return undefined; // no HEAD or no such ref (an unborn branch)
  }
}

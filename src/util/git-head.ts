import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * The commit checked out in the git work tree at `root`, read from .git's files (no `git` process:
 * this runs on every cache hit). undefined when there is none or it cannot be read.
 */
export function gitHead(root: string): string | undefined {
  const gitDir = gitDirOf(root);
  return gitDir === undefined ? undefined : headIn(gitDir);
}

/**
 * The branch checked out at `root` (`main` for refs/heads/main), from .git/HEAD; undefined on a
 * detached HEAD (as CI checkouts often are) or outside a work tree.
 */
export function gitBranch(root: string): string | undefined {
  const gitDir = gitDirOf(root);
  if (gitDir === undefined) return undefined;
  try {
    return readFileSync(join(gitDir, 'HEAD'), 'utf8')
      .match(/^ref: refs\/heads\/(.+)$/m)?.[1]
      ?.trim();
  } catch {
    return undefined; // no HEAD: not a work tree after all
  }
}

/** The git directory of the work tree at `root` (a linked worktree's .git file followed). */
function gitDirOf(root: string): string | undefined {
  const dotGit = join(root, '.git');
  try {
    const linked = readFileSync(dotGit, 'utf8').match(/^gitdir: (.+)$/m);
    return linked ? resolve(root, linked[1]!.trim()) : undefined;
  } catch (e) {
    // .git is a directory (EISDIR): the usual clone.
    return (e as NodeJS.ErrnoException).code === 'EISDIR' ? dotGit : undefined;
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

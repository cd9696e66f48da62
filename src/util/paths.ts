import { lstatSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { err, failure, ok, type Result } from './result.js';

export const toPosix = (p: string): string => (sep === '/' ? p : p.split(sep).join('/'));

/** True if `p` is `root` itself or lies below it (both absolute, normalised). */
export function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Checks a path that came from an entry (local or remote, so possibly hostile) and joins it to the
 * project root. Refuses absolute paths, `..` and `.` segments, empty segments, backslashes and NULs.
 */
export function safeJoin(root: string, rel: string): Result<string> {
  const bad = (why: string) => err(failure('cache', `refused entry path ${JSON.stringify(rel)}: ${why}`));
  if (rel.length === 0) return bad('empty');
  if (rel.includes('\0')) return bad('contains NUL');
  if (rel.includes('\\')) return bad('contains a backslash');
  if (rel.startsWith('/') || isAbsolute(rel)) return bad('absolute');
  const parts = rel.split('/');
  if (parts.some((s) => s === '' || s === '.' || s === '..')) return bad('has an empty, "." or ".." segment');
  const abs = resolve(root, rel);
  if (!isInside(root, abs) || abs === root) return bad('outside the project root');
  return ok(abs);
}

/** True if every directory between root and `abs` is a real directory (no symlink swapped in). */
export function plainPathInside(root: string, abs: string): boolean {
  if (!isInside(root, abs) || abs === root) return false;
  let cur = root;
  for (const part of relative(root, dirname(abs)).split(sep).filter(Boolean)) {
    cur = join(cur, part);
    try {
      if (!lstatSync(cur).isDirectory()) return false;
    } catch {
      return false;
    }
  }
  return true;
}

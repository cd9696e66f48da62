import { lstatSync, readlinkSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { safeJoin } from '../util/paths.js';
import { err, failure, ok, type Result } from '../util/result.js';
import { isHexDigest, type OutputRecord } from './entry.js';

/*
 * Where an entry would write, checked before a byte is written (invariant 4). Used by a restore,
 * by a remote pull before anything is downloaded, by a commit and by `verify`.
 */

/** Directories no legitimate entry writes into (outputs never match them): VCS, deps, the cache. */
const RESERVED_SEGMENTS = new Set(['.git', '.taskvault', 'node_modules']);

/**
 * Checks every path an entry would write, before anything is written (invariant 4): no absolute
 * paths or `..`, nothing under .git/.taskvault/node_modules, no symlink that resolves out of the
 * root (following the entry's own links and links already on disk, as the kernel would), and no
 * file written through a symlink that the same entry creates.
 */
export function checkEntryPaths(root: string, outputs: OutputRecord[]): Result<Map<string, string>> {
  const absolute = new Map<string, string>();
  const links = new Map<string, string>();
  for (const o of outputs) {
    const joined = safeJoin(root, o.path);
    if (!joined.ok) return joined;
    if (o.path.split('/').some((s) => RESERVED_SEGMENTS.has(s)))
      return err(
        failure('cache', `refused ${o.path}: restores never write into .git, .taskvault or node_modules`),
      );
    absolute.set(o.path, joined.value);
    const shape = checkRecordShape(o);
    if (shape) return err(failure('cache', `refused ${o.path}: ${shape}`));
    if (o.type === 'symlink') {
      if (isAbsolute(o.target))
        return err(failure('cache', `refused symlink ${o.path}: absolute target ${o.target}`));
      links.set(joined.value, o.target);
    }
  }
  for (const o of outputs) {
    if (o.type === 'symlink' && escapes(root, dirname(absolute.get(o.path)!), o.target, links))
      return err(failure('cache', `refused symlink ${o.path}: target ${o.target} is outside the project`));
    for (let p = dirname(o.path); p !== '.' && p !== ''; p = dirname(p)) {
      if (links.has(resolve(root, p)))
        return err(failure('cache', `refused ${o.path}: it would be written through the symlink ${p}`));
    }
  }
  return ok(absolute);
}

/** Field types of a record from a possibly hand-edited or remote entry. */
function checkRecordShape(o: OutputRecord): string | undefined {
  if (o.type === 'file') {
    if (!isHexDigest(o.hash)) return 'malformed blob hash';
    if (!Number.isSafeInteger(o.size) || o.size < 0) return 'malformed size';
  } else if (o.type === 'symlink') {
    if (typeof o.target !== 'string' || o.target === '' || o.target.includes('\0'))
      return 'malformed link target';
    return undefined;
  } else if (o.type !== 'dir') return `unknown output type ${JSON.stringify((o as { type: unknown }).type)}`;
  if (!Number.isInteger(o.mode) || o.mode < 0 || o.mode > 0o7777) return 'malformed mode';
  return undefined;
}

/**
 * Whether `target`, read from a symlink in directory `from`, resolves outside `root`. Components are
 * resolved one at a time, substituting links the entry will create and links already on disk, so a
 * chain like `c -> .` plus `a -> c/..` is caught (a purely lexical check would let it through).
 */
function escapes(root: string, from: string, target: string, links: Map<string, string>): boolean {
  const stack = relative(root, from).split(sep).filter(Boolean);
  let pending = target.split('/');
  for (let hops = 0; pending.length > 0; ) {
    const c = pending.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (stack.length === 0) return true;
      stack.pop();
      continue;
    }
    stack.push(c);
    const abs = join(root, ...stack);
    const next = links.get(abs) ?? diskLink(abs);
    if (next === undefined) continue;
    if (isAbsolute(next) || ++hops > 40) return true;
    stack.pop();
    pending = [...next.split('/'), ...pending];
  }
  return false;
}

function diskLink(abs: string): string | undefined {
  try {
    return lstatSync(abs).isSymbolicLink() ? readlinkSync(abs) : undefined;
  } catch {
    // Nothing there (or unreadable): not a link, so nothing to follow.
    return undefined;
  }
}

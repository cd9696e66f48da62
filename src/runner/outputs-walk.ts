import { type Dirent, lstatSync, readdirSync } from 'node:fs';
import { relative } from 'node:path';
import { toPosix } from '../util/paths.js';

/*
 * A fast path for matchOutputs with the usual output globs (`dist/**`, `build/**\/*`): a hit's
 * stale-output sweep then walks the directory instead of loading fast-glob. It answers only what
 * it fully understands (literal base directories, no symbolic links on the way in, the default
 * name ignores) and returns undefined for everything else, which goes to fast-glob as before.
 */

const LITERAL_BASE = /^[\w.@+~-]+(?:\/[\w.@+~-]+)*$/;
const TEMP_NAME = /^\..*\.tv-.*\.tmp$/; // RESTORE_TEMP_GLOB's last segment

export interface WalkedOutput {
  path: string;
  abs: string;
  type: 'file' | 'dir' | 'symlink';
}

export function walkSimpleOutputs(
  root: string,
  cwd: string,
  globs: string[],
  ignoredNames: ReadonlySet<string>,
  skipRestoreTemps: boolean,
): WalkedOutput[] | undefined {
  const bases: string[] = [];
  for (const g of globs) {
    const base = g.endsWith('/**/*') ? g.slice(0, -5) : g.endsWith('/**') ? g.slice(0, -3) : undefined;
    if (base === undefined || !LITERAL_BASE.test(base)) return undefined;
    const segs = base.split('/');
    if (segs.some((s) => s === '.' || s === '..' || ignoredNames.has(s) || TEMP_NAME.test(s)))
      return undefined;
    bases.push(base);
  }
  const out = new Map<string, WalkedOutput>();
  const walk = (dirAbs: string): boolean => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dirAbs, { withFileTypes: true });
    } catch {
      return true; // unreadable or gone: fast-glob (suppressErrors) skips it too
    }
    for (const e of entries) {
      if (ignoredNames.has(e.name)) continue;
      const isTemp = TEMP_NAME.test(e.name);
      if (isTemp && e.isDirectory()) return false; // ignore-pattern pruning of directories: leave to fast-glob
      if (isTemp && skipRestoreTemps) continue;
      const abs = `${dirAbs}/${e.name}`;
      const type = e.isSymbolicLink() ? 'symlink' : e.isDirectory() ? 'dir' : e.isFile() ? 'file' : undefined;
      if (type) out.set(abs, { path: toPosix(relative(root, abs)), abs, type });
      if (type === 'dir' && !walk(abs)) return false;
    }
    return true;
  };
  const cwdSlash = toPosix(cwd).replace(/\/$/, '');
  for (const base of bases) {
    // Every segment of the base must be a real directory: a link on the way in is fast-glob's call.
    let abs = cwdSlash;
    let present = true;
    for (const s of base.split('/')) {
      abs = `${abs}/${s}`;
      const st = lstatSync(abs, { throwIfNoEntry: false });
      if (!st) {
        present = false;
        break;
      }
      if (!st.isDirectory()) return undefined;
    }
    if (present && !walk(abs)) return undefined;
  }
  return [...out.values()];
}

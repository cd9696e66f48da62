import { type Dirent, readdirSync, type Stats, statSync } from 'node:fs';
import { dirStat, type Listing } from './manifest.js';

/*
 * A fast path for the globs almost every task uses (`src/**`, `**\/*`, `src/**\/*.ts`,
 * `package.json`, with ignores like `**\/node_modules/**` and `dist/**`): a plain directory walk
 * gives the same files as fast-glob without loading it and without matching every path against
 * regular expressions, which is most of a hit's input expansion. Anything it does not fully understand returns undefined and goes to
 * fast-glob, so its answers are only ever the ones fast-glob would give.
 */

/** Path segments without glob syntax, each followed by '/' (literalPath also refuses `.` and `..`). */
const LITERAL = /^(?:[\w.@+~-]+\/)*$/;
const SEGMENT = /^[\w.@+~-]+$/;

interface Plan {
  /**
   * Directories to walk, relative to cwd ('' = cwd itself), by glob index: each wholly taken, or
   * only the files whose names end in `suffix` (`src/**\/*.ts`).
   */
  bases: Array<{ glob: number; base: string; suffix?: string }>;
  /** Literal file paths (`package.json`, `config/app.json`), by glob index. */
  files: Array<{ glob: number; path: string }>;
  /** Entry names skipped anywhere (`**\/name/**`). */
  names: Set<string>;
  /** Relative paths skipped with everything under them (`path/**`). */
  paths: Set<string>;
}

/** A path of literal segments only, none of them `.` or `..`. */
const literalPath = (p: string): boolean =>
  LITERAL.test(`${p}/`) && !p.split('/').some((s) => s === '.' || s === '..');

/**
 * `**`, `base/**`, `base/**\/*` (every file under base) and `base/**\/*.ts` (with dot set, `*` is any
 * name, a leading dot or nothing included, so: the files whose names end in the literal suffix).
 */
const UNDER_BASE = /^(?:(.*)\/)?\*\*(?:\/\*([\w.~-]*))?$/;

function plan(positive: string[], ignore: string[]): Plan | undefined {
  if (positive.length === 0) return undefined;
  const names = new Set<string>();
  const paths = new Set<string>();
  for (const g of ignore) {
    // Matched, as by fast-glob, against paths as globbed: nothing below cwd starts with '../'.
    if (g.startsWith('../')) continue;
    const named = /^\*\*\/([^/]+)\/\*\*$/.exec(g);
    if (named && SEGMENT.test(named[1]!) && named[1] !== '.' && named[1] !== '..') {
      names.add(named[1]!);
      continue;
    }
    if (!g.endsWith('/**') || !literalPath(g.slice(0, -3))) return undefined;
    paths.add(g.slice(0, -3));
  }
  const bases: Plan['bases'] = [];
  const files: Plan['files'] = [];
  for (const [glob, g] of positive.entries()) {
    const under = UNDER_BASE.exec(g);
    if (under) {
      if (under[1] !== undefined && !literalPath(under[1])) return undefined;
      bases.push({ glob, base: under[1] ?? '', suffix: under[2] || undefined });
      continue;
    }
    // A literal path names one file (fast-glob gives it if it is one, and nothing for a
    // directory). One that an ignore might cover is left to fast-glob to judge.
    const segs = g.split('/');
    if (!literalPath(g) || segs.some((s, i) => names.has(s) || paths.has(segs.slice(0, i + 1).join('/'))))
      return undefined;
    files.push({ glob, path: g });
  }
  return { bases, files, names, paths };
}

/** statSync that says 'error' instead of throwing (undefined, as ever, when nothing is there). */
function statOrError(path: string): Stats | undefined | 'error' {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return 'error'; // ELOOP, EACCES, ENOTDIR: the caller leaves such a path to fast-glob
  }
}

/**
 * Files (relative to cwd, '/'-separated) matched by `positive` minus `ignore`, as fast-glob with
 * `dot`, `onlyFiles` and `followSymbolicLinks` would give them; undefined when the globs are not
 * simple enough for this walk or the tree holds a symbolic link to a directory. `listing` records
 * the directories read, for the next run to skip reading them again (fingerprint/manifest.ts); it
 * is left out when the walk met a symbolic link or a missing base, whose changes a directory's
 * stat would not show. `unmatched` holds the indices of the globs that gave no file.
 */
export function walkSimpleGlobs(
  cwd: string,
  positive: string[],
  ignore: string[],
): { files: string[]; listing: Listing | undefined; unmatched: number[] } | undefined {
  const p = plan(positive, ignore);
  if (!p) return undefined;
  const out = new Set<string>();
  const unmatched: number[] = [];
  // Files taken, for telling which bases gave none (a file two bases share counts for both).
  let found = 0;
  const take = (rel: string) => {
    out.add(rel);
    found++;
  };
  const listing: Listing = { dirs: [], stats: [] };
  let listable = true;
  const skipped = (rel: string, name: string) => p.names.has(name) || p.paths.has(rel);
  const walk = (rel: string, suffix: string | undefined): boolean => {
    const wanted = (name: string) => suffix === undefined || name.endsWith(suffix);
    const dir = rel ? `${cwd}/${rel}` : cwd;
    // Stat before reading: an entry added in between then shows as a newer mtime next time.
    const st = dirStat(dir);
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      listable = false;
      return true; // unreadable or gone: fast-glob (suppressErrors) skips it too
    }
    if (st) {
      listing.dirs.push(rel);
      listing.stats.push(st);
    } else listable = false;
    for (const e of entries) {
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (skipped(child, e.name)) continue;
      if (e.isDirectory()) {
        if (!walk(child, suffix)) return false;
      } else if (e.isSymbolicLink()) {
        listable = false;
        const s = statOrError(`${cwd}/${child}`);
        // fast-glob follows links to directories (and guards loops), and judges a looping link: let it.
        if (s === 'error' || s?.isDirectory()) return false;
        if (s?.isFile() && wanted(e.name)) take(child);
      } else if (e.isFile() && wanted(e.name)) take(child);
    }
    return true;
  };
  for (const { glob: i, base, suffix } of p.bases) {
    const before = found;
    if (base) {
      // Each segment of the base must be a real directory (not ignored, not a link) for a plain walk.
      const segs = base.split('/');
      let rel = '';
      let walkable = true;
      for (const s of segs) {
        rel = rel ? `${rel}/${s}` : s;
        if (skipped(rel, s)) return undefined;
        const st = statOrError(`${cwd}/${rel}`);
        if (st === 'error') return undefined;
        if (!st) {
          walkable = false; // nothing there: no files
          listable = false;
          break;
        }
        if (!st.isDirectory()) return undefined;
      }
      if (!walkable) {
        unmatched.push(i);
        continue;
      }
    }
    if (!walk(base, suffix)) return undefined;
    if (found === before) unmatched.push(i);
  }
  for (const { glob, path } of p.files) {
    // Following a link, as fast-glob does. A file stays in the list only while it is there, which
    // its stat shows each run; one not there yet would show only in a listing of its directory.
    // Any error (a file as a parent on Node 20, a looping link, no permission) is no file to
    // fast-glob too (suppressErrors).
    const st = statOrError(`${cwd}/${path}`);
    if (st !== 'error' && st?.isFile()) take(path);
    else {
      unmatched.push(glob);
      listable = false;
    }
  }
  unmatched.sort((a, b) => a - b);
  return { files: [...out], listing: listable ? listing : undefined, unmatched };
}

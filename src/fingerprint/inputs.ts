import { isAbsolute, relative, resolve, sep } from 'node:path';
import { toPosix } from '../util/paths.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';
import { type FileStat, isFileStat, statFile } from '../util/stat.js';
import { loadFastGlob, loadPicomatch } from '../util/vendor.js';
import { checkDefaultInputBytes, defaultInputPaths, nestedRepoPaths } from './default-inputs.js';
import type { InputFile } from './input-file.js';
import { type Listing, listingHolds, type ManifestFiles, statsByRelativePath } from './manifest.js';
import { walkSimpleGlobs } from './walk.js';

/** fast-glob's options for inputs; the plain walk (walk.ts) must give the same files. */
export const INPUT_GLOB_OPTIONS = {
  dot: true,
  onlyFiles: true,
  followSymbolicLinks: true,
  unique: true,
  suppressErrors: true,
} as const;

/** Never inputs unless a glob names them explicitly. */
export const DEFAULT_IGNORES = ['**/node_modules/**', '**/.git/**', '**/.taskvault/**'];

export interface ExpandOptions {
  root: string;
  cwd: string;
  /** undefined: every file under cwd. */
  globs: string[] | undefined;
  /** Excluded from inputs (the task's outputs, the cache dir). */
  exclude: string[];
}

const explicitlyNames = (globs: string[], dir: string): boolean => globs.some((g) => g.includes(dir));

/** Glob syntax in a path segment (conservatively: `@scope` counts, which only makes a base shorter). */
const GLOB_SYNTAX = /[*?[\]{}()!+@\\]/;

/**
 * An absolute glob rewritten relative to `cwd`, as if the user had written it so: fast-glob would
 * return absolute paths for it, which the ignores (outputs, the cache, node_modules) do not match
 * and which are not root-relative, and the watcher matches cwd-relative paths. Only the literal
 * leading directories are rebased; the rest is kept as written.
 */
function relativeGlob(glob: string, cwd: string): string {
  if (!isAbsolute(glob)) return glob;
  const segs = glob.split('/');
  let i = 1;
  while (i < segs.length - 1 && !GLOB_SYNTAX.test(segs[i]!)) i++;
  const base = toPosix(relative(cwd, segs.slice(0, i).join('/') || '/'));
  const rest = segs.slice(i).join('/');
  return (base && rest ? `${base}/${rest}` : base || rest) || '.';
}

/**
 * The globs (relative to `cwd`) that select inputs and the ones that drop them again (shared with
 * the watcher). `positive` keeps the order of the positive globs in `globs`.
 */
export function inputGlobs(
  globs: string[] | undefined,
  exclude: string[],
  cwd: string,
): { positive: string[]; ignore: string[] } {
  const all = globs ?? ['**/*'];
  const positive = all.filter((g) => !g.startsWith('!')).map((g) => relativeGlob(g, cwd));
  const negated = all.filter((g) => g.startsWith('!')).map((g) => relativeGlob(g.slice(1), cwd));
  const defaults = DEFAULT_IGNORES.filter((d) => !explicitlyNames(positive, d.split('/')[1]!));
  // '**/node_modules/**' does not match '../node_modules/x': repeated under each '../' a glob climbs.
  const ups = new Set(positive.map((g) => /^(?:\.\.\/)+/.exec(g)?.[0]).filter((u) => u !== undefined));
  const ignore = [
    ...defaults,
    ...[...ups].flatMap((u) => defaults.map((d) => u + d)),
    ...exclude,
    ...negated,
  ];
  return { positive, ignore };
}

/** A file list and the directory listing it came from, recorded at `recordedMs` (see manifest.ts). */
export interface PriorListing {
  listing: Listing | undefined;
  recordedMs: number;
  files: Pick<ManifestFiles, 'paths' | 'abs'>;
}

/** The first `count` of a prior listing's files, already found unchanged (manifest.ts unchangedFiles). */
export interface KnownFiles {
  count: number;
  at(i: number): InputFile;
}

export interface Expanded {
  /** Sorted by path. */
  files: InputFile[];
  /** The directories a plain walk read (see walk.ts), when they can vouch for the file list. */
  listing: Listing | undefined;
  /** The file list is `prior`'s, in its order: no directory it came from has changed. */
  fromPrior: boolean;
  /**
   * The declared positive globs that matched no file, as written (a typo would otherwise leave the
   * key to the command alone). Only known from a fresh expansion: empty when `fromPrior`.
   */
  unmatched: string[];
}

/**
 * Expands input globs to a sorted file list with the stat fields manifests compare. With a
 * `prior` manifest whose directories are all unchanged, its file list is taken as it is and only
 * statted again.
 */
export async function expandInputs(
  o: ExpandOptions,
  prior?: PriorListing,
  /** Taken as they are instead of statted again, when `prior`'s file list holds. */
  known?: KnownFiles,
): Promise<Result<Expanded>> {
  const globs = o.globs ?? ['**/*'];
  const { positive, ignore } = inputGlobs(o.globs, o.exclude, o.cwd);
  for (const g of globs) {
    if (g.trim() === '' || g === '!')
      return err(failure('input', `invalid input glob ${JSON.stringify(g)}`, 'globs must not be empty'));
  }
  if (prior?.listing && listingHolds(prior.listing, o.cwd, prior.recordedMs)) {
    const files: InputFile[] = [];
    const { paths } = prior.files;
    const byRelative = statsByRelativePath(o.root);
    const skip = Math.min(known?.count ?? 0, paths.length);
    for (let i = 0; i < skip; i++) files.push(known!.at(i));
    for (let i = skip; i < paths.length; i++) {
      const p = paths[i]!;
      const abs = prior.files.abs(i);
      const s = statInput(p, abs, byRelative(p) ? p : abs);
      if (!s) break; // replaced by something else: its directory's stat should have shown that
      files.push(s);
    }
    if (files.length === paths.length)
      return ok({ files, listing: prior.listing, fromPrior: true, unmatched: [] });
  }
  let entries: string[];
  let listing: Listing | undefined;
  let unmatched: number[] | undefined;
  let fromGit: string[] | undefined;
  try {
    // Names only: a statSync per file afterwards costs half the CPU of fast-glob's `stats: true`
    // (which builds fs.Stats objects asynchronously).
    // The plain walk answers the common globs without loading fast-glob; it declines the rest.
    // No declared inputs: git's list where there is a repository (no listing: git's ignore rules
    // decide what a directory holds), else the walk below, once checked to stay bounded.
    fromGit = o.globs === undefined ? await defaultInputPaths(o.cwd, ignore) : undefined;
    const walked = fromGit
      ? { files: fromGit, listing: undefined, unmatched: [] }
      : walkSimpleGlobs(o.cwd, positive, ignore);
    listing = walked?.listing;
    unmatched = walked?.unmatched;
    entries =
      walked?.files ??
      (await (
        await loadFastGlob()
      )(positive, { ...INPUT_GLOB_OPTIONS, cwd: o.cwd, ignore }));
  } catch (e) {
    // fast-glob's complaints about a pattern are the user's to fix; anything else is TaskVault's
    // own trouble, which costs the caching (runTask runs the command uncached), never the run.
    if (!/pattern/i.test(errorMessage(e))) throw e;
    return err(failure('input', `invalid input glob: ${errorMessage(e)}`, 'check --inputs / tasks.*.inputs'));
  }
  // fast-glob gives paths relative to cwd with '/' separators; building root-relative and absolute
  // paths by concatenation instead of path.relative() per file matters at 20k files.
  const prefix = toPosix(relative(o.root, o.cwd));
  const cwdSlash = o.cwd.endsWith(sep) ? o.cwd : o.cwd + sep;
  const files: InputFile[] = [];
  // By index: the files of nested repositories join the list as they are found.
  for (let i = 0; i < entries.length; i++) {
    const raw = entries[i]!;
    const p = raw.startsWith('./') ? raw.slice(2) : raw;
    // Outside cwd (or absolute, should fast-glob ever give such a path): named from the root.
    const outside = p.startsWith('../') || isAbsolute(p);
    const abs = outside ? resolve(o.cwd, p) : cwdSlash + p;
    const f = statInput(outside ? toPosix(relative(o.root, abs)) : prefix ? `${prefix}/${p}` : p, abs);
    if (f) files.push(f);
    // Else vanished since the glob, or a link to something else; or, in git's list, a submodule
    // or a nested repository, whose files are inputs too (else a change in them replays an old result).
    else if (fromGit) entries = entries.concat(await nestedRepoInputs(o.cwd, p, ignore, entries.length));
  }
  if (o.globs === undefined) checkDefaultInputBytes(o.cwd, files);
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  // One file reached two ways ('x' and '../project/x') is one input.
  const unique = files.filter((f, i) => i === 0 || f.path !== files[i - 1]!.path);
  let declared: string[] = [];
  if (o.globs) {
    unmatched ??= await unmatchedGlobs(positive, entries);
    const written = o.globs.filter((g) => !g.startsWith('!'));
    declared = unmatched.map((i) => written[i]!);
  }
  return ok({ files: unique, listing, fromPrior: false, unmatched: declared });
}

/**
 * The files (relative to cwd) of a submodule or nested repository git listed as one path: git's
 * list inside it, else the walk a run outside git makes, with the same ignores.
 */
async function nestedRepoInputs(
  cwd: string,
  path: string,
  ignore: string[],
  listed: number,
): Promise<string[]> {
  const fromGit = await nestedRepoPaths(cwd, path, ignore, listed);
  if (fromGit) return fromGit;
  const glob = await loadFastGlob();
  const dir = glob.escapePath(path.endsWith('/') ? path.slice(0, -1) : path);
  return glob([`${dir}/**`], { ...INPUT_GLOB_OPTIONS, cwd, ignore });
}

/**
 * Indices of the globs that match none of `entries` (as fast-glob gave them). Matching each glob
 * (with picomatch, as fast-glob does) is only needed when there are several and something matched.
 */
async function unmatchedGlobs(positive: string[], entries: string[]): Promise<number[]> {
  if (entries.length === 0) return positive.map((_, i) => i);
  if (positive.length === 1) return [];
  const picomatch = await loadPicomatch();
  return positive.flatMap((g, i) => {
    const matches = picomatch(g, { dot: true });
    return entries.some((e) => matches(e.startsWith('./') ? e.slice(2) : e)) ? [] : [i];
  });
}

function statInput(path: string, abs: string, statPath = abs): InputFile | undefined {
  let s: FileStat | undefined;
  try {
    s = statFile(statPath);
  } catch (e) {
    // A parent replaced by a file: the path is gone, as with ENOENT. Anything else is an input
    // that cannot be read, which must not be left out of the key silently.
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
  if (!s || !isFileStat(s)) return undefined;
  return {
    path,
    abs,
    size: s.size,
    mode: s.mode,
    dev: s.dev,
    ino: s.ino,
    mtimeMs: s.mtimeMs,
    ctimeMs: s.ctimeMs,
  };
}

import { lstatSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { FailureError, failure } from '../util/result.js';
import { isDirStat, statFile } from '../util/stat.js';
import { loadPicomatch } from '../util/vendor.js';

const require = createRequire(import.meta.url);

/*
 * The inputs of a task that declares none. Inside a git work tree they are git's own idea of the
 * project: tracked files plus untracked files that are not ignored (`.gitignore`, info/exclude, the
 * global excludes), as turbo does; elsewhere, as before, every file under the working directory.
 * Either way the default is bounded: a run from `/` or a home directory stops with one line instead
 * of walking (and holding in memory) the whole disk.
 */

/** More default inputs than this: declare --inputs (TASKVAULT_MAX_DEFAULT_INPUTS overrides it). */
export const MAX_DEFAULT_INPUT_FILES = 100_000;
/** More bytes of default inputs than this (10 GB): declare --inputs. */
export const MAX_DEFAULT_INPUT_BYTES = 10e9;

const fmt = (n: number): string => n.toLocaleString('en-US');

/** The file bound, from the environment when set there (a positive integer), else the default. */
export function maxDefaultInputFiles(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.TASKVAULT_MAX_DEFAULT_INPUTS);
  return Number.isInteger(n) && n > 0 ? n : MAX_DEFAULT_INPUT_FILES;
}

/**
 * Thrown (a FailureError: one line at the CLI) when the default would pass a bound. `run` turns
 * it into running the command uncached with the warning; `explain` prints it and exits non-zero.
 */
export function tooManyDefaultInputs(dir: string, what: string): FailureError {
  return new FailureError(
    failure('input', `no --inputs given and ${dir} holds more than ${what}; declare --inputs (see docs)`),
  );
}

/** The git work tree `cwd` is in (a `.git` directory or file in it or above), if any. */
export function gitWorkTree(cwd: string): string | undefined {
  for (let dir = cwd; ; dir = dirname(dir)) {
    try {
      if (statFile(`${dir}/.git`)) return dir;
    } catch {
      // EACCES and the like on one ancestor: keep looking above, as git would fail there too
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** What git lists: every path relative to cwd, or why it could not say (then the walk decides). */
type GitListing = { files: string[] } | { unavailable: string };

/** The ignores expandInputs applies, split into what git can leave out itself and the rest. */
interface Ignores {
  /** Directory names skipped anywhere (`**\/name/**`). */
  names: Set<string>;
  /** Literal directories skipped with all below them (`path/**`), with their trailing '/'. */
  prefixes: string[];
  /** Anything else (outputs globs), matched with picomatch as fast-glob would. */
  others: string[];
}

/**
 * A glob and everything below what it matches: matchOutputs takes a directory an output glob
 * names whole (`--outputs out`), so the files the command writes in it are no inputs either.
 */
const withTree = (g: string): string[] => (g.endsWith('/**') ? [g] : [g, `${g.replace(/\/+$/, '')}/**`]);

function splitIgnores(ignore: string[]): Ignores {
  const out: Ignores = { names: new Set(), prefixes: [], others: [] };
  for (const g of ignore.flatMap(withTree)) {
    if (g.startsWith('../')) continue; // nothing git lists from cwd climbs out of it
    const named = /^\*\*\/([^/*?[\]{}()!+@\\:]+)\/\*\*$/.exec(g);
    if (named) out.names.add(named[1]!);
    else if (/^[^*?[\]{}()!+@\\:]+\/\*\*$/.test(g)) out.prefixes.push(g.slice(0, -2));
    else out.others.push(g);
  }
  return out;
}

/**
 * The variables by which git names the repository of whoever ran us (a hook's GIT_DIR and
 * GIT_INDEX_FILE): `git rev-parse --local-env-vars`, less the `git -c` settings, as git itself
 * drops them before it works in a submodule. Kept, they would make git list the outer repository.
 */
const GIT_LOCAL_ENV = [
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_CONFIG',
  'GIT_OBJECT_DIRECTORY',
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_IMPLICIT_WORK_TREE',
  'GIT_GRAFT_FILE',
  'GIT_INDEX_FILE',
  'GIT_NO_REPLACE_OBJECTS',
  'GIT_REPLACE_REF_BASE',
  'GIT_PREFIX',
  'GIT_INTERNAL_SUPER_PREFIX',
  'GIT_SHALLOW_FILE',
  'GIT_COMMON_DIR',
];

function gitEnv(nested: boolean): NodeJS.ProcessEnv {
  // Never prompt, never take a lock another git may be waiting for.
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0' };
  if (nested) for (const k of GIT_LOCAL_ENV) delete env[k];
  return env;
}

/** The ignores git applies itself, as pathspecs from `dir` ('' for cwd). */
function excludePathspecs(ignores: Ignores, dir: string): string[] {
  const under = dir ? `${dir}/` : '';
  return [
    ...[...ignores.names].map((n) => `:(exclude,glob)**/${n}/**`),
    ...ignores.prefixes
      .filter((p) => p.startsWith(under))
      .map((p) => `:(exclude,glob)${p.slice(under.length)}**`),
  ];
}

/**
 * `git ls-files -z --cached --others --exclude-standard` in `dir` under cwd ('' for cwd itself, else
 * a nested repository's work tree): tracked files and untracked, not ignored ones, relative to cwd,
 * less the always-ignored directories and the cache (left out by git itself, as pathspecs, so that a
 * cache git does not ignore is not listed at all) and the outputs. Bounded: past
 * maxDefaultInputFiles() paths with the `listed` ones before it (or a listing too large to be under
 * it) it throws tooManyDefaultInputs, so no path through it can exhaust the heap. child_process is
 * loaded only here: a task with declared inputs never loads it on a hit.
 */
async function gitListFiles(cwd: string, dir: string, ignores: Ignores, listed = 0): Promise<GitListing> {
  // require(), not import(): import() from the bundle's cached code fails on Node 20 (hash-pool.ts).
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const limit = maxDefaultInputFiles();
  // Paths average well under 200 bytes; a listing past this is over the bound anyway.
  const maxBuffer = Math.max(1 << 20, limit * 512);
  const r = spawnSync(
    'git',
    [
      'ls-files',
      '-z',
      '--cached',
      '--others',
      '--exclude-standard',
      '--',
      '.',
      ...excludePathspecs(ignores, dir),
    ],
    {
      cwd: dir ? `${cwd}/${dir}` : cwd,
      maxBuffer,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: gitEnv(dir !== ''),
      windowsHide: true,
    },
  );
  const tooMany = () => tooManyDefaultInputs(cwd, `${fmt(limit)} files git tracks or does not ignore`);
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOBUFS') throw tooMany();
  if (r.error) return { unavailable: r.error.message };
  if (r.status !== 0)
    return { unavailable: r.stderr.toString().trim().split('\n')[0] || `git exited with ${r.status}` };
  const keep = await keeper(ignores);
  const under = dir ? `${dir}/` : '';
  const out = r.stdout;
  const files: string[] = [];
  let start = 0;
  for (let i = out.indexOf(0); i !== -1; i = out.indexOf(0, start)) {
    const p = under + out.toString('utf8', start, i);
    start = i + 1;
    if (p === under || !keep(p)) continue;
    files.push(p);
    if (listed + files.length > limit) throw tooMany();
  }
  return { files };
}

/**
 * Whether a path (relative to cwd) passes the ignores: `**\/name/**` and `path/**` by hand, the
 * rest with picomatch, as fast-glob would match them.
 */
async function keeper(ignores: Ignores): Promise<(p: string) => boolean> {
  const { names, prefixes, others } = ignores;
  const picomatch = others.length > 0 ? await loadPicomatch() : undefined;
  const matchers = others.map((g) => picomatch!(g, { dot: true }));
  return (p) => {
    for (const pre of prefixes) if (p.startsWith(pre)) return false;
    if (names.size > 0) {
      const segs = p.split('/');
      for (let i = 0; i < segs.length - 1; i++) if (names.has(segs[i]!)) return false;
    }
    return !matchers.some((m) => m(p));
  };
}

/**
 * Counts, without keeping them, the files a walk of cwd would find (skipping the always-ignored
 * directory names, following links to directories once each), and throws tooManyDefaultInputs
 * past `limit` files (with `counted` ones found elsewhere) or directories: the walk that lists
 * them afterwards is then bounded too.
 */
export function checkWalkBound(cwd: string, skipNames: Set<string>, limit: number, counted = 0): void {
  const seen = new Set<string>();
  let files = counted;
  let dirs = 0;
  const stack = [cwd];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let st: ReturnType<typeof statFile>;
    try {
      st = statFile(dir);
    } catch {
      continue; // unreadable: the walk skips it too
    }
    if (!st || !isDirStat(st)) continue;
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) continue;
    seen.add(id);
    if (++dirs > limit) throw tooManyDefaultInputs(cwd, `${fmt(limit)} directories`);
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      continue; // unreadable or gone meanwhile: fast-glob (suppressErrors) would skip it too
    }
    for (const e of entries) {
      if (skipNames.has(e.name)) continue;
      if (e.isDirectory() || e.isSymbolicLink()) {
        if (e.isSymbolicLink()) {
          // A link to a file counts as one; to a directory, it is walked (once).
          let t: ReturnType<typeof statFile>;
          try {
            t = statFile(`${dir}/${e.name}`);
          } catch {
            continue; // a looping or unreadable link: no file to count
          }
          if (t && !isDirStat(t)) {
            if (++files > limit) throw tooManyDefaultInputs(cwd, `${fmt(limit)} files`);
            continue;
          }
        }
        stack.push(`${dir}/${e.name}`);
      } else if (++files > limit) throw tooManyDefaultInputs(cwd, `${fmt(limit)} files`);
    }
  }
}

/**
 * The default input list (paths relative to cwd) when git can give it, else undefined after
 * checking that the walk expandInputs then does stays within the bound. Throws
 * tooManyDefaultInputs past the bound.
 */
export async function defaultInputPaths(cwd: string, ignore: string[]): Promise<string[] | undefined> {
  if (gitWorkTree(cwd) !== undefined) {
    const listed = await gitListFiles(cwd, '', splitIgnores(ignore));
    if ('files' in listed) return listed.files;
    // No git on PATH, a repository git refuses (another owner's), ...: every file under cwd, as
    // without a repository.
  }
  checkWalkBound(cwd, splitIgnores(ignore).names, maxDefaultInputFiles());
  return undefined;
}

/**
 * The files of a submodule or nested repository, which git lists from outside as one path that is
 * no file (a gitlink `sub`, an untracked `nested/`): git's own list inside it, relative to cwd
 * (expandInputs expands its gitlinks and nested repositories in turn), or undefined when git cannot
 * list it, after checking that the walk of it expandInputs then does stays within the bound
 * (`listed` inputs count toward it). Nothing for any other path that is no file: a link, an
 * uninitialized submodule (no .git), a file gone since git listed it.
 */
export async function nestedRepoPaths(
  cwd: string,
  path: string,
  ignore: string[],
  listed: number,
): Promise<string[] | undefined> {
  const dir = path.endsWith('/') ? path.slice(0, -1) : path;
  const ignores = splitIgnores(ignore);
  if (!isRepoDir(`${cwd}/${dir}`) || !(await keeper(ignores))(`${dir}/`)) return [];
  const inside = await gitListFiles(cwd, dir, ignores, listed);
  if ('files' in inside) return inside.files;
  checkWalkBound(`${cwd}/${dir}`, ignores.names, maxDefaultInputFiles(), listed);
  return undefined;
}

/** A directory itself (not a link to one) with a `.git` of its own: a repository's work tree. */
function isRepoDir(abs: string): boolean {
  try {
    return lstatSync(abs).isDirectory() && statFile(`${abs}/.git`) !== undefined;
  } catch {
    return false; // gone, or unreadable: not a repository git could list either
  }
}

/** Throws tooManyDefaultInputs when the default inputs' sizes add up past the byte bound. */
export function checkDefaultInputBytes(cwd: string, files: Array<{ size: number }>): void {
  let total = 0;
  for (const f of files) total += f.size;
  if (total > MAX_DEFAULT_INPUT_BYTES)
    throw tooManyDefaultInputs(cwd, `${fmt(MAX_DEFAULT_INPUT_BYTES / 1e9)} GB of files`);
}

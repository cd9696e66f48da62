import { relative } from 'node:path';
import type fg from 'fast-glob';
import { DEFAULT_IGNORES } from '../fingerprint/inputs.js';
import { toPosix } from '../util/paths.js';
import { loadFastGlob } from '../util/vendor.js';
import { walkSimpleOutputs } from './outputs-walk.js';

export interface OutputMatch {
  /** Relative to the project root, POSIX separators. */
  path: string;
  abs: string;
  type: 'file' | 'dir' | 'symlink';
}

/** Temp files a restore writes beside their destination; never treated as outputs. */
export const RESTORE_TEMP_GLOB = '**/.*.tv-*.tmp';

/** `.<name>.tv-<pid>-<rand>.tmp`: the pid tells whether a leftover's writer is still alive. */
export const restoreTempName = (name: string, rand: string): string =>
  `.${name}.tv-${process.pid}-${rand}.tmp`;

/** The pid that wrote a restore temp file, or undefined if `name` is not one. */
export function restoreTempOwner(name: string): number | undefined {
  const m = /^\..*\.tv-(\d+)-[0-9a-f]+\.tmp$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** DEFAULT_IGNORES as directory names (`**\/name/**`). */
const IGNORED_NAMES = new Set(DEFAULT_IGNORES.map((g) => g.split('/')[1]!));

/** fast-glob's options for outputs (symlinks kept as links); the plain walk must agree with them. */
export function outputGlobOptions(cwd: string, withRestoreTemps: boolean): fg.Options & { objectMode: true } {
  return {
    cwd,
    dot: true,
    onlyFiles: false,
    followSymbolicLinks: false,
    absolute: true,
    objectMode: true,
    ignore: withRestoreTemps ? DEFAULT_IGNORES : [...DEFAULT_IGNORES, RESTORE_TEMP_GLOB],
    suppressErrors: true,
  };
}

/**
 * Everything the output globs match, without following symlinks. A glob that names a directory
 * takes the whole tree below it, as users of `--outputs dist` expect.
 */
export async function matchOutputs(
  root: string,
  cwd: string,
  globs: string[],
  /** Also return restore temp files (the restore's stale sweep removes those of dead processes). */
  withRestoreTemps = false,
): Promise<OutputMatch[]> {
  if (globs.length === 0) return [];
  const walked = walkSimpleOutputs(root, cwd, globs, IGNORED_NAMES, !withRestoreTemps);
  if (walked) return walked.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const glob = await loadFastGlob();
  const options = outputGlobOptions(cwd, withRestoreTemps);
  const found = new Map<string, OutputMatch>();
  const add = (entries: fg.Entry[]) => {
    for (const e of entries) {
      const type = e.dirent.isSymbolicLink()
        ? 'symlink'
        : e.dirent.isDirectory()
          ? 'dir'
          : e.dirent.isFile()
            ? 'file'
            : undefined;
      if (type) found.set(e.path, { path: toPosix(relative(root, e.path)), abs: e.path, type });
    }
  };
  add(await glob(globs, options));
  const dirs = [...found.values()].filter((m) => m.type === 'dir');
  if (dirs.length > 0)
    add(
      await glob(
        dirs.map((d) => `${glob.escapePath(toPosix(relative(cwd, d.abs)))}/**`),
        options,
      ),
    );
  return [...found.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

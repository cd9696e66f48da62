import { relative } from 'node:path';
import fg from 'fast-glob';
import { toPosix } from '../util/paths.js';
import { err, errorMessage, failure, ok, type Result } from '../util/result.js';

/** Never inputs unless a glob names them explicitly. */
export const DEFAULT_IGNORES = ['**/node_modules/**', '**/.git/**', '**/.taskvault/**'];

export interface InputFile {
  /** Path relative to the project root, POSIX separators. */
  path: string;
  abs: string;
  size: number;
  mode: number;
  dev: number;
  ino: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface ExpandOptions {
  root: string;
  cwd: string;
  /** undefined: every file under cwd. */
  globs: string[] | undefined;
  /** Excluded from inputs (the task's outputs, the cache dir). */
  exclude: string[];
}

const explicitlyNames = (globs: string[], dir: string): boolean => globs.some((g) => g.includes(dir));

/** The globs that select inputs and the ones that drop them again (shared with the watcher). */
export function inputGlobs(
  globs: string[] | undefined,
  exclude: string[],
): { positive: string[]; ignore: string[] } {
  const all = globs ?? ['**/*'];
  const positive = all.filter((g) => !g.startsWith('!'));
  const negated = all.filter((g) => g.startsWith('!')).map((g) => g.slice(1));
  const ignore = [
    ...DEFAULT_IGNORES.filter((d) => !explicitlyNames(positive, d.split('/')[1]!)),
    ...exclude,
    ...negated,
  ];
  return { positive, ignore };
}

/** Expands input globs to a sorted file list with the stat fields the stat cache needs. */
export async function expandInputs(o: ExpandOptions): Promise<Result<InputFile[]>> {
  const globs = o.globs ?? ['**/*'];
  const { positive, ignore } = inputGlobs(o.globs, o.exclude);
  for (const g of globs) {
    if (g.trim() === '' || g === '!')
      return err(failure('input', `invalid input glob ${JSON.stringify(g)}`, 'globs must not be empty'));
  }
  let entries: fg.Entry[];
  try {
    entries = await fg(positive, {
      cwd: o.cwd,
      dot: true,
      onlyFiles: true,
      followSymbolicLinks: true,
      ignore,
      stats: true,
      absolute: true,
      unique: true,
      suppressErrors: true,
    });
  } catch (e) {
    return err(failure('input', `invalid input glob: ${errorMessage(e)}`, 'check --inputs / tasks.*.inputs'));
  }
  const files: InputFile[] = [];
  for (const e of entries) {
    const s = e.stats;
    if (!s) continue;
    files.push({
      path: toPosix(relative(o.root, e.path)),
      abs: e.path,
      size: s.size,
      mode: s.mode,
      dev: s.dev,
      ino: s.ino,
      mtimeNs: BigInt(Math.round(s.mtimeMs * 1e6)),
      ctimeNs: BigInt(Math.round(s.ctimeMs * 1e6)),
    });
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return ok(files);
}

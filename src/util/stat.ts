import { constants, statSync } from 'node:fs';
import { note } from './trace.js';

/*
 * stat() for the per-input hot loops (fingerprint, manifest check, re-check after a miss): the
 * numbers only, as one small object.
 *
 * Why not just statSync: on Node 20 every fs.Stats eagerly builds four Dates, which with the GC they
 * cause is over half of a stat's cost in a fresh process (2,000 inputs: ~8 ms against ~3.5 ms for the
 * numbers alone, measured here). Node 22 made those dates lazy (nodejs/node#50908). So on Node 20
 * only, this reads the same numbers from the fs binding that statSync itself calls, after checking
 * once that it gives exactly what statSync gives; anywhere else, and if that check fails, it is
 * statSync.
 */

export interface FileStat {
  dev: number;
  ino: number;
  size: number;
  mode: number;
  /** As fs.Stats computes them, so that values recorded by either path compare equal. */
  mtimeMs: number;
  ctimeMs: number;
}

export const isFileStat = (s: FileStat): boolean => (s.mode & constants.S_IFMT) === constants.S_IFREG;
export const isDirStat = (s: FileStat): boolean => (s.mode & constants.S_IFMT) === constants.S_IFDIR;

/**
 * The stat of `path` (following links), undefined if nothing is there; throws as statSync does for
 * anything else (ENOTDIR, EACCES, ELOOP, ...).
 */
export const statFile: (path: string) => FileStat | undefined = pickStat();

/** Which of the two statFile is (for tests, and said in TASKVAULT_TRACE's line). */
export const statVia: 'binding' | 'statSync' = statFile === viaStatSync ? 'statSync' : 'binding';
note(`stat via ${statVia}`);

function viaStatSync(path: string): FileStat | undefined {
  const s = statSync(path, { throwIfNoEntry: false });
  return s && { dev: s.dev, ino: s.ino, size: s.size, mode: s.mode, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs };
}

/** Node 20's binding: stat(path, bigint, req, throwIfNoEntry) → its shared Float64Array. */
type StatBinding = (
  path: string,
  bigint: false,
  req: undefined,
  throwIfNoEntry: boolean,
) => Float64Array | undefined;

/** process.binding, which @types/node leaves out (it is deprecated, in documentation only). */
type ProcessBinding = ((name: 'fs') => { stat?: StatBinding }) & { name: string };

function pickStat(): (path: string) => FileStat | undefined {
  const processBinding = (process as unknown as { binding?: ProcessBinding }).binding;
  // Not where the dates are lazy already, nor where process.binding would warn: under
  // --pending-deprecation (however it is spelled or set) Node swaps in a wrapper that does.
  if (process.versions.node.split('.')[0] !== '20' || processBinding?.name !== 'binding') return viaStatSync;
  try {
    const binding = processBinding.call(process, 'fs');
    const stat = binding.stat?.bind(binding);
    if (typeof stat !== 'function') return viaStatSync;
    const fast = (path: string): FileStat | undefined => {
      // statSync refuses such paths; the binding would cut them short. None come from a directory listing.
      if (path.includes('\0')) return viaStatSync(path);
      const a = stat(path, false, undefined, false);
      // Field order of Node's statValues: dev, mode, nlink, uid, gid, rdev, blksize, ino, size,
      // blocks, atime s/ns, mtime s/ns, ctime s/ns, birthtime s/ns. Times as msFromTimeSpec.
      return (
        a && {
          dev: a[0]!,
          ino: a[7]!,
          size: a[8]!,
          mode: a[1]!,
          mtimeMs: a[12]! * 1e3 + a[13]! / 1e6,
          ctimeMs: a[14]! * 1e3 + a[15]! / 1e6,
        }
      );
    };
    return agrees(fast) ? fast : viaStatSync;
  } catch {
    return viaStatSync;
  }
}

/** Whether `fast` gives what statSync gives, for a file, a directory and nothing. */
function agrees(fast: (path: string) => FileStat | undefined): boolean {
  const same = (a?: FileStat, b?: FileStat) =>
    a === b ||
    (a !== undefined &&
      b !== undefined &&
      a.dev === b.dev &&
      a.ino === b.ino &&
      a.size === b.size &&
      a.mode === b.mode &&
      a.mtimeMs === b.mtimeMs &&
      a.ctimeMs === b.ctimeMs);
  const probes = [process.execPath, process.cwd(), `${process.execPath}\u0001missing`];
  return probes.every((p) => same(fast(p), viaStatSync(p)));
}

import { chmodSync, constants, lstatSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, copyFile, rm, symlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { BlobProblem, BlobStore, CheckedBlobs } from '../store/blobs.js';
import { type Entry, isHexDigest, type OutputRecord } from '../store/entry.js';
import { checkEntryPaths } from '../store/entry-paths.js';
import { plainPathInside, safeJoin } from '../util/paths.js';
import { pidAlive } from '../util/process.js';
import { err, failure, ok, type Result } from '../util/result.js';
import { tempSuffix } from '../util/temp-name.js';
import { matchOutputs, restoreTempName, restoreTempOwner } from './outputs.js';

export type RestoreResult =
  | { ok: true; files: number; bytes: number }
  | { ok: false; kind: 'refused'; message: string }
  | { ok: false; kind: 'blob'; problem: BlobProblem };

/** Below this many output bytes a restore copies without trying copy-on-write clones. */
const CLONE_MIN_BYTES = 8 * 1024 * 1024;

/** Entry fields beyond the output records that a restore acts on. */
function checkEntryShape(root: string, entry: Entry): string | undefined {
  if (entry.cwd !== '' && entry.cwd !== '.' && !safeJoin(root, entry.cwd).ok)
    return `unsafe cwd ${JSON.stringify(entry.cwd)}`;
  if (!Array.isArray(entry.outputGlobs) || !entry.outputGlobs.every((g) => typeof g === 'string'))
    return 'malformed output globs';
  for (const ref of [entry.logs?.stdout, entry.logs?.stderr])
    if (ref && !isHexDigest(ref.hash)) return 'malformed log blob hash';
  return undefined;
}

/**
 * mkdir -p that refuses to pass through a symlink and replaces stale non-directories: run once
 * every blob is verified. A symlink where the entry has a directory (`dirs`, paths relative to
 * the root) is replaced too: it is an output that changed shape, and removing a link never
 * touches what it points to. Blocking calls: run for every restored file, a thread-pool round
 * trip per path component cost more than the lstat itself. `made` holds the directories this
 * restore already checked or made: 20,000 files in 100 directories need 100 checks, not one per
 * file and path component. That is no weaker: each file's parents are checked again right
 * before its rename.
 */
function ensureDir(root: string, dir: string, made?: Set<string>, dirs?: ReadonlySet<string>): Result<void> {
  if (made?.has(dir)) return ok(undefined);
  const parts = relative(root, dir).split(/[\\/]/).filter(Boolean);
  let cur = root;
  for (const part of parts) {
    cur = join(cur, part);
    if (made?.has(cur)) continue;
    const s = lstatSync(cur, { throwIfNoEntry: false });
    if (s?.isDirectory()) continue;
    if (s?.isSymbolicLink() && !dirs?.has(relative(root, cur).split(sep).join('/')))
      return err(failure('cache', `refused to write through the symlink ${relative(root, cur)}`));
    if (s) rmSync(cur, { force: true });
    try {
      mkdirSync(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    made?.add(cur);
  }
  made?.add(dir);
  return ok(undefined);
}

/**
 * Where a file's temp is written before any blob is verified: its directory, with missing
 * directories made, but nothing removed. A file or symlink on the way (the outputs changed shape)
 * stops the walk, and the temp waits in the last directory reached: the project changes shape
 * only once every blob is verified (ensureDir, then the rename).
 */
function tempDirFor(root: string, dir: string, made: Set<string>): string {
  if (made.has(dir)) return dir;
  const parts = relative(root, dir).split(/[\\/]/).filter(Boolean);
  let cur = root;
  for (const part of parts) {
    const next = join(cur, part);
    if (!made.has(next)) {
      const s = lstatSync(next, { throwIfNoEntry: false });
      if (s && !s.isDirectory()) return cur;
      if (!s) {
        try {
          mkdirSync(next);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
      }
      made.add(next);
    }
    cur = next;
  }
  return cur;
}

/**
 * Restores an entry's outputs. Files are first written, verified, beside their destination under a
 * temp name; only when every blob checked out are stale outputs removed and the temps renamed into
 * place, so a corrupt blob leaves the project as it was.
 */
export async function restoreOutputs(
  blobs: BlobStore,
  entry: Entry,
  root: string,
  /** Blobs a pull checked as it wrote them (see CheckedBlobs): copied without hashing again. */
  pulled?: CheckedBlobs,
): Promise<RestoreResult> {
  const shape = checkEntryShape(root, entry);
  if (shape) return { ok: false, kind: 'refused', message: `refused entry: ${shape}` };
  const checked = checkEntryPaths(root, entry.outputs);
  if (!checked.ok) return { ok: false, kind: 'refused', message: checked.error.message };
  const abs = checked.value;

  const temps: Array<[tmp: string, dest: string, mode: number]> = [];
  const cleanup = () => Promise.all(temps.map(([t]) => rm(t, { force: true })));
  const files = entry.outputs.filter((o) => o.type === 'file');
  const made = new Set<string>();
  for (const o of files) {
    const dest = abs.get(o.path)!;
    const tmp = join(tempDirFor(root, dirname(dest), made), restoreTempName(basename(dest), tempSuffix()));
    temps.push([tmp, dest, o.mode & 0o777]); // never restore setuid/setgid bits from a cache
  }
  // Every blob is checked before anything is renamed into place (invariant 1). Blobs a pull has
  // just checked byte for byte as it wrote them are copied as they are (from memory, or in the
  // kernel); the others are checked here: on a filesystem with copy-on-write clones, each blob is
  // read once to verify it while it is cloned (no data is copied; blobs are immutable and only
  // ever appear complete); elsewhere each is copied by reading it once, hashing exactly the bytes
  // written. Cloning only pays for large outputs: small ones are copied without probing.
  const own = files.flatMap((o, k) => (pulled?.has(o.hash) ? [] : [k]));
  const ownFiles = own.map((k) => files[k]!);
  const ownTemps = own.map((k) => temps[k]!);
  const bytes = files.reduce((n, o) => n + o.size, 0);
  const ownBytes = ownFiles.reduce((n, o) => n + o.size, 0);
  let problem: BlobProblem | undefined;
  // Copies are created with their final mode; only a clone, or a mode the umask would cut, is
  // chmod-ed before its rename (one system call less per file in the usual case).
  const umask = process.umask();
  /** Temps created with their final mode (copied here, not cloned nor copied from a pull). */
  const exact = new Set<string>();
  try {
    problem = pulled ? await copyChecked(blobs, pulled, files, temps, root) : undefined;
    if (!problem && ownFiles.length > 0) {
      if (ownBytes >= CLONE_MIN_BYTES && blobs.canClone(ownFiles[0]!.hash, ownTemps[0]![0])) {
        problem = await cloneVerified(blobs, entry, ownFiles, ownTemps);
      } else {
        problem = await blobs.copyAllVerified(
          entry.algorithm,
          ownFiles.map((o, k) => ({
            ref: { hash: o.hash, size: o.size },
            dest: ownTemps[k]![0],
            mode: ownTemps[k]![2],
          })),
          root,
        );
        for (const [tmp] of ownTemps) exact.add(tmp);
      }
    }
  } catch (e) {
    await cleanup();
    throw e;
  }
  if (problem) {
    await cleanup();
    return { ok: false, kind: 'blob', problem };
  }
  // Stale outputs: whatever the globs match now that the entry does not have.
  const wanted = new Set(entry.outputs.map((o) => o.path));
  const cwd = resolve(root, entry.cwd);
  // Globs from an entry may be hostile: only relative ones without `..` are swept (no walking /).
  const globs = entry.outputGlobs.filter((g) => {
    const body = g.startsWith('!') ? g.slice(1) : g;
    return body !== '' && !isAbsolute(body) && !body.split('/').includes('..');
  });
  for (const m of (await matchOutputs(root, cwd, globs, true)).reverse()) {
    if (wanted.has(m.path)) continue;
    // Temp files of a restore that was killed (kill -9, power loss) go; a live one's are left be.
    const owner = restoreTempOwner(basename(m.path));
    if (owner !== undefined && m.type === 'file' && pidAlive(owner)) continue;
    // Globs come from the entry too: only ever delete below the root, never through a symlink.
    if (!plainPathInside(root, m.abs)) continue;
    if (m.type === 'dir' && entry.outputs.some((o) => o.path.startsWith(`${m.path}/`))) continue;
    await rm(m.abs, { recursive: true, force: true });
  }

  const dirs = new Set(entry.outputs.flatMap((o) => (o.type === 'dir' ? [o.path] : [])));
  const placed = new Set<string>();
  for (const o of entry.outputs) {
    const dest = abs.get(o.path)!;
    if (o.type === 'dir') {
      const dir = ensureDir(root, dest, placed, dirs);
      if (!dir.ok) return { ok: false, kind: 'refused', message: dir.error.message };
      await chmod(dest, o.mode & 0o1777);
    } else if (o.type === 'symlink') {
      const dir = ensureDir(root, dirname(dest), placed, dirs);
      if (!dir.ok) return { ok: false, kind: 'refused', message: dir.error.message };
      await rm(dest, { recursive: true, force: true });
      await symlink(o.target, dest);
    }
  }
  // Blocking calls: one or two per file, and a round trip through the thread pool each would cost more
  // than the calls themselves (~100 ms for 512 files).
  for (const [tmp, dest, mode] of temps) {
    const dir = ensureDir(root, dirname(dest), placed, dirs);
    if (!dir.ok) {
      await cleanup();
      return { ok: false, kind: 'refused', message: dir.error.message };
    }
    // A directory on the way may have been swapped for a symlink since the temp was written.
    if (!plainPathInside(root, dest)) {
      await cleanup();
      return {
        ok: false,
        kind: 'refused',
        message: `refused ${relative(root, dest)}: a parent directory is a symlink`,
      };
    }
    if (!exact.has(tmp) || (mode & umask) !== 0) chmodSync(tmp, mode);
    try {
      renameSync(tmp, dest);
    } catch (e) {
      // A directory where the file goes (the outputs changed shape): it goes, then the file.
      if (!['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
      await rm(dest, { recursive: true, force: true });
      renameSync(tmp, dest);
    }
  }
  return { ok: true, files: files.length, bytes };
}

/**
 * Copies the blobs in `checked` to their temp names: from the bytes still in memory (blocking
 * writes, as the checked copies of small blobs are), else in the kernel (copy_file_range) from the
 * store. Each temp's parents are checked first, as for any restored file.
 */
async function copyChecked(
  blobs: BlobStore,
  checked: CheckedBlobs,
  files: Array<Extract<OutputRecord, { type: 'file' }>>,
  temps: Array<[tmp: string, dest: string, mode: number]>,
  root: string,
): Promise<BlobProblem | undefined> {
  for (let k = 0; k < files.length; k++) {
    const hash = files[k]!.hash;
    if (!checked.has(hash)) continue;
    const tmp = temps[k]![0];
    if (!plainPathInside(root, tmp))
      throw Object.assign(new Error(`refused to write ${tmp}: a parent directory is a symlink`), {
        code: 'ESYMLINK',
      });
    const bytes = checked.get(hash);
    if (bytes) {
      writeFileSync(tmp, bytes, { flag: 'wx', mode: 0o600 });
      continue;
    }
    try {
      await copyFile(blobs.path(hash), tmp, constants.COPYFILE_EXCL);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || blobs.has(hash)) throw e;
      // Removed since the pull wrote it (a concurrent gc): the entry cannot be served.
      return { kind: 'missing', hash, detail: 'blob file is gone' };
    }
  }
  return undefined;
}

/** Clones every blob to its temp name while all are verified (reading each once). */
async function cloneVerified(
  blobs: BlobStore,
  entry: Entry,
  files: Array<Extract<OutputRecord, { type: 'file' }>>,
  temps: Array<[tmp: string, dest: string, mode: number]>,
): Promise<BlobProblem | undefined> {
  const verified = blobs.verifyAll(
    entry.algorithm,
    files.map((o) => ({ hash: o.hash, size: o.size })),
  );
  let next = 0;
  let gone: BlobProblem | undefined;
  const worker = async () => {
    while (next < files.length && !gone) {
      const k = next++;
      const o = files[k]!;
      try {
        await blobs.cloneTo(o.hash, temps[k]![0]);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || blobs.has(o.hash)) throw e;
        // Removed since it was verified (a concurrent gc): the entry cannot be served.
        gone = { kind: 'missing', hash: o.hash, detail: 'blob file is gone' };
      }
    }
  };
  const [problem] = await Promise.all([verified, ...Array.from({ length: 8 }, worker)]);
  return problem ?? gone;
}

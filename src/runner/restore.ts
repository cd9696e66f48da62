import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, rename, rm, symlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { BlobProblem, BlobStore } from '../store/blobs.js';
import type { Entry, OutputRecord } from '../store/entry.js';
import { isInside, safeJoin } from '../util/paths.js';
import { err, failure, ok, type Result } from '../util/result.js';
import { matchOutputs } from './outputs.js';

export type RestoreResult =
  | { ok: true; files: number; bytes: number }
  | { ok: false; kind: 'refused'; message: string }
  | { ok: false; kind: 'blob'; problem: BlobProblem };

/**
 * Checks every path an entry would write, before anything is written (invariant 4): no absolute
 * paths or `..`, no symlink pointing out of the root, and no file written through a symlink that
 * the same entry creates.
 */
export function checkEntryPaths(root: string, outputs: OutputRecord[]): Result<Map<string, string>> {
  const absolute = new Map<string, string>();
  const links = new Set<string>();
  for (const o of outputs) {
    const joined = safeJoin(root, o.path);
    if (!joined.ok) return joined;
    absolute.set(o.path, joined.value);
    if (o.type === 'symlink') {
      if (isAbsolute(o.target))
        return err(failure('cache', `refused symlink ${o.path}: absolute target ${o.target}`));
      const to = resolve(dirname(joined.value), o.target);
      if (!isInside(root, to))
        return err(failure('cache', `refused symlink ${o.path}: target ${o.target} is outside the project`));
      links.add(o.path);
    }
  }
  for (const o of outputs) {
    for (let p = dirname(o.path); p !== '.' && p !== ''; p = dirname(p)) {
      if (links.has(p))
        return err(failure('cache', `refused ${o.path}: it would be written through the symlink ${p}`));
    }
  }
  return ok(absolute);
}

/** mkdir -p that refuses to pass through a symlink and replaces stale non-directories. */
async function ensureDir(root: string, dir: string): Promise<Result<void>> {
  const parts = relative(root, dir).split(/[\\/]/).filter(Boolean);
  let cur = root;
  for (const part of parts) {
    cur = join(cur, part);
    const s = await lstat(cur).catch(() => undefined);
    if (s?.isDirectory()) continue;
    if (s?.isSymbolicLink())
      return err(failure('cache', `refused to write through the symlink ${relative(root, cur)}`));
    if (s) await rm(cur, { force: true });
    await mkdir(cur).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e; // a parallel worker made it first
    });
  }
  return ok(undefined);
}

/**
 * Restores an entry's outputs. Files are first written, verified, beside their destination under a
 * temp name; only when every blob checked out are stale outputs removed and the temps renamed into
 * place, so a corrupt blob leaves the project as it was.
 */
export async function restoreOutputs(blobs: BlobStore, entry: Entry, root: string): Promise<RestoreResult> {
  const checked = checkEntryPaths(root, entry.outputs);
  if (!checked.ok) return { ok: false, kind: 'refused', message: checked.error.message };
  const abs = checked.value;

  const temps: Array<[tmp: string, dest: string, mode: number]> = [];
  const cleanup = () => Promise.all(temps.map(([t]) => rm(t, { force: true })));
  let bytes = 0;
  const files = entry.outputs.filter((o) => o.type === 'file');
  // Blobs are verified (each read once, hashed on all cores) while they are copied to temp names
  // beside their destinations as clones or in-kernel copies; nothing is renamed into place unless
  // every blob checked out (invariant 1). Blobs are immutable and only ever appear complete
  // (tmp + rename), so the bytes copied are the bytes verified.
  const verified = blobs.verifyAll(
    entry.algorithm,
    files.map((o) => ({ hash: o.hash, size: o.size })),
  );
  let next = 0;
  let failed: RestoreResult | undefined;
  const worker = async () => {
    while (next < files.length && !failed) {
      const o = files[next++]!;
      const dest = abs.get(o.path)!;
      const dir = await ensureDir(root, dirname(dest));
      if (!dir.ok) {
        failed = { ok: false, kind: 'refused', message: dir.error.message };
        return;
      }
      const tmp = join(dirname(dest), `.${basename(dest)}.tv-${randomBytes(4).toString('hex')}.tmp`);
      temps.push([tmp, dest, o.mode]);
      try {
        await blobs.cloneTo(o.hash, tmp);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || blobs.has(o.hash)) throw e;
        // Removed since it was verified (a concurrent gc): the entry cannot be served.
        failed = {
          ok: false,
          kind: 'blob',
          problem: { kind: 'missing', hash: o.hash, detail: 'blob file is gone' },
        };
        return;
      }
      bytes += o.size;
    }
  };
  try {
    const [problem] = await Promise.all([verified, ...Array.from({ length: 8 }, worker)]);
    if (problem) failed = { ok: false, kind: 'blob', problem };
  } catch (e) {
    await cleanup();
    throw e;
  }
  if (failed) {
    await cleanup();
    return failed;
  }

  // Stale outputs: whatever the globs match now that the entry does not have.
  const wanted = new Set(entry.outputs.map((o) => o.path));
  const cwd = resolve(root, entry.cwd);
  for (const m of (await matchOutputs(root, cwd, entry.outputGlobs)).reverse()) {
    if (wanted.has(m.path)) continue;
    if (m.type === 'dir' && entry.outputs.some((o) => o.path.startsWith(`${m.path}/`))) continue;
    await rm(m.abs, { recursive: true, force: true });
  }

  for (const o of entry.outputs) {
    const dest = abs.get(o.path)!;
    if (o.type === 'dir') {
      const dir = await ensureDir(root, dest);
      if (!dir.ok) return { ok: false, kind: 'refused', message: dir.error.message };
      await chmod(dest, o.mode);
    } else if (o.type === 'symlink') {
      const dir = await ensureDir(root, dirname(dest));
      if (!dir.ok) return { ok: false, kind: 'refused', message: dir.error.message };
      await rm(dest, { recursive: true, force: true });
      await symlink(o.target, dest);
    }
  }
  for (const [tmp, dest, mode] of temps) {
    const s = await lstat(dest).catch(() => undefined);
    if (s?.isDirectory()) await rm(dest, { recursive: true, force: true });
    await chmod(tmp, mode); // writeFile's mode is filtered by the umask
    await rename(tmp, dest);
  }
  return { ok: true, files: files.length, bytes };
}

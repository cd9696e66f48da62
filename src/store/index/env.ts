/**
 * Opening the LMDB environment without lmdb-js's crash on a failed open.
 *
 * lmdb-js (3.x, up to 3.5.6 at least) frees its per-environment state twice when mdb_env_open
 * fails after lock.mdb was opened: src/env.cpp openEnv() deletes `extended_env`, then closeEnv()
 * deletes the same pointer again, because the fd callback (checkExistingEnvs) had already
 * registered the environment. The heap is corrupted; the process dies with SIGSEGV then (in
 * ~ExtendedEnv) or later. The usual way to get there: the index directory is removed (`rm -rf` of
 * the cache) between lmdb creating lock.mdb and data.mdb, so data.mdb fails with ENOENT.
 *
 * So lmdb is never given a directory that can vanish. We open (creating) both files here, and lmdb
 * opens a private directory of our own whose two names are symbolic links to those descriptors
 * (/proc/self/fd/N reaches the file even once its name is gone): no open inside lmdb can fail on a
 * missing file. Afterwards the names in the cache must still be the files lmdb opened; if the index
 * was removed meanwhile, the environment is closed and that is the error. Linux only (/proc); on
 * other systems, or when the private directory cannot be made, lmdb opens the index directly.
 * Cost: two opens, a directory and two links, ~0.2 ms.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RootDatabase, RootDatabaseOptions } from 'lmdb';
import { loadLmdb } from '../../util/vendor.js';

const FILES = ['lock.mdb', 'data.mdb'] as const;
/** Both files are made as lmdb makes them (its permissionsMode default). */
const MODE = 0o664;
const byFd = process.platform === 'linux' && existsSync('/proc/self/fd');

/**
 * Descriptors of lock.mdb files, never closed. LMDB's locks on lock.mdb are POSIX fcntl locks,
 * which belong to the process and the file: closing any descriptor of that file drops all of them,
 * and other processes then take this one's reader slots (MDB_BAD_RSLOT) or re-initialise the lock
 * table under it. One per lock file, reused (lmdb-js shares an environment opened twice).
 */
const keptLocks = new Map<string, number>();
const fileId = (s: Stats) => `${s.dev}:${s.ino}`;

/** A kept descriptor of `path` (a lock.mdb), opened (and created) if there is none yet. */
function lockFd(path: string): number {
  const known = statSync(path, { throwIfNoEntry: false });
  const kept = known && keptLocks.get(fileId(known));
  if (kept !== undefined) return kept;
  const fd = openSync(path, 'a+', MODE);
  // Kept even if another descriptor of the same file appeared meanwhile: closing it is the danger.
  const id = fileId(fstatSync(fd));
  if (!keptLocks.has(id)) keptLocks.set(id, fd);
  return fd;
}

const sameFile = (a: Stats, b: Stats | undefined) => b !== undefined && a.dev === b.dev && a.ino === b.ino;

/** Whether `dir`'s files are still those behind `fds` (false once removed or replaced). */
function stillThere(dir: string, fds: number[]): boolean {
  try {
    return FILES.every((name, i) =>
      sameFile(fstatSync(fds[i]!), statSync(join(dir, name), { throwIfNoEntry: false })),
    );
  } catch {
    return false; // ENOTDIR and the like: the directory is not what we opened either
  }
}

/**
 * lmdb's `open()` for the environment in `dir` (which must exist); throws as it does. An index
 * removed while being opened throws an error whose code is ENOENT.
 */
export function openIndexEnv(dir: string, options: RootDatabaseOptions): RootDatabase {
  const { open } = loadLmdb();
  const direct = () => open({ path: dir, ...options });
  if (!byFd) return direct();
  const fds: number[] = [];
  let stage: string | undefined;
  try {
    try {
      fds.push(lockFd(join(dir, FILES[0])), openSync(join(dir, FILES[1]), 'a+', MODE));
    } catch (e) {
      // The directory is already gone: say so before lmdb is involved. Anything else (EROFS,
      // EACCES) fails in lmdb before its callback registers the environment, so it may say so.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e;
      return direct();
    }
    stage = makeStage();
    if (!stage) return direct();
    for (const [i, name] of FILES.entries()) symlinkSync(`/proc/self/fd/${fds[i]}`, join(stage, name));
    const db = open({ path: stage, ...options });
    if (stillThere(dir, fds)) return db;
    // Nothing was written to it: the close has nothing to wait for, and nothing to report.
    db.close().catch(() => {});
    throw Object.assign(new Error(`ENOENT: the index at ${dir} was removed while it was being opened`), {
      code: 'ENOENT',
    });
  } finally {
    // Only data.mdb's: lock.mdb's stays open (lockFd).
    if (fds[1] !== undefined) closeSync(fds[1]);
    // The links are only needed by the open itself (lmdb keeps its own descriptors).
    if (stage) rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * A new private directory under <tmp>/taskvault-index-<uid>/ named after this process, or undefined
 * when there is none to be had (a read-only temp dir, a parent that is not ours). Directories left
 * by killed processes are removed here.
 */
function makeStage(): string | undefined {
  const uid = process.getuid?.() ?? 0;
  const root = join(tmpdir(), `taskvault-index-${uid}`);
  try {
    mkdirSync(root, { mode: 0o700, recursive: true });
    const s = lstatSync(root);
    if (!s.isDirectory() || s.uid !== uid || (s.mode & 0o077) !== 0) return undefined;
    for (const name of readdirSync(root)) {
      if (!pidAlive(Number(name.split('-')[0]))) rmSync(join(root, name), { recursive: true, force: true });
    }
    return mkdtempSync(join(root, `${process.pid}-`));
  } catch {
    return undefined; // lmdb opens the index directly, as it always did
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

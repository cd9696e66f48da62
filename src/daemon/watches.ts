import { type FSWatcher, readFileSync, watch } from 'node:fs';

/*
 * The daemon's inotify watches, one per directory (and per hard-linked input file), shared by the
 * manifests that need them. Every event on a watch bumps the generation of each manifest using it:
 * a manifest is vouched for only while its generation is the one its check was made at.
 *
 * Why plain fs.watch and not chokidar (which `run --watch` uses): the cookie protocol needs events
 * in the order the kernel queued them. Every fs.watch of this thread shares libuv's one inotify
 * descriptor, so events arrive in kernel order; chokidar stats and filters before it emits, which
 * reorders them.
 */

/** Somebody using watches: told when one of theirs saw an event, or may have missed one. */
export interface WatchUser {
  changed(): void;
}

/**
 * Which events of a watch count for a user: every one (undefined), or only those naming one of these
 * entries (a directory that was not listed, watched for the input files in it).
 */
export type Names = Set<string> | undefined;

interface Watch {
  watcher: FSWatcher;
  users: Map<WatchUser, Names>;
  /** Saw an event or an error: recreated (on the path's current inode) before its next check. */
  touched: boolean;
}

/** Kernel limit on queued events; a turn delivering half of it may have lost some (see `seen`). */
function maxQueuedEvents(): number {
  try {
    const n = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
    return Number.isFinite(n) && n > 0 ? n : 16384;
  } catch {
    return 16384; // the kernel's default
  }
}

export class Watches {
  private readonly byPath = new Map<string, Watch>();
  private turnEvents = 0;
  private turnScheduled = false;
  private readonly overflowAt = Math.max(64, Math.floor(maxQueuedEvents() / 2));
  /** Called when events may have been lost: every user must consider itself changed. */
  onOverflow: () => void = () => {};

  get size(): number {
    return this.byPath.size;
  }

  /**
   * Makes sure `paths` are watched for `user`, each on the inode its path names now: a watch that
   * saw anything since it was made is made afresh (the path may name another directory now), and
   * every other user of it counts as changed, since events in between are not seen. Throws what
   * fs.watch throws (ENOSPC: out of inotify watches; ENOENT).
   */
  retain(user: WatchUser, paths: Iterable<[path: string, names: Names]>): void {
    for (const [path, names] of paths) {
      let w = this.byPath.get(path);
      if (w?.touched) {
        this.drop(path, w);
        for (const u of w.users.keys()) if (u !== user) u.changed();
        const users = w.users;
        w = this.open(path);
        for (const [u, n] of users) w.users.set(u, n);
      }
      if (!w) w = this.open(path);
      w.users.set(user, names);
    }
  }

  /** Stops using every watch of `user` except `keep`; unused watches are closed. */
  release(user: WatchUser, keep: Set<string> = new Set()): void {
    for (const [path, w] of this.byPath) {
      if (keep.has(path) || !w.users.delete(user)) continue;
      if (w.users.size === 0) this.drop(path, w);
    }
  }

  closeAll(): void {
    for (const [path, w] of this.byPath) this.drop(path, w);
  }

  private open(path: string): Watch {
    const w: Watch = { watcher: undefined as unknown as FSWatcher, users: new Map(), touched: false };
    w.watcher = watch(path, { persistent: false }, (_type, name) => this.seen(w, name));
    w.watcher.on('error', () => {
      // E.g. the directory was removed: its users changed; the watch is remade on the next check.
      this.seen(w, null);
    });
    this.byPath.set(path, w);
    return w;
  }

  private drop(path: string, w: Watch): void {
    this.byPath.delete(path);
    try {
      w.watcher.close();
    } catch {
      // Closing a watch whose directory is gone can throw; it is gone either way.
    }
  }

  private seen(w: Watch, name: string | Buffer | null): void {
    w.touched = true;
    // libuv names the watched path's own basename for events on the directory itself (moved,
    // deleted): users filtering by name include it.
    const n = typeof name === 'string' ? name : null;
    for (const [u, names] of w.users) if (!names || n === null || names.has(n)) u.changed();
    // libuv reads the inotify queue until it is empty in one go, so a queue that overflowed is
    // delivered in one turn of the loop; the overflow marker itself is dropped by libuv. So many
    // events in one turn: assume some were lost.
    this.turnEvents++;
    if (this.turnEvents === this.overflowAt) {
      for (const other of this.byPath.values()) other.touched = true;
      this.onOverflow();
    }
    if (!this.turnScheduled) {
      this.turnScheduled = true;
      setImmediate(() => {
        this.turnScheduled = false;
        this.turnEvents = 0;
      });
    }
  }
}

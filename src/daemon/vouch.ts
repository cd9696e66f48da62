import { statfsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { HashAlgorithm } from '../config/types.js';
import { listingHolds, sameAsRecorded } from '../fingerprint/manifest.js';
import { readManifest } from '../store/hot.js';
import type { Names, Watches, WatchUser } from './watches.js';

/*
 * One manifest as the daemon knows it: whether it can vouch that the inputs are as that manifest
 * file recorded them. It can once (1) every directory the manifest's walk read is watched, (2)
 * after that, the same check a hit makes without a daemon (every directory and file statted and
 * compared, settled by the racy-window rule) passed, and (3) no event came on any of its watches
 * since. Events bump `gen`; a check made at another generation vouches for nothing.
 */

/**
 * Filesystems whose changes inotify reports, all of them made on this host (statfs f_type). Network
 * and FUSE mounts (NFS, SMB, 9p, sshfs) can change under the watcher without an event.
 */
const LOCAL_FILESYSTEMS = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0xf2f52010, // f2fs
  0x2fc12fc1, // zfs
  0xca451a4e, // bcachefs
  0x794c7630, // overlayfs (container layers; changes made through it are reported)
]);

/** Hard-linked inputs get a watch of their own; past this many the manifest is not vouched for. */
const MAX_LINKED = 1000;
/** Files statted between two turns of the event loop: the daemon keeps answering while it checks. */
const CHUNK = 4096;

export interface Where {
  root: string;
  cwd: string;
  algorithm: HashAlgorithm;
}

export class Vouch implements WatchUser {
  gen = 0;
  /** The manifest file (its stamp) vouched for, and at which generation. */
  private vouched: { stamp: string; gen: number } | undefined;
  /** Why it cannot vouch now (status and the client's trace). */
  why = 'not checked yet';
  private checking: Promise<void> | undefined;
  private again = false;

  constructor(
    readonly id: string,
    public where: Where,
    private readonly manifestsDir: string,
    private readonly watches: Watches,
    private readonly maxDirs: number,
  ) {}

  changed(): void {
    this.gen++;
  }

  /** Whether the inputs are as manifest file `stamp` recorded (call after a cookie sync). */
  holds(stamp: string): boolean {
    return this.vouched !== undefined && this.vouched.stamp === stamp && this.vouched.gen === this.gen;
  }

  get vouching(): boolean {
    return this.vouched !== undefined && this.vouched.gen === this.gen;
  }

  /** Checks the manifest against the filesystem (again), once at a time; never throws. */
  check(): Promise<void> {
    if (this.checking) {
      this.again = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.again = false;
        try {
          await this.checkOnce();
        } catch (e) {
          this.vouched = undefined;
          this.why = `check failed: ${(e as Error).message}`;
        }
      } while (this.again);
      this.checking = undefined;
    })();
    return this.checking;
  }

  close(): void {
    this.watches.release(this);
    this.vouched = undefined;
  }

  private async checkOnce(): Promise<void> {
    this.vouched = undefined;
    const m = readManifest(join(this.manifestsDir, this.id), this.where.algorithm, this.where.root);
    if (!m?.stamp) return this.decline('no manifest');
    const { stamp } = m;
    if (!m.listing) return this.decline('inputs not from a plain directory walk (globs or symlinks)');
    const { cwd } = this.where;
    const dirs = m.listing.dirs.map((rel) => resolve(cwd, rel));
    const foreign = nonLocalFilesystem(dirs, m.listing.stats);
    if (foreign) return this.decline(`not a local filesystem: ${foreign}`);
    const watched = watchSet(dirs, m.files.paths.length, (i) => m.files.abs(i));
    if (watched.size > this.maxDirs) return this.decline(`too many directories to watch (${watched.size})`);
    // Watches first, then the stats: a change after a stat shows as an event, one before as a stat.
    try {
      this.watches.retain(this, watched);
    } catch (e) {
      return this.decline(`cannot watch: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const gen = this.gen;
    if (!listingHolds(m.listing, cwd, m.recordedMs))
      return this.decline('directories changed since the manifest, or too recently before it');
    const linked: number[] = [];
    const n = m.files.paths.length;
    for (let i = 0; i < n; i++) {
      if (i > 0 && i % CHUNK === 0) {
        await new Promise((r) => setImmediate(r));
        if (this.gen !== gen) return this.decline('inputs changed while being checked');
      }
      const s = statSync(m.files.abs(i), { throwIfNoEntry: false });
      if (!s?.isFile() || !sameAsRecorded(m, i, s))
        return this.decline('inputs changed since the manifest, or too recently before it');
      if (s.nlink > 1) linked.push(i);
    }
    if (linked.length > MAX_LINKED) return this.decline(`too many hard-linked inputs (${linked.length})`);
    // A hard-linked file can be written through a path outside the watched directories: watched
    // itself, then statted again (a change between the first stat and the watch shows here).
    const files = linked.map((i) => m.files.abs(i));
    try {
      this.watches.retain(
        this,
        files.map((f): [string, Names] => [f, undefined]),
      );
    } catch (e) {
      return this.decline(`cannot watch: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    for (const i of linked) {
      const s = statSync(m.files.abs(i), { throwIfNoEntry: false });
      if (!s || !sameAsRecorded(m, i, s)) return this.decline('inputs changed while being checked');
    }
    this.watches.release(this, new Set([...watched.keys(), ...files]));
    if (this.gen !== gen) return this.decline('inputs changed while being checked');
    this.vouched = { stamp, gen };
    this.why = '';
  }

  private decline(why: string): void {
    this.vouched = undefined;
    this.why = why;
  }
}

/**
 * What to watch: every directory the walk listed (any event counts: entries may come and go), and
 * the directory of every input file that is not in one of those (an input named literally, e.g.
 * `package.json` beside `src/**`), where only events naming that file, or the directory itself,
 * count.
 */
function watchSet(dirs: string[], files: number, abs: (i: number) => string): Map<string, Names> {
  const watched = new Map<string, Names>(dirs.map((d) => [d, undefined]));
  for (let i = 0; i < files; i++) {
    const path = abs(i);
    const dir = dirname(path);
    if (watched.has(dir) && watched.get(dir) === undefined) continue;
    let names = watched.get(dir);
    if (!names) {
      names = new Set([basename(dir)]);
      watched.set(dir, names);
    }
    names.add(basename(path));
  }
  return watched;
}

/** The first directory (one per device) on a filesystem inotify cannot fully watch, or undefined. */
function nonLocalFilesystem(dirs: string[], stats: number[][]): string | undefined {
  const seen = new Set<number>();
  for (let i = 0; i < dirs.length; i++) {
    const dev = stats[i]![0]!;
    if (seen.has(dev)) continue;
    seen.add(dev);
    try {
      const type = statfsSync(dirs[i]!).type;
      if (!LOCAL_FILESYSTEMS.has(type)) return `${dirs[i]} (type 0x${type.toString(16)})`;
    } catch (e) {
      return `${dirs[i]} (${(e as Error).message})`;
    }
  }
  return undefined;
}

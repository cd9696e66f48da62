import {
  appendFileSync,
  closeSync,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { HashAlgorithm } from '../config/types.js';
import type { ManifestStore } from '../fingerprint/fingerprint.js';
import { decodeManifest, encodeManifest, type Manifest, peekManifest } from '../fingerprint/manifest.js';
import { manifestStamp } from '../fingerprint/resident.js';
import { mkdirsSync } from '../util/mkdirs.js';
import { tempSuffix } from '../util/temp-name.js';
import { type Entry, isHexDigest, STORE_SCHEMA } from './entry.js';
import type { CacheLayout } from './layout.js';

/*
 * What a repeat run needs, kept as plain files so that a hit never loads or opens the LMDB index
 * (loading lmdb alone is ~20 ms of a ~100 ms hit):
 *
 *   manifests/<id>   the input manifest of one glob set (fingerprint/manifest.ts)
 *   hot/<key>        a copy of the entry committed under <key>, as JSON
 *   hits.journal     one line per hit served from hot/, folded into the index by Store.open
 *                    (index/journal.ts: each line counted exactly once; docs/hit-counts.md)
 *
 * The index stays the source of truth. A hot entry is written after its commit and deleted after
 * its removal (Store), so it can outlive its index entry only if a process dies in between; it then
 * still names blobs that are verified byte for byte before use, for inputs that hash to its key,
 * and `gc` deletes it. Every operation here fails soft: a cache that cannot be written costs speed,
 * never the run.
 */

/** One journal line: key, epoch ms, ms saved. Small enough that an O_APPEND write never splits. */
export interface JournalHit {
  key: string;
  at: number;
  savedMs: number;
}

/** Journal size at which a hit opens the index once to fold it (~40,000 hits). */
export const JOURNAL_FOLD_BYTES = 4 * 1024 * 1024;

export class HotIndex {
  constructor(readonly layout: CacheLayout) {}

  /**
   * The entry last committed under `key`: undefined when there is no copy (so no entry: Store.open
   * gives every entry one), 'damaged' when there is one this version cannot use (unreadable, or
   * written by another version): the index must then be asked.
   */
  getEntry(key: string): Entry | 'damaged' | undefined {
    if (!isHexDigest(key)) return undefined;
    let text: string;
    try {
      text = readFileSync(join(this.layout.hot, key), 'utf8');
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : 'damaged';
    }
    try {
      const e = JSON.parse(text) as Entry;
      return e.schema === STORE_SCHEMA && e.key === key ? e : 'damaged';
    } catch {
      return 'damaged'; // torn or foreign JSON: the index is asked instead
    }
  }

  putEntry(entry: Entry): void {
    if (isHexDigest(entry.key)) this.writeAtomic(this.layout.hot, entry.key, JSON.stringify(entry));
  }

  removeEntry(key: string): void {
    if (!isHexDigest(key)) return;
    try {
      // unlink, not rm: one system call instead of an lstat and an unlink (gc makes one per entry).
      unlinkSync(join(this.layout.hot, key));
    } catch {
      // Already gone (ENOENT), or not removable: gc removes hot entries the index no longer has.
    }
  }

  /**
   * Removes many entries' copies, a few at a time on libuv's thread pool: gc evicting 50,000
   * entries would otherwise wait on 50,000 unlinks one after the other.
   */
  async removeEntries(keys: string[]): Promise<void> {
    const CONCURRENT = 16;
    const one = (key: string) =>
      isHexDigest(key)
        ? unlink(join(this.layout.hot, key)).catch(() => {
            // Already gone, or not removable: gc removes hot entries the index no longer has.
          })
        : undefined;
    for (let i = 0; i < keys.length; i += CONCURRENT)
      await Promise.all(keys.slice(i, i + CONCURRENT).map(one));
  }

  /** Input manifests as files, one per glob set. */
  manifests(): ManifestStore {
    return {
      get: (id: string, algorithm: HashAlgorithm, root: string) =>
        readManifest(join(this.layout.manifests, id), algorithm, root),
      peek: (id: string, algorithm: HashAlgorithm, root: string) => {
        const read = readStamped(join(this.layout.manifests, id));
        const peek = read && peekManifest(read.buf, algorithm, root);
        if (peek) peek.stamp = read!.stamp;
        return peek;
      },
      put: (id, m) => this.writeAtomic(this.layout.manifests, id, encodeManifest(m)),
    };
  }

  /**
   * Books a hit served without the index; Store.open adds it to the index's counts. True when the
   * journal has grown enough that the caller should open the index once to fold it (a cache that
   * only ever hits would otherwise never do so).
   */
  recordHit(h: JournalHit): boolean {
    try {
      appendFileSync(
        this.layout.hitsJournal,
        `${h.key} ${Math.round(h.at)} ${Math.max(0, Math.round(h.savedMs))}\n`,
      );
      return (statSync(this.layout.hitsJournal, { throwIfNoEntry: false })?.size ?? 0) >= JOURNAL_FOLD_BYTES;
    } catch {
      return false; // a read-only cache still serves hits; they are not counted (docs/hit-counts.md)
    }
  }

  /** Written beside its final name's filesystem (tmp/), then renamed: readers see all or nothing. */
  private writeAtomic(dir: string, name: string, data: string | Buffer): void {
    const tmp = join(this.layout.tmp, `${process.pid}-${Date.now()}-${tempSuffix()}.hot`);
    try {
      mkdirsSync(this.layout.tmp);
      mkdirsSync(dir);
      writeFileSync(tmp, data, { flag: 'wx' });
      renameSync(tmp, join(dir, name));
    } catch {
      try {
        rmSync(tmp, { force: true });
      } catch {
        // gc sweeps stale temp files.
      }
    }
  }
}

/**
 * A manifest file with the stamp of the very file read (what the resident helper vouches for), or
 * undefined when there is none or it cannot be used.
 */
export function readManifest(path: string, algorithm: HashAlgorithm, root: string): Manifest | undefined {
  const read = readStamped(path);
  const m = read && decodeManifest(read.buf, algorithm, root);
  if (m) m.stamp = read!.stamp;
  return m;
}

/** A file's bytes and the stamp of the very file read, or undefined. */
function readStamped(path: string): { buf: Buffer; stamp: string } | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const stamp = manifestStamp(fstatSync(fd));
    return { buf: readFileSync(fd), stamp };
  } catch {
    return undefined; // no manifest or an unreadable one: the inputs are hashed afresh
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Parses journal text; lines that are not complete records (a torn tail, garbage) are skipped. */
export function parseJournal(text: string): JournalHit[] {
  const out: JournalHit[] = [];
  for (const line of text.split('\n')) {
    const [key, at, saved] = line.split(' ');
    if (!isHexDigest(key) || at === undefined || saved === undefined) continue;
    const a = Number(at);
    const s = Number(saved);
    if (Number.isFinite(a) && Number.isFinite(s)) out.push({ key, at: a, savedMs: s });
  }
  return out;
}

import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { pidAlive } from '../util/process.js';
import { tempSuffix } from '../util/temp-name.js';
import { type Entry, isHexDigest } from './entry.js';
import type { Commit, Journaled } from './index/entries.js';

/*
 * Saves acknowledged before their index commit (durability 'fast', see Store.commit). Each process
 * appends them to a journal of its own, pending/<pid>-<rand>.journal, one JSON line per save in a
 * single write(2), before the save returns: a crash of the process after that cannot lose it
 * (the kernel has the bytes). The commit follows in the background, grouped with other saves; a
 * store opened later commits what a dead process's journal still holds (Store.foldPending), then
 * removes it. Appending to an open file costs no file creation or rename: on a busy disk those
 * wait for the filesystem's journal, which the index's flushes keep busy.
 *
 * Nothing here is flushed to disk: after a power loss a journal may end in a cut or zeroed line,
 * which is skipped, and those saves are lost (misses), never served wrong (hits verify bytes).
 *
 * Lines are numbered (`seq`, never reused within a journal). Each commit of a group of saves also
 * records, in the index and in the same transaction, the highest number up to which every line of
 * that journal is committed (journalMark). Folding a dead process's journal skips those lines:
 * committing one again would bring back an entry that was removed since (clean, eviction).
 */

const JOURNAL = /^(\d+)-[0-9a-z]+\.journal$/;
/** A journal whose saves are all committed starts over once it is this large. */
const RESTART_BYTES = 1024 * 1024;

export class PendingResults {
  private fd: number | undefined;
  private path: string | undefined;
  private bytes = 0;
  /** Saves appended and not yet committed (or given up). */
  private open = 0;
  /** A commit failed: the journal stays for a later open. */
  private keep = false;
  /** This process's saves not yet committed, by key: its own lookups see them at once. */
  private readonly byKey = new Map<string, Entry>();
  /** The number of the last line appended. */
  private seq = 0;
  /** A short write left a cut line that could not be cut off: the next line starts on its own. */
  private cut = false;

  constructor(readonly dir: string) {}

  /**
   * Appends a save to this process's journal (throws if it cannot be written); with `data`, the
   * bytes of its one output, stored with the commit (in the index, or as a blob file), off the
   * save's path.
   */
  write(c: Commit, data?: Uint8Array): Journaled {
    if (this.fd === undefined) {
      mkdirSync(this.dir, { recursive: true });
      this.path = join(this.dir, `${process.pid}-${tempSuffix()}.journal`);
      this.fd = openSync(this.path, 'a', 0o644);
    }
    const { entry, fingerprint, label } = c;
    const seq = this.seq + 1;
    const saved: Pending = { seq, entry, fingerprint, label };
    if (data) saved.data = Buffer.from(data).toString('base64');
    const line = Buffer.from(`${this.cut ? '\n' : ''}${JSON.stringify(saved)}\n`);
    const n = writeSync(this.fd, line);
    if (n !== line.length) {
      // A short write (disk full) is not acknowledged. Its cut line goes, or the next line would
      // be glued to it and lost with it.
      try {
        ftruncateSync(this.fd, this.bytes);
        this.cut = false;
      } catch {
        this.bytes += n;
        this.cut = true;
      }
      throw new Error('cannot append to the pending journal (disk full?)');
    }
    this.bytes += n;
    this.cut = false;
    this.seq = seq;
    this.open++;
    this.byKey.set(c.entry.key, c.entry);
    return { journal: basename(this.path!), seq };
  }

  /** Whether the journal file `name` is still there (its writer has not closed it, nor a fold removed it). */
  exists(name: string): boolean {
    return existsSync(join(this.dir, name));
  }

  /** A save of this process not yet in the index. */
  get(key: string): Entry | undefined {
    return this.byKey.get(key);
  }

  /**
   * The save's commit is over: lookups go to the index again. One that failed keeps the journal
   * (never restarted nor removed by this process) for a later open to retry.
   */
  done(entry: Entry, committed: boolean): void {
    if (this.byKey.get(entry.key) === entry) this.byKey.delete(entry.key);
    this.open--;
    if (!committed) this.keep = true;
    if (this.open === 0 && !this.keep && this.bytes >= RESTART_BYTES && this.fd !== undefined) {
      try {
        ftruncateSync(this.fd, 0);
        this.bytes = 0;
      } catch {
        // Left as it is: its saves are committed, so folding it again changes nothing.
      }
    }
  }

  /** Every save appended is committed: the journal goes (Store.close). */
  close(): void {
    if (this.fd === undefined || this.open > 0) return;
    closeSync(this.fd);
    this.fd = undefined;
    if (this.path && !this.keep) remove(this.path);
  }

  /** Journals of processes that are gone, with the saves each holds (cut lines skipped). */
  orphans(): Array<{ path: string; journal: string; commits: Pending[] }> {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return []; // no pending/ yet: nothing was ever saved this way
    }
    const found: Array<{ path: string; journal: string; commits: Pending[] }> = [];
    for (const name of names) {
      const m = JOURNAL.exec(name);
      // A live writer commits its own (a reused pid only delays this until it exits).
      if (!m || pidAlive(Number(m[1]))) continue;
      const path = join(this.dir, name);
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        continue; // removed by another process folding it
      }
      const commits: Pending[] = [];
      for (const line of text.split('\n')) {
        const c = parse(line);
        if (c) commits.push(c);
      }
      found.push({ path, journal: name, commits });
    }
    return found;
  }
}

/** A journal line: a save, and the bytes of its output when they were not written yet (base64). */
export type Pending = Omit<Commit, 'data' | 'journaled'> & {
  data?: string;
  /** Its number in the journal; absent in journals written before lines were numbered (folded). */
  seq?: number;
};

/** A journal line as a save, or undefined for a cut or damaged one. */
function parse(line: string): Pending | undefined {
  if (line === '') return undefined;
  try {
    const c = JSON.parse(line) as Pending;
    if (!c || typeof c !== 'object' || !c.entry || !isHexDigest(c.entry.key)) return undefined;
    if (typeof c.label !== 'string' || !c.fingerprint || typeof c.fingerprint !== 'object') return undefined;
    if (c.data !== undefined && typeof c.data !== 'string') return undefined;
    if (c.seq !== undefined && !Number.isSafeInteger(c.seq)) return undefined;
    return c;
  } catch {
    return undefined;
  }
}

export function remove(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already removed by another process that folded it too.
  }
}

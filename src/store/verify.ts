import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from '../util/process.js';
import type { BlobProblem } from './blobs.js';
import { type Entry, entryBlobs } from './entry.js';
import { mayBeInIndex } from './index/small-blobs.js';
import type { Store } from './store.js';

export interface BrokenEntry {
  key: string;
  task: string;
  problem: string;
  removed: boolean;
}

export interface VerifyReport {
  entries: number;
  blobs: number;
  bytes: number;
  broken: BrokenEntry[];
  /** Leftovers of killed runs (temp files, lock files of dead processes) removed by --repair. */
  leftovers: number;
}

export interface VerifyOptions {
  repair: boolean;
  /** Extra checks on an entry (e.g. that its paths are safe to restore); returns the problem. */
  checkEntry?: (entry: Entry) => string | undefined;
  /** Temp files older than this are leftovers even if their pid is alive (pid reuse). */
  tmpMaxAgeMs?: number;
  now?: () => number;
}

const describe = (p: BlobProblem) => `blob ${p.hash.slice(0, 12)} ${p.kind}: ${p.detail}`;

/**
 * Checks every entry of the store: each blob it names exists and hashes to its name, and the entry
 * passes `checkEntry`. With `repair`, broken entries and corrupt blobs are removed, as are temp
 * files and lock files left behind by processes that no longer exist.
 */
export async function verifyStore(store: Store, o: VerifyOptions): Promise<VerifyReport> {
  const report: VerifyReport = { entries: 0, blobs: 0, bytes: 0, broken: [], leftovers: 0 };
  // A blob shared by many entries is hashed once.
  const checked = new Map<string, BlobProblem | undefined>();
  const entries = [...store.allEntries()];
  for (const entry of entries) {
    report.entries++;
    let problem: string | undefined;
    let corrupt: BlobProblem[] = [];
    try {
      problem = o.checkEntry?.(entry);
      const inIndex = mayBeInIndex(entry);
      for (const ref of problem ? [] : entryBlobs(entry)) {
        const seen = `${inIndex}:${ref.hash}`;
        let p = checked.get(seen);
        if (!checked.has(seen)) {
          p = await store.blobs.verify(entry.algorithm, ref, inIndex);
          checked.set(seen, p);
          if (!p) {
            report.blobs++;
            report.bytes += ref.size;
          }
        }
        if (p) {
          problem ??= describe(p);
          if (p.kind === 'corrupt') corrupt.push(p);
        }
      }
    } catch (e) {
      problem = `unreadable entry: ${(e as Error).message}`;
      corrupt = [];
    }
    if (!problem) continue;
    const task = entry.task || '(anonymous)';
    store.log('ERROR', 'verify', { task, hash: entry.key.slice(0, 12), error: problem });
    let removed = false;
    if (o.repair) {
      for (const p of corrupt) await store.blobs.remove(p.hash, p.inIndex);
      removed = await store.remove(entry.key);
    }
    report.broken.push({ key: entry.key, task, problem, removed });
  }
  if (o.repair) report.leftovers = removeLeftovers(store, o);
  return report;
}

/** tmp/<pid>-<ms>-<rand>.<tag> and locks/<key> files whose process is gone. */
function removeLeftovers(store: Store, o: VerifyOptions): number {
  const now = (o.now ?? Date.now)();
  const maxAge = o.tmpMaxAgeMs ?? 24 * 3600_000;
  let removed = 0;
  const sweep = (dir: string, dead: (name: string, path: string) => boolean) => {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      return; // no such dir: no leftovers in it
    }
    for (const name of names) {
      const path = join(dir, name);
      try {
        if (!dead(name, path)) continue;
        rmSync(path, { force: true });
        removed++;
      } catch {
        // Gone meanwhile, or not ours to delete: a leftover is only disk space, never served.
      }
    }
  };
  sweep(store.layout.tmp, (name, path) => {
    const pid = Number(/^(\d+)-/.exec(name)?.[1]);
    return !pidAlive(pid) || now - statSync(path).mtimeMs > maxAge;
  });
  sweep(store.layout.locks, (name, path) => {
    if (name.endsWith('.stale')) return true;
    try {
      const h = JSON.parse(readFileSync(path, 'utf8')) as { pid?: number; host?: string };
      return typeof h.pid === 'number' && h.host === hostname() && !pidAlive(h.pid);
    } catch {
      // Unreadable or half-written holder: judged by its age alone, as lock.ts does.
      return now - statSync(path).mtimeMs > maxAge;
    }
  });
  return removed;
}

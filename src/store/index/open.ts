import { renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { RootDatabase } from 'lmdb';
import { err, errorMessage, type Failure, failure, ok, type Result } from '../../util/result.js';
import type { AuditLog } from '../audit.js';
import type { BlobStore } from '../blobs.js';
import { bumpGeneration } from '../generation.js';
import type { HotIndex } from '../hot.js';
import { indexDamage } from '../index-check.js';
import { corruptIndex, corruptionText, isIndexCorruption } from '../index-errors.js';
import { type CacheLayout, makeCacheDirs } from '../layout.js';
import { tryLock } from '../lock.js';
import { ENV_OPTIONS, type IndexDbs, indexDbs } from './dbs.js';
import { restoreFromHot } from './entries.js';
import { openIndexEnv } from './env.js';
import { recount } from './refs.js';

/*
 * Opening the LMDB environment: the schema check, one-time migrations of older indexes, and the
 * repair of a corrupt index (moved aside and rebuilt from hot/).
 */

const require = createRequire(import.meta.url);

/**
 * The index's format, in the meta db. 2: small results are kept inside it (small-blobs.ts), which an
 * older TaskVault would take for missing blobs and drop; it refuses a newer index instead.
 */
export const INDEX_SCHEMA = 2;

/** Set in the meta db once the refs db has been built for this index. */
const REFS_FLAG = 'refs';
/** Set in the meta db once every entry has its copy in hot/ (indexes from before hot/ existed). */
const HOT_FLAG = 'hot';
/** locks/<this>: held while one process moves a corrupt index aside and rebuilds it. */
const REBUILD_LOCK = 'index.rebuild';

/** What the index is opened beside: the files of the store, which migrations and repair write. */
export interface StoreFiles {
  layout: CacheLayout;
  blobs: BlobStore;
  hot: HotIndex;
  audit: AuditLog;
  /** Why nothing is written (disk nearly full), or undefined. */
  noWrites: string | undefined;
}

/** A failure to open; `damage` says that lmdb reported the data damaged (repairable). */
type OpenFailure = Failure & { damage?: string };

export interface RepairOptions {
  /** Move a corrupt index aside and rebuild it from hot/ (default); false: fail, saying so. */
  repair?: boolean;
  /** Where the one line about a rebuilt index goes. */
  warn: (message: string) => void;
}

/** Opens the index of `files.layout`, repairing a corrupt one unless told not to. */
export function openIndex(files: StoreFiles, o: RepairOptions): Result<IndexDbs> {
  const { layout } = files;
  const seen = indexFileId(layout);
  let damage = indexDamage(layout.index);
  // Acted on only if lmdb cannot read it either (a sound index is never moved aside on the JS
  // check alone); asking costs a child process, and only when the check found something.
  if (damage !== undefined && lmdbReads(layout.index)) damage = undefined;
  if (damage === undefined) {
    const opened = openEnv(files);
    if (opened.ok || opened.error.damage === undefined) return opened;
    damage = opened.error.damage;
  }
  if (o.repair === false) return err(corruptIndex(layout.index, damage));
  return rebuildIndex(files, damage, seen, o.warn);
}

/** Opens the LMDB environment, checks its schema and runs the migrations it still needs. */
function openEnv(files: StoreFiles): Result<IndexDbs, OpenFailure> {
  const { layout } = files;
  const cacheDir = layout.root;
  let env: RootDatabase | undefined;
  try {
    // Through links to files we hold open: lmdb-js crashes on an open that fails half-way (env.ts).
    env = openIndexEnv(layout.index, ENV_OPTIONS);
    const meta = env.openDB<number, string>({ name: 'meta' });
    const schema = meta.get('schema');
    if (schema === undefined) {
      meta.putSync('schema', INDEX_SCHEMA);
      // A new index (a first use, the old one deleted or moved aside): every entry may have changed.
      bumpGeneration(layout.generation);
    } else if (schema > INDEX_SCHEMA) {
      env.close();
      return err(
        failure(
          'cache',
          `the cache at ${cacheDir} was written by a newer TaskVault (index schema ${schema}, this one reads ${INDEX_SCHEMA})`,
          'upgrade taskvault or use another --cache-dir',
        ),
      );
    }
    const dbs = indexDbs(env, meta, layout.generation);
    migrate(dbs, files);
    return ok(dbs);
  } catch (e) {
    if (isIndexCorruption(e)) {
      try {
        env?.close();
      } catch {
        // it is being moved aside anyway
      }
      const damage = corruptionText(e);
      return err({ ...failure('cache', `the cache index at ${layout.index} is corrupt: ${damage}`), damage });
    }
    return err(failure('cache', `cannot open the cache at ${cacheDir}: ${errorMessage(e)}`));
  }
}

function migrate(dbs: IndexDbs, files: StoreFiles): void {
  const { meta } = dbs;
  // Schema 1 reads as it is (its results are files); marked 2 before a small result goes in.
  if ((meta.get('schema') ?? INDEX_SCHEMA) < INDEX_SCHEMA && files.noWrites === undefined) {
    try {
      meta.putSync('schema', INDEX_SCHEMA);
    } catch (e) {
      if (isIndexCorruption(e)) throw e;
      // Not written (a read-only cache): nothing is saved into it either.
    }
  }
  // An index written before blob reference counts existed gets them once, from its entries:
  // removal must never take a shared blob's missing count for "last reference".
  if (meta.get(REFS_FLAG) === undefined) {
    dbs.env.transactionSync(() => {
      if (meta.get(REFS_FLAG) !== undefined) return;
      recount(dbs, files.blobs);
      meta.put(REFS_FLAG, 1);
    });
  }
  // A run without a hot copy of its key runs the command before reading the index (runner/lookup.ts):
  // entries committed before hot/ existed get their copies once, or they would all run again.
  if (meta.get(HOT_FLAG) === undefined && files.noWrites === undefined) {
    for (const { value } of dbs.entries.getRange()) if (!value.result) files.hot.putEntry(value);
    meta.putSync(HOT_FLAG, 1);
  }
  // Day buckets are derived from the hours: built once for an index from before they existed, and
  // again if an older TaskVault booked hours without them since (timeseries.ts, daysInStep).
  if (files.noWrites === undefined && !dbs.series.daysInStep()) {
    try {
      dbs.env.transactionSync(() => {
        if (!dbs.series.daysInStep()) dbs.series.rebuildDays();
      });
    } catch (e) {
      if (isIndexCorruption(e)) throw e;
      // Not written (read-only cache): readers sum the hours while the days are out of step.
    }
  }
}

/**
 * A corrupt index is moved aside (kept for a bug report, never deleted) and a fresh one built
 * from hot/, which holds a copy of every committed entry. One process does it, under a lock;
 * `seen` (data.mdb's inode when we judged it, indexFileId) tells whether another one already has.
 */
export function rebuildIndex(
  files: StoreFiles,
  damage: string,
  seen: string | undefined,
  warn: (message: string) => void,
): Result<IndexDbs> {
  const { layout } = files;
  const corrupt = (why: string) =>
    err(failure('cache', `the cache index at ${layout.index} is corrupt (${damage}): ${why}`));
  // Taken without waiting: a rebuild takes milliseconds, and whoever finds it held runs uncached once.
  const release = tryLock(layout.locks, REBUILD_LOCK);
  if (!release) return corrupt('another process is rebuilding it');
  try {
    if (indexFileId(layout) !== seen) {
      // Rebuilt by another process since we looked: use theirs (once; no loop).
      if (indexDamage(layout.index) !== undefined) return corrupt('it was rebuilt and is corrupt again');
      const opened = openEnv(files);
      return !opened.ok && opened.error.damage !== undefined ? corrupt(opened.error.damage) : opened;
    }
    const aside = `${layout.index}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
    try {
      renameSync(layout.index, aside);
      makeCacheDirs(layout);
    } catch (e) {
      return corrupt(`cannot move it aside: ${errorMessage(e)}`);
    }
    const opened = openEnv(files);
    if (!opened.ok) return opened.error.damage === undefined ? opened : corrupt(opened.error.damage);
    let rebuilt: string;
    try {
      const n = restoreFromHot(opened.value, files.hot, files.blobs);
      rebuilt = `rebuilt ${n} entr${n === 1 ? 'y' : 'ies'} from hot/`;
    } catch (e) {
      // E.g. a full disk: the fresh index is empty but sound; hot/ still serves hits.
      rebuilt = `rebuilding it from hot/ failed: ${errorMessage(e)}`;
    }
    files.audit.write('ERROR', 'index', { error: `corrupt index moved to ${aside}: ${damage}`, rebuilt });
    warn(`the cache index was corrupt (${damage}): moved to ${aside}; ${rebuilt}`);
    return opened;
  } finally {
    release();
  }
}

/** data.mdb's identity (device and inode), to tell a rebuilt index from the one judged corrupt. */
export function indexFileId(layout: CacheLayout): string | undefined {
  try {
    const s = statSync(join(layout.index, 'data.mdb'), { throwIfNoEntry: false });
    return s && `${s.dev}:${s.ino}`;
  } catch {
    return undefined; // unreadable (EACCES): opening will report it
  }
}

/**
 * Whether lmdb, in a child process (a crash there costs nothing here), opens the environment in
 * `dir` and reads the first record of every database. Asked before a JS verdict of damage is acted
 * on: indexDamage reads the newest meta page, while lmdb-js may legitimately roll back to an
 * older, synced one (its previous-snapshot mode after a reboot), which the check cannot judge.
 */
function lmdbReads(dir: string): boolean {
  const probe = `
    const { open } = require(process.argv[1]);
    const env = open({ path: process.argv[2], ...JSON.parse(process.argv[3]) });
    for (const key of env.getKeys({ limit: 64 })) {
      if (typeof key !== 'string') continue;
      for (const _ of env.openDB({ name: key }).getRange({ limit: 1 })) break;
    }
    env.close();
    process.exit(0);`;
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  // The installed lmdb, which the bundled copy's native addon comes from.
  const r = spawnSync(
    process.execPath,
    ['-e', probe, require.resolve('lmdb'), dir, JSON.stringify(ENV_OPTIONS)],
    {
      stdio: 'ignore',
      timeout: 15_000,
      // ELECTRON_RUN_AS_NODE: inside an Electron app (the SDK) execPath is Electron, not Node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    },
  );
  return r.status === 0;
}

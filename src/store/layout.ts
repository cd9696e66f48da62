import { join } from 'node:path';
import { mkdirsSync } from '../util/mkdirs.js';

/** Where each thing lives under a cache directory. The store owns every byte below it. */
export function cacheLayout(cacheDir: string) {
  return {
    root: cacheDir,
    index: join(cacheDir, 'index'),
    blobs: join(cacheDir, 'blobs'),
    tmp: join(cacheDir, 'tmp'),
    locks: join(cacheDir, 'locks'),
    audit: join(cacheDir, 'audit.log'),
    // store/hot.ts: what a hit reads without opening the index.
    hot: join(cacheDir, 'hot'),
    manifests: join(cacheDir, 'manifests'),
    hitsJournal: join(cacheDir, 'hits.journal'),
    // store/generation.ts: changes whenever an entry does, for clients that keep results in memory.
    generation: join(cacheDir, 'generation'),
    // store/pending.ts: results acknowledged before their index commit (durability 'fast').
    pending: join(cacheDir, 'pending'),
    // store/team/: events waiting to be sent to the team index, and the flusher's state.
    team: join(cacheDir, 'team'),
    // src/daemon/: the resident helper's socket (or a link to it), pid file, cookies and log.
    daemon: join(cacheDir, 'daemon'),
  };
}

export type CacheLayout = ReturnType<typeof cacheLayout>;

/** Makes the directories every writer needs (throws when the cache dir cannot be written). */
export function makeCacheDirs(layout: CacheLayout): void {
  for (const d of [layout.index, layout.blobs, layout.tmp, layout.locks]) mkdirsSync(d);
}

/** blobs/ab/cdef…: two-character fan-out keeps directories small. */
export function blobPath(blobsDir: string, hash: string): string {
  return join(blobsDir, hash.slice(0, 2), hash.slice(2));
}

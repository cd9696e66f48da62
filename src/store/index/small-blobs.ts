import type { BlobStore } from '../blobs.js';
import type { BlobRef, Entry } from '../entry.js';
import type { IndexDbs } from './dbs.js';
import { background } from './writes.js';

/*
 * Small results kept inside the index. A result of `cache save` or the SDK of up to
 * SMALL_RESULT_BYTES has its bytes in the smallBlobs db, written in the same write transaction as
 * its entry and deleted in the one that drops its last reference (refs.ts), instead of as a file
 * under blobs/. Saving one then creates no file, and evicting one deletes none: on a filesystem
 * where each unlink waits for the disk (ext4 with online discard), deleting 50,000 small files is
 * the whole of a gc. Reads check the bytes against their name as for files (BlobStore.readVerified).
 *
 * Only results: a run's outputs and logs are read on the hit path without opening the index (hot/),
 * so they stay files. A blob may exist in both places (a run's output and a result with the same
 * bytes); it goes from both when its last reference goes.
 */

/** Results up to this size live in the index. Larger ones are files, as they are streamed. */
export const SMALL_RESULT_BYTES = 16 * 1024;

/** Whether `entry`'s blobs may be in the index: a result's may, a run's are always files. */
export const mayBeInIndex = (entry: Pick<Entry, 'result'>): boolean => entry.result !== undefined;

/** Whether `entry`'s output of `size` bytes is kept in the index. */
export const keptInIndex = (entry: Entry, size: number): boolean =>
  mayBeInIndex(entry) && size <= SMALL_RESULT_BYTES;

/**
 * Inside a write transaction: stores a small result's bytes (already checked against `hash`).
 * Written even when there are bytes under that hash already: if those were damaged, this save
 * repairs them instead of pointing at them.
 */
export function putSmallBlob(dbs: IndexDbs, hash: string, data: Uint8Array): void {
  background(dbs.smallBlobs.put(hash, Buffer.from(data)));
}

/**
 * Whether the blob `ref` of `entry` is in place: a result's in the index or as a file (one saved
 * before results were kept in the index), anything else as a file.
 */
export function blobInPlace(dbs: IndexDbs, blobs: BlobStore, entry: Entry, ref: BlobRef): boolean {
  return (mayBeInIndex(entry) && dbs.smallBlobs.doesExist(ref.hash)) || blobs.has(ref.hash);
}

/**
 * Inside a write transaction: deletes the bytes of `ref` kept in the index; whether there were
 * any. Only a blob of up to SMALL_RESULT_BYTES can be there, so a larger one costs no look.
 */
export function dropSmallBlob(dbs: IndexDbs, ref: Pick<BlobRef, 'hash' | 'size'>): boolean {
  if (ref.size > SMALL_RESULT_BYTES || !dbs.smallBlobs.doesExist(ref.hash)) return false;
  removeSmallBlob(dbs, ref.hash);
  return true;
}

/** Inside a write transaction: deletes the bytes kept in the index under `hash`, if any. */
export function removeSmallBlob(dbs: IndexDbs, hash: string): void {
  // remove(), not removeSync(): inside a transaction the latter opens a child one, which lmdb-js
  // then fails to commit (MDB_BAD_TXN).
  background(dbs.smallBlobs.remove(hash));
}

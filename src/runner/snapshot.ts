import { lstat, readlink } from 'node:fs/promises';
import type { HashAlgorithm } from '../config/types.js';
import type { BlobStore } from '../store/blobs.js';
import type { OutputRecord } from '../store/entry.js';
import { matchOutputs } from './outputs.js';

export interface Snapshot {
  outputs: OutputRecord[];
  bytes: number;
}

/** Copies every output into the blob store, keeping modes and symlinks as symlinks. */
export async function snapshotOutputs(
  blobs: BlobStore,
  algorithm: HashAlgorithm,
  root: string,
  cwd: string,
  globs: string[],
  concurrency = 8,
): Promise<Snapshot> {
  const matches = await matchOutputs(root, cwd, globs);
  const outputs = new Array<OutputRecord>(matches.length);
  let bytes = 0;
  let next = 0;
  const worker = async () => {
    while (next < matches.length) {
      const i = next++;
      const m = matches[i]!;
      if (m.type === 'symlink') {
        outputs[i] = { path: m.path, type: 'symlink', target: await readlink(m.abs) };
        continue;
      }
      const s = await lstat(m.abs);
      if (m.type === 'dir') {
        outputs[i] = { path: m.path, type: 'dir', mode: s.mode & 0o7777 };
        continue;
      }
      const ref = await blobs.putFile(algorithm, m.abs, s.size);
      bytes += ref.size;
      outputs[i] = { path: m.path, type: 'file', mode: s.mode & 0o7777, size: ref.size, hash: ref.hash };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { outputs, bytes };
}

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';

/*
 * Small results are kept inside the index (src/store/index/small-blobs.ts), not as files under
 * blobs/: tests read and damage them through lmdb, as they do blob files through the filesystem.
 */

function openIndex(cacheDir: string) {
  const env = open({ path: join(cacheDir, 'index'), maxDbs: 24, compression: false });
  return { env, db: env.openDB<Buffer, string>({ name: 'smallBlobs', encoding: 'binary' }) };
}

/** The small results kept in the index: hash → bytes. */
export async function smallResults(cacheDir: string): Promise<Map<string, Buffer>> {
  const { env, db } = openIndex(cacheDir);
  try {
    return new Map([...db.getRange()].map(({ key, value }) => [key, Buffer.from(value)]));
  } finally {
    await env.close();
  }
}

/** Replaces the bytes of every small result kept in the index (what a flipped disk block would do). */
export async function overwriteSmallResults(cacheDir: string, bytes: Buffer): Promise<number> {
  const { env, db } = openIndex(cacheDir);
  try {
    return await env.transaction(() => {
      const keys = [...db.getKeys()];
      for (const key of keys) db.put(key, bytes);
      return keys.length;
    });
  } finally {
    await env.close();
  }
}

/** The bytes of every distinct blob in the cache: files under blobs/ and small results in the index. */
export async function storedBlobBytes(cacheDir: string): Promise<number> {
  const blobs = join(cacheDir, 'blobs');
  const files = new Map<string, number>();
  if (existsSync(blobs))
    for (const fan of readdirSync(blobs))
      for (const name of readdirSync(join(blobs, fan)))
        files.set(fan + name, statSync(join(blobs, fan, name)).size);
  for (const [hash, value] of await smallResults(cacheDir)) files.set(hash, value.byteLength);
  return [...files.values()].reduce((a, b) => a + b, 0);
}

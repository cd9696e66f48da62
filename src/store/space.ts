import { statfsSync } from 'node:fs';

/**
 * Below this much free space on the cache's filesystem the store stops writing (no new entries, no
 * access times or counters): a full disk makes LMDB fail commits in ways that are noisy and late,
 * and a cache must never be why a disk fills up. Hits are still served.
 */
export const LOW_SPACE_BYTES = 16 * 1024 * 1024;

/** Why nothing should be written under `dir` (too little space), or undefined. */
export function lowSpace(dir: string): string | undefined {
  try {
    const s = statfsSync(dir);
    const free = s.bavail * s.bsize;
    if (free < LOW_SPACE_BYTES)
      return `the cache disk is full (${Math.round(free / 1024)} KB free at ${dir}); not writing to the cache`;
  } catch {
    // statfs unsupported (or no cache dir yet): rely on write errors
  }
  return undefined;
}

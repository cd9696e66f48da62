import { lstat } from 'node:fs/promises';
import { formatBytes } from '../util/format.js';
import { matchOutputs } from './outputs.js';

/**
 * The bytes the output globs match now, measured before anything is copied into the cache, so a
 * result over its policy's per-entry limit is refused without writing gigabytes of blobs first.
 */
export async function outputBytes(root: string, cwd: string, globs: string[]): Promise<number> {
  const files = (await matchOutputs(root, cwd, globs)).filter((m) => m.type === 'file');
  let total = 0;
  for (let i = 0; i < files.length; i += 64) {
    const sizes = await Promise.all(
      files.slice(i, i + 64).map((f) =>
        lstat(f.abs).then(
          (s) => s.size,
          () => 0,
        ),
      ),
    );
    for (const s of sizes) total += s;
  }
  return total;
}

export function oversizeReason(bytes: number, limit: number): string {
  return `result is ${formatBytes(bytes)}, over the ${formatBytes(limit)} per-entry limit of its policy`;
}

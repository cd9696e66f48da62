import type { TaskSpec } from '../config/resolve.js';
import { excludedFromInputs, type Fingerprinted } from './fingerprint.js';
import { hashFiles } from './hash-pool.js';
import { expandInputs, type InputFile } from './inputs.js';
import { RACY_WINDOW_MS } from './manifest.js';

const sameStat = (a: InputFile, b: InputFile): boolean =>
  a.dev === b.dev &&
  a.ino === b.ino &&
  a.size === b.size &&
  a.mode === b.mode &&
  a.mtimeMs === b.mtimeMs &&
  a.ctimeMs === b.ctimeMs;

/**
 * Whether the inputs differ from what `first` fingerprinted (after the command ran, so that a result
 * is never stored under a key its inputs no longer have). Cheaper than fingerprinting again: the
 * same file list (from the first pass's unchanged directories, or the same glob), then each file's
 * stat against the one taken in the first pass, in memory. A file is
 * read again only if its stat moved, or if it was modified so close to when the first pass hashed
 * it that an edit within the same timestamp tick would not show in its stat ("racy git").
 */
export async function inputsChangedSince(
  spec: TaskSpec,
  first: Pick<Fingerprinted, 'fingerprint' | 'files' | 'hashes' | 'hashedAtMs' | 'listed'>,
  cacheDir: string,
): Promise<boolean> {
  const algorithm = first.fingerprint.algorithm;
  // The first pass's directories, if unchanged, vouch for the same file list: no walk again.
  const now = await expandInputs(
    { root: spec.root, cwd: spec.cwd, globs: spec.inputs, exclude: excludedFromInputs(spec, cacheDir) },
    first.listed,
  );
  if (!now.ok || now.value.files.length !== first.files.length) return true;
  const racyAfter = first.hashedAtMs - RACY_WINDOW_MS;
  const toRead: number[] = [];
  for (let i = 0; i < now.value.files.length; i++) {
    const a = first.files[i]!;
    const b = now.value.files[i]!;
    if (a.path !== b.path) return true;
    if (!sameStat(a, b) || b.mtimeMs >= racyAfter || b.ctimeMs >= racyAfter) {
      if (((a.mode & 0o111) !== 0) !== ((b.mode & 0o111) !== 0)) return true;
      toRead.push(i);
    }
  }
  const files = now.value.files;
  const hashes = await hashFiles(
    algorithm,
    toRead.map((i) => files[i]!),
  ).catch(() => undefined); // unreadable now: changed
  return hashes === undefined || toRead.some((i, k) => hashes[k] !== first.hashes[i]);
}

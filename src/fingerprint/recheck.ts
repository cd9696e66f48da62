import type { TaskSpec } from '../config/resolve.js';
import { type FileStat, isFileStat, statFile } from '../util/stat.js';
import { note } from '../util/trace.js';
import { excludedFromInputs, type Fingerprinted } from './fingerprint.js';
import { type HashJob, hashFiles } from './hash-pool.js';
import type { InputFile } from './input-file.js';
import { expandInputs } from './inputs.js';
import { listingHolds, RACY_WINDOW_MS, statsByRelativePath } from './manifest.js';

type FirstPass = Pick<Fingerprinted, 'fingerprint' | 'files' | 'hashes' | 'hashedAtMs' | 'listed'>;

const sameStat = (a: InputFile, b: FileStat): boolean =>
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
  first: FirstPass,
  cacheDir: string,
): Promise<boolean> {
  const racyAfter = first.hashedAtMs - RACY_WINDOW_MS;
  const inPlace = restatInPlace(spec, first, racyAfter);
  note(inPlace ? 'recheck in place' : 'recheck by listing again');
  const toRead = inPlace ?? (await restatExpanded(spec, first, cacheDir, racyAfter));
  if (toRead === 'changed') return true;
  const hashes = await hashFiles(
    first.fingerprint.algorithm,
    toRead.map((r) => r.job),
  ).catch(() => undefined); // unreadable now: changed
  return hashes === undefined || toRead.some((r, k) => hashes[k] !== first.hashes[r.i]);
}

/** The files whose stat does not vouch for their content (to read again), or 'changed'. */
type Restat = Array<{ i: number; job: HashJob }> | 'changed';

/** One file's stat now against the first pass's: fine, to be read again, or a change already. */
function compare(a: InputFile, b: FileStat, racyAfter: number): 'same' | 'read' | 'changed' {
  if (sameStat(a, b) && b.mtimeMs < racyAfter && b.ctimeMs < racyAfter) return 'same';
  return ((a.mode & 0o111) !== 0) !== ((b.mode & 0o111) !== 0) ? 'changed' : 'read';
}

/**
 * The common case, with no walk and no object per file: the first pass's directories, unchanged,
 * vouch for the same file list, so each file is statted and compared in place. Undefined when a
 * directory changed (files may have come or gone).
 */
function restatInPlace(spec: TaskSpec, first: FirstPass, racyAfter: number): Restat | undefined {
  const { listing, recordedMs } = first.listed;
  if (!listing || !listingHolds(listing, spec.cwd, recordedMs)) return undefined;
  const byRelative = statsByRelativePath(spec.root);
  const toRead: Array<{ i: number; job: HashJob }> = [];
  const files = first.files;
  for (let i = 0; i < files.length; i++) {
    const a = files[i]!;
    let b: FileStat | undefined;
    try {
      b = statFile(byRelative(a.path) ? a.path : a.abs);
    } catch {
      return undefined; // ENOTDIR, EACCES, ...: the general path tells which
    }
    if (!b || !isFileStat(b)) return 'changed';
    const verdict = compare(a, b, racyAfter);
    if (verdict === 'changed') return verdict;
    if (verdict === 'read') toRead.push({ i, job: { abs: a.abs, size: b.size } });
  }
  return toRead;
}

/** The general case: the globs expanded again (or the directories walked again), then compared. */
async function restatExpanded(
  spec: TaskSpec,
  first: FirstPass,
  cacheDir: string,
  racyAfter: number,
): Promise<Restat> {
  const now = await expandInputs({
    root: spec.root,
    cwd: spec.cwd,
    globs: spec.inputs,
    exclude: excludedFromInputs(spec, cacheDir),
  });
  if (!now.ok || now.value.files.length !== first.files.length) return 'changed';
  const toRead: Array<{ i: number; job: HashJob }> = [];
  for (let i = 0; i < now.value.files.length; i++) {
    const a = first.files[i]!;
    const b = now.value.files[i]!;
    if (a.path !== b.path) return 'changed';
    const verdict = compare(a, b, racyAfter);
    if (verdict === 'changed') return verdict;
    if (verdict === 'read') toRead.push({ i, job: b });
  }
  return toRead;
}

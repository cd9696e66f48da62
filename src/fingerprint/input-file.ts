/**
 * One input file as listed and statted: what a manifest records and compares. Its own module so
 * that the listing (inputs.ts, walk.ts) and the manifest can both use it without importing each other.
 */
export interface InputFile {
  /** Path relative to the project root, POSIX separators. */
  path: string;
  abs: string;
  size: number;
  mode: number;
  dev: number;
  ino: number;
  /** Milliseconds, with the sub-millisecond part (see RACY_WINDOW_MS for why that is enough). */
  mtimeMs: number;
  ctimeMs: number;
}

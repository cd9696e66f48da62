import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { tempSuffix } from '../util/temp-name.js';

/*
 * <cache>/generation: 16 bytes (two tempSuffix values: 64 random bits; python/taskvault/_memo.py
 * GENERATION_BYTES reads them) rewritten in place after every committed change to which entries
 * exist or what they hold (a commit, a removal, a new index, a rebuild from hot/). A client that keeps results
 * in its own memory (python/taskvault) serves one again only while these bytes are the ones it
 * read before asking the index for it: any change anywhere in the index sends it back to ask.
 * Hit bookkeeping (access times, counts) changes no entry and leaves it alone.
 *
 * Rewritten, never replaced, so a reader holding it open sees every change; random rather than
 * counted, so two writers need no read-modify-write between them (whatever they leave differs
 * from what a reader saw before either). Written after the commit: a reader can at worst serve
 * what it read a moment before a change, as if its lookup had come first.
 */

/**
 * Writes 16 new random hex bytes at the start of `path`. Never throws: a bump that
 * cannot be written is covered by the bound on how long a reader trusts its memory unasked.
 */
export function bumpGeneration(path: string): void {
  let fd: number;
  try {
    // Without O_TRUNC: a reader never finds it empty between two writers.
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o666); // as the cache's other files: umask decides
  } catch {
    return;
  }
  try {
    writeSync(fd, tempSuffix() + tempSuffix(), 0);
  } catch {
    // Disk full: readers then find the file short, which differs from anything they saw.
  } finally {
    closeSync(fd);
  }
}

import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { VERSION } from '../version.js';
import type { Provenance } from './entry.js';

/** Reads HEAD's commit straight from .git (no git process on the run path). */
export function gitCommit(root: string): string | undefined {
  try {
    const gitDir = join(root, '.git');
    const head = readFileSync(join(gitDir, 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return /^[0-9a-f]{40,64}$/.test(head) ? head : undefined;
    const ref = head.slice(5);
    try {
      return readFileSync(join(gitDir, ref), 'utf8').trim();
    } catch {
      const packed = readFileSync(join(gitDir, 'packed-refs'), 'utf8');
      return packed
        .split('\n')
        .find((l) => l.endsWith(` ${ref}`))
        ?.split(' ')[0];
    }
  } catch {
    // Not a git checkout, or refs we cannot read: provenance then just has no commit.
    return undefined;
  }
}

/** Host and user do not change while a process runs; reading them costs a passwd lookup. */
let who: { host: string; user: string } | undefined;
/** HEAD's commit per root, re-read after a second: a service saving thousands of results reads it once. */
const commits = new Map<string, { at: number; commit: string | undefined }>();
const COMMIT_FRESH_MS = 1000;

export function provenance(root: string): Provenance {
  if (!who) {
    let user = process.env.USER ?? '';
    try {
      user = userInfo().username;
    } catch {
      // no passwd entry (containers): keep $USER
    }
    who = { host: hostname(), user };
  }
  const p: Provenance = { ...who, version: VERSION, origin: 'local' };
  const now = Date.now();
  let known = commits.get(root);
  if (!known || now - known.at > COMMIT_FRESH_MS || now < known.at) {
    known = { at: now, commit: gitCommit(root) };
    commits.set(root, known);
  }
  if (known.commit) p.gitCommit = known.commit;
  return p;
}

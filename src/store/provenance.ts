import { hostname, userInfo } from 'node:os';
import { gitHead } from '../util/git-head.js';
import { VERSION } from '../version.js';
import type { Provenance } from './entry.js';

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
    known = { at: now, commit: gitHead(root) };
    commits.set(root, known);
  }
  if (known.commit) p.gitCommit = known.commit;
  return p;
}

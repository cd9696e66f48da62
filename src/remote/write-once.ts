import { done, type RemoteBackend, type RemoteResult } from './backend.js';

/**
 * A backend whose entry upload is itself conditional (If-None-Match: * on Azure, 409 on Nx): it
 * never replaces an entry and answers ok when one was already there.
 */
export interface KeepsFirst {
  readonly keepsFirst: true;
}

const keepsFirst = (b: RemoteBackend): boolean => (b as Partial<KeepsFirst>).keepsFirst === true;

/** A backend that can tell whether an entry exists without fetching it (and without it counting as a lookup). */
export interface HasEntry {
  hasEntry(key: string): Promise<RemoteResult<boolean>>;
}

/** Whether the remote has an entry, by its cheapest means (HEAD where the backend has one). */
export function entryExists(b: RemoteBackend, key: string): Promise<RemoteResult<boolean>> {
  const has = (b as Partial<HasEntry>).hasEntry;
  return has ? has.call(b, key) : b.getEntry(key).then((r) => (r.ok ? done(r.value !== undefined) : r));
}

/**
 * Write-once entries: an upload never replaces an entry that is already on the remote. Otherwise
 * a client with another signature key (or none, or a pull-request build) re-runs a task, which is
 * right, and then overwrites the trusted entry, so every correctly keyed reader after it misses.
 * Servers without a conditional PUT (nginx WebDAV, bazel-remote, the Turborepo API, s3rver) get a
 * read first: two writers racing in the same instant can still both write, the first of them loses.
 * An entry that stays is not refreshed either: `taskvault gc --remote --max-age` ages entries out.
 * A push asks entryExists before it uploads any blob (sync.ts), so that a writer whose entry would
 * not be stored does not upload its blobs for nothing; the check here closes most of the window
 * between that question and the entry's upload.
 */
export function writeOnce(b: RemoteBackend): RemoteBackend {
  if (keepsFirst(b)) return b;
  const once: RemoteBackend & HasEntry = {
    label: b.label,
    getEntry: (key) => b.getEntry(key),
    hasEntry: (key) => entryExists(b, key),
    async putEntry(key: string, body: Buffer): Promise<RemoteResult<void>> {
      const there = await entryExists(b, key);
      if (!there.ok) return there;
      if (there.value) return done(undefined);
      return b.putEntry(key, body);
    },
    hasBlob: (key) => b.hasBlob(key),
    getBlob: (key, consume) => b.getBlob(key, consume),
    putBlob: (key, file, size) => b.putBlob(key, file, size),
  };
  return once;
}

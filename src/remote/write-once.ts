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

/**
 * Write-once entries: an upload never replaces an entry that is already on the remote. Otherwise
 * a client with another signature key (or none, or a pull-request build) re-runs a task, which is
 * right, and then overwrites the trusted entry, so every correctly keyed reader after it misses.
 * Servers without a conditional PUT (nginx WebDAV, bazel-remote, the Turborepo API, s3rver) get a
 * read first: two writers racing in the same instant can still both write, the first of them loses.
 * An entry that stays is not refreshed either: `taskvault gc --remote --max-age` ages entries out.
 */
export function writeOnce(b: RemoteBackend): RemoteBackend {
  if (keepsFirst(b)) return b;
  return {
    label: b.label,
    getEntry: (key) => b.getEntry(key),
    async putEntry(key: string, body: Buffer): Promise<RemoteResult<void>> {
      const has = (b as Partial<HasEntry>).hasEntry;
      const there = has
        ? await has.call(b, key)
        : await b.getEntry(key).then((r) => (r.ok ? done(r.value !== undefined) : r));
      if (!there.ok) return there;
      if (there.value) return done(undefined);
      return b.putEntry(key, body);
    },
    hasBlob: (key) => b.hasBlob(key),
    getBlob: (key, consume) => b.getBlob(key, consume),
    putBlob: (key, file, size) => b.putBlob(key, file, size),
  };
}

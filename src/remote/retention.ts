import { problem, type RemoteBackend, type RemoteResult } from './backend.js';
import type { ListedObject, RemoteListing } from './listing.js';
import { openBackend } from './open-backend.js';
import type { RemoteSettings } from './settings.js';

/**
 * Retention for a team cache that only grows: `taskvault gc --remote`, run as a cron or CI job.
 * Entries go first (older than maxAge, then the oldest until the remote fits in maxBytes, and any
 * whose blobs are gone: with write-once entries a broken one would block its key for good), then
 * the blobs no remaining entry references. A blob an entry still names is never deleted; a blob
 * younger than the grace period is not either (an upload whose entry is not written yet).
 */
export interface RetentionOptions {
  now: number;
  maxAgeMs?: number;
  maxBytes?: number;
  graceMs: number;
  dryRun: boolean;
  /**
   * When each entry key was last used (ms), as far as something wider than the storage knows (the
   * team index: S3 and WebDAV keep no access time). Keys it leaves out are aged by their mtime.
   */
  lastUsed?: (keys: string[]) => Promise<Map<string, number>>;
}

export interface Tally {
  count: number;
  bytes: number;
}

export interface RetentionReport {
  remote: string;
  dryRun: boolean;
  entries: { aged: Tally; size: Tally; broken: Tally };
  blobs: Tally;
  /** What stays on the remote afterwards. */
  kept: { entries: number; blobs: number; bytes: number };
  /** How many entries were aged by their last use (lastUsed) and how many by their mtime. */
  agedBy: { lastUse: number; mtime: number };
}

/** Opens what `gc --remote` needs: the backend (to read entries) and a listing of the remote. */
export async function openRetention(
  s: RemoteSettings,
  env: NodeJS.ProcessEnv,
): Promise<RemoteResult<{ backend: RemoteBackend; listing: RemoteListing }>> {
  const backend = await openBackend(s, env);
  if (!backend.ok) return backend;
  const listing = await openListing(s, env);
  if (!listing.ok) return listing;
  return { ok: true, value: { backend: backend.value, listing: listing.value } };
}

async function openListing(s: RemoteSettings, env: NodeJS.ProcessEnv): Promise<RemoteResult<RemoteListing>> {
  const cannot = (what: string) =>
    problem({
      message: `${what} cannot list its content, so taskvault cannot age it out: use the server's own retention (see docs/remote-servers.md)`,
      retryable: false,
    });
  if (/^(turbo|nx)\+/i.test(s.url) || (s.protocol && s.protocol !== 'bazel'))
    return cannot(`the ${/^nx/i.test(s.url) || s.protocol === 'nx' ? 'Nx' : 'Turborepo'} cache API`);
  const url = new URL(s.url);
  if (url.protocol === 's3:') return (await import('./s3-listing.js')).openS3Listing(url, s, env);
  if (url.protocol === 'azure:') return (await import('./azure.js')).openAzureBackend(url, s, env);
  const { WebDavListing } = await import('./webdav-listing.js');
  return { ok: true, value: new WebDavListing(url, s) };
}

/** The remote keys of the blobs one entry document names (loosely read: only `blobs[*].key`). */
function blobKeysOf(doc: Buffer): string[] | undefined {
  try {
    const blobs = (JSON.parse(doc.toString('utf8')) as { blobs?: unknown }).blobs;
    if (typeof blobs !== 'object' || blobs === null) return undefined;
    return Object.values(blobs as Record<string, { key?: unknown }>)
      .map((w) => w?.key)
      .filter((k): k is string => typeof k === 'string');
  } catch {
    return undefined; // not one of our documents: it names no blob
  }
}

const tally = (items: ListedObject[]): Tally => ({
  count: items.length,
  bytes: items.reduce((n, o) => n + o.size, 0),
});

export async function collectRemoteGarbage(
  backend: RemoteBackend,
  listing: RemoteListing,
  o: RetentionOptions,
): Promise<RemoteResult<RetentionReport>> {
  // Entries before blobs: an entry is written after its blobs, so every entry listed here has its
  // blobs in the blob listing that follows.
  const entriesListed = await listing.list('ac');
  if (!entriesListed.ok) return entriesListed;
  const blobsListed = await listing.list('cas');
  if (!blobsListed.ok) return blobsListed;
  const blobSize = new Map(blobsListed.value.map((b) => [b.key, b]));

  // An entry's age runs from its last use when that is known and later than its upload, so the
  // order below (oldest first) is least recently used first.
  const used = o.lastUsed
    ? await o.lastUsed(entriesListed.value.map((e) => e.key))
    : new Map<string, number>();
  let byLastUse = 0;
  const listed = entriesListed.value.map((e) => {
    const u = used.get(e.key);
    if (u === undefined) return e;
    byLastUse++;
    return u > e.modifiedMs ? { ...e, modifiedMs: u } : e;
  });
  const entries = listed.sort((a, b) => a.modifiedMs - b.modifiedMs);
  const refs = new Map<string, string[]>();
  for (const e of entries) {
    const got = await backend.getEntry(e.key);
    if (!got.ok) return got; // an entry we cannot read might name any blob: delete nothing
    refs.set(e.key, got.value === undefined ? [] : (blobKeysOf(got.value) ?? []));
  }

  const aged: ListedObject[] = [];
  const broken: ListedObject[] = [];
  const bySize: ListedObject[] = [];
  const kept: ListedObject[] = [];
  for (const e of entries) {
    if (o.maxAgeMs !== undefined && o.now - e.modifiedMs > o.maxAgeMs) aged.push(e);
    else if (refs.get(e.key)!.some((k) => !blobSize.has(k))) broken.push(e);
    else kept.push(e);
  }

  // Over the size limit: drop the oldest entries, counting each blob until no kept entry names it.
  const count = new Map<string, number>();
  for (const e of kept) for (const k of new Set(refs.get(e.key))) count.set(k, (count.get(k) ?? 0) + 1);
  let bytes =
    kept.reduce((n, e) => n + e.size, 0) + [...count.keys()].reduce((n, k) => n + blobSize.get(k)!.size, 0);
  if (o.maxBytes !== undefined) {
    while (bytes > o.maxBytes && kept.length > 0) {
      const e = kept.shift()!;
      bySize.push(e);
      bytes -= e.size;
      for (const k of new Set(refs.get(e.key))) {
        const left = count.get(k)! - 1;
        if (left === 0) {
          count.delete(k);
          bytes -= blobSize.get(k)!.size;
        } else count.set(k, left);
      }
    }
  }

  const doomedEntries = [...aged, ...broken, ...bySize];
  if (!o.dryRun) {
    for (const e of doomedEntries) {
      const r = await listing.remove('ac', e.key);
      if (!r.ok) return r;
    }
    // Entries written while this ran reference blobs too: list again and keep what they name.
    const again = await listing.list('ac');
    if (!again.ok) return again;
    for (const e of again.value) {
      if (refs.has(e.key)) continue;
      const got = await backend.getEntry(e.key);
      if (!got.ok) return got;
      for (const k of (got.value && blobKeysOf(got.value)) ?? []) count.set(k, (count.get(k) ?? 0) + 1);
    }
  }
  const doomedBlobs = blobsListed.value.filter((b) => !count.has(b.key) && o.now - b.modifiedMs > o.graceMs);
  if (!o.dryRun) {
    for (const b of doomedBlobs) {
      const r = await listing.remove('cas', b.key);
      if (!r.ok) return r;
    }
  }
  const keptBlobs = blobsListed.value.length - doomedBlobs.length;
  const keptBytes =
    tally(entries).bytes -
    tally(doomedEntries).bytes +
    tally(blobsListed.value).bytes -
    tally(doomedBlobs).bytes;
  return {
    ok: true,
    value: {
      remote: listing.label,
      dryRun: o.dryRun,
      entries: { aged: tally(aged), size: tally(bySize), broken: tally(broken) },
      blobs: tally(doomedBlobs),
      kept: { entries: entries.length - doomedEntries.length, blobs: keptBlobs, bytes: keptBytes },
      agedBy: { lastUse: byLastUse, mtime: entries.length - byLastUse },
    },
  };
}

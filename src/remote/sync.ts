import { rm } from 'node:fs/promises';
import type { Policy } from '../config/resolve.js';
import type { Durability, HashAlgorithm } from '../config/types.js';
import type { Fingerprint } from '../fingerprint/fingerprint.js';
import type { BlobStore, CheckedBlobs } from '../store/blobs.js';
import { type BlobRef, type Entry, entryBlobs, type Provenance, uniqueBlobs } from '../store/entry.js';
import { checkEntryPaths } from '../store/entry-paths.js';
import type { Store } from '../store/store.js';
import type { Reporter } from '../util/reporter.js';
import { errorMessage } from '../util/result.js';
import { mark } from '../util/trace.js';
import type { RemoteBackend, RemoteProblem, RemoteResult } from './backend.js';
import { buildDocument, parseDocument, type RemoteDocument } from './document.js';
import { openBackend } from './open-backend.js';
import { Progress } from './progress.js';
import type { RemoteSettings } from './settings.js';
import { encodeBlob, IN_MEMORY_MAX_BYTES, receiver, type WireRef } from './wire.js';
import { entryExists } from './write-once.js';

/** Tries per request for problems worth retrying (network, 5xx), with growing pauses between them. */
export const ATTEMPTS = 3;
const BACKOFF_MS = [200, 600];
/** Failed operations (each after its retries) before the remote is left alone for the rest of the run. */
export const MAX_STRIKES = 2;
/** Concurrent downloads of large blobs, and of small ones (each a round trip more than bytes). */
const TRANSFERS = 4;
const SMALL_TRANSFERS = 16;
/** Checked bytes of small blobs kept in memory for the restore right after a pull. */
const KEEP_CHECKED_BYTES = 64 * 1024 * 1024;

const FAILED = Symbol('failed');
type Failed = typeof FAILED;

/**
 * One remote as seen by this process: its backend and a circuit breaker. After MAX_STRIKES failed
 * operations, or one that says the remote is unreachable, nothing more is asked of it until the
 * process ends (a watch loop or a many-task run must not pay a timeout per task).
 */
class RemoteSession {
  private backend: RemoteBackend | undefined;
  private strikes = 0;
  off = false;

  constructor(readonly settings: RemoteSettings) {}

  async open(env: NodeJS.ProcessEnv, reporter: Reporter): Promise<RemoteBackend | undefined> {
    if (this.off) return undefined;
    if (this.backend) return this.backend;
    const opened = await openBackend(this.settings, env);
    if (!opened.ok) {
      this.fail(opened.problem, reporter);
      return undefined;
    }
    this.backend = opened.value;
    return this.backend;
  }

  /** One pull or push: its requests share retries' outcome, and it strikes at most once. */
  operation(reporter: Reporter): Operation {
    return new Operation(this, reporter);
  }

  fail(p: RemoteProblem, reporter: Reporter): void {
    if (this.off) return;
    this.strikes++;
    if (p.stop || this.strikes >= MAX_STRIKES) this.off = true;
    reporter.warn(
      `remote cache: ${p.message}; ${this.off ? 'not using the remote for the rest of this run' : 'continuing with the local cache'}`,
    );
  }
}

/**
 * The requests of one pull or push. The first request that fails for good marks the operation
 * failed: requests still in flight stop retrying and no new ones start, and the session gets one
 * strike and one warning for the whole operation.
 */
class Operation {
  problem: RemoteProblem | undefined;

  constructor(
    private readonly session: RemoteSession,
    private readonly reporter: Reporter,
  ) {}

  get failed(): boolean {
    return this.problem !== undefined || this.session.off;
  }

  /** One request with retries (for problems worth retrying, with growing pauses). */
  async call<T>(request: () => Promise<RemoteResult<T>>): Promise<T | Failed> {
    let last: RemoteProblem | undefined;
    for (let i = 0; i < ATTEMPTS && !this.failed; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, BACKOFF_MS[i - 1] ?? 1000));
      const r = await request();
      if (r.ok) return r.value;
      last = r.problem;
      if (!last.retryable || last.stop) break; // refused, unresolvable or timed out: waiting won't fix it
    }
    if (last && !this.problem) this.problem = last;
    return FAILED;
  }

  end(): void {
    if (this.problem) this.session.fail(this.problem, this.reporter);
  }
}

/**
 * Runs `fn` over items, `limit` at a time, until `stop()`. The first item goes alone: against a
 * remote that is failing, that costs one request's retries instead of one per worker.
 */
async function eachLimited<T>(
  items: T[],
  limit: number,
  stop: () => boolean,
  fn: (item: T) => Promise<void>,
) {
  if (items.length === 0) return;
  await fn(items[0]!);
  let next = 1;
  const worker = async () => {
    while (next < items.length && !stop()) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length - 1) }, worker));
}

const sessions = new Map<string, RemoteSession>();

function session(s: RemoteSettings): RemoteSession {
  const id = `${s.url}\n${s.endpoint ?? ''}`;
  let x = sessions.get(id);
  if (!x) {
    x = new RemoteSession(s);
    sessions.set(id, x);
  }
  return x;
}

export interface PullRequest {
  remote: RemoteSettings;
  store: Store;
  root: string;
  key: string;
  /** The local fingerprint of this run: the key was derived from it, so a true entry agrees with it. */
  fingerprint: Fingerprint;
  label: string;
  policy: Policy;
  reporter: Reporter;
  now: number;
  env?: NodeJS.ProcessEnv;
  /**
   * The config's `durability`; unset: 'fast'. The remote keeps the bytes, so a pulled blob lost
   * to a power cut costs a download, never wrong bytes (a hit verifies what it restores), and
   * flushing each of 5,000 small blobs, or a 500 MB one, cost most of a remote hit.
   */
  durability?: Durability;
}

/** A pulled entry, committed locally, and the blobs the pull checked and wrote (for the restore). */
export interface Pulled {
  entry: Entry;
  checked: CheckedBlobs;
}

/**
 * After a local miss: fetches the entry from the remote, checks it (shape, signature, paths, TTL,
 * size), downloads the blobs the local cache lacks (each verified, then renamed into place) and
 * commits the entry locally with origin 'remote'. The caller then restores it like any local hit.
 * undefined: no usable remote entry (a warning says why, when there is a why).
 */
export async function pullFromRemote(r: PullRequest): Promise<Pulled | undefined> {
  const s = session(r.remote);
  const op = s.operation(r.reporter);
  try {
    const backend = await s.open(r.env ?? process.env, r.reporter);
    if (!backend) return undefined;
    const got = await op.call(() => backend.getEntry(r.key));
    mark('remote entry');
    if (got === FAILED || got === undefined) return undefined;
    const short = r.key.slice(0, 12);
    const notUsed = (why: string) => {
      r.reporter.warn(`remote entry ${short} not used: ${why}`);
      r.store.log('ERROR', 'remote', { hash: short, error: why });
      return undefined;
    };

    const expect: Parameters<typeof parseDocument>[1] = { key: r.key, algorithm: r.fingerprint.algorithm };
    if (r.remote.signatureKey) expect.signatureKey = r.remote.signatureKey;
    const parsed = parseDocument(got, expect);
    if (!parsed.ok) return notUsed(parsed.error);
    const doc = parsed.value;
    if (doc.entry.createdAt + r.policy.ttlMs <= r.now) return undefined; // expired: a plain miss
    // Sizes as the blobs will be checked, not as the entry claims in its total.
    const bytes = entryBlobs(doc.entry).reduce((n, b) => n + b.size, 0);
    if (bytes > r.policy.maxEntryBytes) return undefined;
    // A restore clears stale outputs by matching the entry's globs from its cwd: both must be the
    // ones this run's key was computed from, or a forged entry could aim the clean-up elsewhere.
    if (doc.entry.cwd !== r.fingerprint.cwd || !sameList(doc.entry.outputGlobs, r.fingerprint.outputs))
      return notUsed('its working directory or output globs differ from this task');
    // Invariant 4, before a single byte is fetched: a hostile entry is refused as a whole.
    const paths = checkEntryPaths(r.root, doc.entry.outputs);
    if (!paths.ok) return notUsed(paths.error.message);

    const wanted: BlobRef[] = [];
    for (const b of uniqueBlobs(doc.entry)) {
      const size = r.store.blobs.sizeOf(b.hash);
      if (size === b.size) continue;
      // A local copy of another size than its entry says (cut short by a power loss, say) is
      // fetched again: a write never replaces a blob that is there.
      if (size !== undefined) await r.store.blobs.remove(b.hash);
      wanted.push(b);
    }
    const durability = r.durability ?? 'fast';
    const fetched = await download(
      op,
      backend,
      r.store.blobs,
      r.fingerprint.algorithm,
      doc,
      wanted,
      durability,
    );
    mark('remote blobs');
    if (fetched === FAILED) return undefined;
    if (typeof fetched === 'string') return notUsed(fetched);

    const entry = { ...cleanEntry(doc.entry), bytes, ttlMs: r.policy.ttlMs };
    const committed = await r.store.commit(entry, r.fingerprint, r.label, {
      durability,
      flushed: fetched.flushed,
    });
    mark('remote commit');
    if (!committed.ok) return notUsed(committed.error.message);
    return { entry, checked: fetched.checked };
  } catch (e) {
    r.reporter.warn(`remote cache: ${errorMessage(e)}; continuing with the local cache`);
    return undefined;
  } finally {
    op.end();
  }
}

/**
 * What a download left in the local store: the blobs written and flushed (strict durability), and
 * the blobs it checked as they arrived, with their bytes while they fit in memory.
 */
interface Downloaded {
  flushed: Set<string>;
  checked: Map<string, Buffer | undefined>;
}

/**
 * Fetches blobs into the local store, each checked as it arrives. With strict durability, small
 * ones are flushed before they are named (large ones at commit).
 * Small blobs are one round trip each, so many go at once (on kept-alive connections); large ones
 * are bound by bandwidth, and a few at once keep memory and the disk's queue short.
 */
async function download(
  op: Operation,
  backend: RemoteBackend,
  blobs: BlobStore,
  algorithm: HashAlgorithm,
  doc: RemoteDocument,
  wanted: BlobRef[],
  durability: Durability,
): Promise<Downloaded | Failed | string> {
  const total = wanted.reduce((n, b) => n + doc.blobs[b.hash]!.size, 0);
  const progress = new Progress('downloading', total, wanted.length);
  const got: Downloaded = { flushed: new Set(), checked: new Map() };
  let kept = 0;
  let outcome: true | Failed | string = true;
  const stop = () => outcome !== true || op.failed;
  const small = wanted.length > 0 && total / wanted.length <= IN_MEMORY_MAX_BYTES;
  try {
    await eachLimited(wanted, small ? SMALL_TRANSFERS : TRANSFERS, stop, async (ref) => {
      const wire = doc.blobs[ref.hash]!;
      const tmp = blobs.tempPath('remote');
      let placed = false;
      try {
        const rx = receiver(algorithm, ref, wire, tmp, (n) => progress.add(n));
        const fetched = await op.call(() => backend.getBlob(wire.key, rx.consume));
        if (fetched === FAILED) outcome = FAILED;
        else if (!fetched) outcome = `blob ${wire.key.slice(0, 12)} is missing on the remote`;
        else {
          const checked = rx.check();
          if (!checked.ok) outcome = checked.error;
          else {
            const { bytes } = checked.value;
            const strict = durability === 'strict';
            const mine = bytes
              ? await blobs.putChecked(ref.hash, bytes, strict)
              : await blobs.adopt(tmp, ref.hash);
            placed = !bytes;
            // Strict durability: blobs written from memory are flushed here, a large one at commit.
            if (mine && bytes && strict) got.flushed.add(ref.hash);
            // What this download wrote under the blob's name is what it checked (blobs are
            // immutable): the restore copies it without hashing it again. Bytes are kept for
            // it up to a bound; the rest it copies from the store (in the kernel).
            if (mine) {
              const keep = bytes && kept + bytes.byteLength <= KEEP_CHECKED_BYTES;
              if (keep) kept += bytes.byteLength;
              got.checked.set(ref.hash, keep ? bytes : undefined);
            }
            progress.blobDone();
          }
        }
      } finally {
        // Written to but not placed (a failure, a retry's leftovers): it goes.
        if (!placed && ref.size > IN_MEMORY_MAX_BYTES) await rm(tmp, { force: true });
      }
    });
  } finally {
    progress.finish();
  }
  return outcome === true ? got : outcome;
}

export interface PushRequest {
  remote: RemoteSettings;
  store: Store;
  entry: Entry;
  reporter: Reporter;
  env?: NodeJS.ProcessEnv;
}

/**
 * After a local save: uploads the blobs the remote lacks (HEAD first), then the entry, so that a
 * reader never sees an entry whose blobs are not all there yet (invariant 2, on the remote).
 */
export async function pushToRemote(r: PushRequest): Promise<void> {
  if (r.remote.readOnly) return;
  const s = session(r.remote);
  const op = s.operation(r.reporter);
  try {
    const backend = await s.open(r.env ?? process.env, r.reporter);
    if (!backend) return;
    // Write-once (write-once.ts): an entry already on the remote stays, so its blobs need not go
    // either. Asked first, so that the loser of a race, a re-run with --force, or a client whose
    // entry would not be trusted anyway uploads nothing.
    const there = await op.call(() => entryExists(backend, r.entry.key));
    if (there === FAILED || there) return;
    const refs = uniqueBlobs(r.entry);
    const wires: Record<string, WireRef> = {};
    let sent = 0;
    const progress = new Progress('uploading', r.entry.bytes, refs.length);
    try {
      await eachLimited(
        refs,
        TRANSFERS,
        () => op.failed,
        async (ref) => {
          const out = await encodeBlob(r.store.blobs, r.entry.algorithm, ref);
          try {
            const has = await op.call(() => backend.hasBlob(out.key));
            if (has === false) {
              await op.call(() => backend.putBlob(out.key, out.file, out.size));
              sent += out.size;
            }
            wires[ref.hash] = { key: out.key, encoding: out.encoding, size: out.size };
            progress.add(ref.size);
            progress.blobDone();
          } finally {
            if (out.temp) await rm(out.file, { force: true });
          }
        },
      );
    } finally {
      progress.finish();
    }
    if (op.failed) return;
    const doc = buildDocument(r.entry, wires, r.remote.signatureKey);
    await op.call(() => backend.putEntry(r.entry.key, doc));
    if (!op.failed) r.store.recordUpload(sent);
  } catch (e) {
    r.reporter.warn(`remote cache: upload failed: ${errorMessage(e)}`);
  } finally {
    op.end();
  }
}

const sameList = (a: string[], b: string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** Rebuilds the entry from checked fields only, marked as pulled from the remote. */
function cleanEntry(e: Entry): Entry {
  const p = e.provenance as Partial<Provenance>;
  const provenance: Provenance = {
    host: String(p.host ?? ''),
    user: String(p.user ?? ''),
    version: String(p.version ?? ''),
    origin: 'remote',
  };
  if (typeof p.gitCommit === 'string') provenance.gitCommit = p.gitCommit;
  return {
    schema: e.schema,
    key: e.key,
    task: e.task,
    algorithm: e.algorithm,
    outputs: e.outputs.map((o) =>
      o.type === 'file'
        ? { path: o.path, type: 'file', mode: o.mode & 0o777, size: o.size, hash: o.hash }
        : o.type === 'dir'
          ? { path: o.path, type: 'dir', mode: o.mode & 0o777 }
          : { path: o.path, type: 'symlink', target: o.target },
    ),
    outputGlobs: e.outputGlobs,
    cwd: e.cwd,
    logs: e.logs,
    exitCode: e.exitCode,
    durationMs: e.durationMs,
    createdAt: e.createdAt,
    bytes: e.bytes,
    ttlMs: e.ttlMs,
    provenance,
  };
}

import { rm } from 'node:fs/promises';
import type { Policy } from '../config/resolve.js';
import type { HashAlgorithm } from '../config/types.js';
import type { Fingerprint } from '../fingerprint/fingerprint.js';
import { checkEntryPaths } from '../runner/restore.js';
import type { Reporter } from '../runner/run-task.js';
import type { BlobStore } from '../store/blobs.js';
import { type BlobRef, type Entry, entryBlobs, type Provenance } from '../store/entry.js';
import type { Store } from '../store/store.js';
import { errorMessage } from '../util/result.js';
import { openBackend, type RemoteBackend, type RemoteProblem, type RemoteResult } from './backend.js';
import { buildDocument, parseDocument, type RemoteDocument } from './document.js';
import { Progress } from './progress.js';
import type { RemoteSettings } from './settings.js';
import { encodeBlob, receiver, type WireRef } from './wire.js';

/** Tries per request for problems worth retrying (network, 5xx), with growing pauses between them. */
export const ATTEMPTS = 3;
const BACKOFF_MS = [200, 600];
/** Failed operations (each after its retries) before the remote is left alone for the rest of the run. */
export const MAX_STRIKES = 2;
const TRANSFERS = 4;

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

  /** Runs one remote operation with retries; a final failure is a warning and a strike. */
  async call<T>(reporter: Reporter, op: () => Promise<RemoteResult<T>>): Promise<T | Failed> {
    let last: RemoteProblem | undefined;
    for (let i = 0; i < ATTEMPTS && !this.off; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, BACKOFF_MS[i - 1] ?? 1000));
      const r = await op();
      if (r.ok) return r.value;
      last = r.problem;
      if (!last.retryable || last.stop) break; // refused, unresolvable or timed out: waiting won't fix it
    }
    if (last) this.fail(last, reporter);
    return FAILED;
  }

  private fail(p: RemoteProblem, reporter: Reporter): void {
    if (this.off) return;
    this.strikes++;
    if (p.stop || this.strikes >= MAX_STRIKES) this.off = true;
    reporter.warn(
      `remote cache: ${p.message}; ${this.off ? 'not using the remote for the rest of this run' : 'continuing with the local cache'}`,
    );
  }

  close(): void {
    this.backend?.close();
  }
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

/** Drops idle connections so a CLI process can exit at once. */
export function closeRemotes(): void {
  for (const s of sessions.values()) s.close();
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
}

/**
 * After a local miss: fetches the entry from the remote, checks it (shape, signature, paths, TTL,
 * size), downloads the blobs the local cache lacks (each verified, then renamed into place) and
 * commits the entry locally with origin 'remote'. The caller then restores it like any local hit.
 * undefined: no usable remote entry (a warning says why, when there is a why).
 */
export async function pullFromRemote(r: PullRequest): Promise<Entry | undefined> {
  const s = session(r.remote);
  try {
    const backend = await s.open(r.env ?? process.env, r.reporter);
    if (!backend) return undefined;
    const bytes = await s.call(r.reporter, () => backend.getEntry(r.key));
    if (bytes === FAILED || bytes === undefined) return undefined;
    const short = r.key.slice(0, 12);
    const notUsed = (why: string) => {
      r.reporter.warn(`remote entry ${short} not used: ${why}`);
      r.store.log('ERROR', 'remote', { hash: short, error: why });
      return undefined;
    };

    const expect: Parameters<typeof parseDocument>[1] = { key: r.key, algorithm: r.fingerprint.algorithm };
    if (r.remote.signatureKey) expect.signatureKey = r.remote.signatureKey;
    const parsed = parseDocument(bytes, expect);
    if (!parsed.ok) return notUsed(parsed.message);
    const doc = parsed.doc;
    if (doc.entry.createdAt + r.policy.ttlMs <= r.now) return undefined; // expired: a plain miss
    if (doc.entry.bytes > r.policy.maxEntryBytes) return undefined;
    // A restore clears stale outputs by matching the entry's globs from its cwd: both must be the
    // ones this run's key was computed from, or a forged entry could aim the clean-up elsewhere.
    if (doc.entry.cwd !== r.fingerprint.cwd || !sameList(doc.entry.outputGlobs, r.fingerprint.outputs))
      return notUsed('its working directory or output globs differ from this task');
    // Invariant 4, before a single byte is fetched: a hostile entry is refused as a whole.
    const paths = checkEntryPaths(r.root, doc.entry.outputs);
    if (!paths.ok) return notUsed(paths.error.message);

    const wanted = unique(entryBlobs(doc.entry)).filter((b) => !r.store.blobs.has(b.hash));
    const fetched = await download(
      s,
      backend,
      r.store.blobs,
      r.fingerprint.algorithm,
      doc,
      wanted,
      r.reporter,
    );
    if (fetched !== true) return fetched === FAILED ? undefined : notUsed(fetched);

    const entry = cleanEntry(doc.entry);
    const committed = await r.store.commit(entry, r.fingerprint, r.label);
    if (!committed.ok) return notUsed(committed.error.message);
    return entry;
  } catch (e) {
    r.reporter.warn(`remote cache: ${errorMessage(e)}; continuing with the local cache`);
    return undefined;
  }
}

async function download(
  s: RemoteSession,
  backend: RemoteBackend,
  blobs: BlobStore,
  algorithm: HashAlgorithm,
  doc: RemoteDocument,
  wanted: BlobRef[],
  reporter: Reporter,
): Promise<true | Failed | string> {
  const total = wanted.reduce((n, b) => n + doc.blobs[b.hash]!.size, 0);
  const progress = new Progress('downloading', total, wanted.length);
  let next = 0;
  let outcome: true | Failed | string = true;
  const worker = async () => {
    while (next < wanted.length && outcome === true) {
      const ref = wanted[next++]!;
      const wire = doc.blobs[ref.hash]!;
      const tmp = blobs.tempPath('remote');
      try {
        const rx = receiver(algorithm, ref, wire, tmp, (n) => progress.add(n));
        const got = await s.call(reporter, () => backend.getBlob(wire.key, rx.consume));
        if (got === FAILED) outcome = FAILED;
        else if (!got) outcome = `blob ${wire.key.slice(0, 12)} is missing on the remote`;
        else {
          const checked = rx.check();
          if (!checked.ok) outcome = checked.message;
          else {
            await blobs.adopt(tmp, ref.hash);
            progress.blobDone();
          }
        }
      } finally {
        await rm(tmp, { force: true });
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(TRANSFERS, wanted.length) }, worker));
  } finally {
    progress.finish();
  }
  return outcome;
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
  try {
    const backend = await s.open(r.env ?? process.env, r.reporter);
    if (!backend) return;
    const refs = unique(entryBlobs(r.entry));
    const wires: Record<string, WireRef> = {};
    const progress = new Progress('uploading', r.entry.bytes, refs.length);
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (next < refs.length && !failed) {
        const ref = refs[next++]!;
        const out = await encodeBlob(r.store.blobs, r.entry.algorithm, ref);
        try {
          const has = await s.call(r.reporter, () => backend.hasBlob(out.key));
          const sent =
            has === FAILED
              ? FAILED
              : has
                ? true
                : await s.call(r.reporter, () => backend.putBlob(out.key, out.file, out.size));
          if (sent === FAILED) failed = true;
          wires[ref.hash] = { key: out.key, encoding: out.encoding, size: out.size };
          progress.add(ref.size);
          progress.blobDone();
        } finally {
          if (out.temp) await rm(out.file, { force: true });
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(TRANSFERS, refs.length) }, worker));
    } finally {
      progress.finish();
    }
    if (failed) return;
    const doc = buildDocument(r.entry, wires, r.remote.signatureKey);
    await s.call(r.reporter, () => backend.putEntry(r.entry.key, doc));
  } catch (e) {
    r.reporter.warn(`remote cache: upload failed: ${errorMessage(e)}`);
  }
}

const sameList = (a: string[], b: string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

function unique(refs: BlobRef[]): BlobRef[] {
  const seen = new Map<string, BlobRef>();
  for (const b of refs) seen.set(b.hash, b);
  return [...seen.values()];
}

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

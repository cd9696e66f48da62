import type { HashAlgorithm } from '../config/types.js';

/** Bump when the Entry shape changes incompatibly; a newer index is left alone (fail-open). */
export const STORE_SCHEMA = 1;

export interface BlobRef {
  hash: string;
  size: number;
}

export type OutputRecord =
  | { path: string; type: 'file'; mode: number; size: number; hash: string }
  | { path: string; type: 'dir'; mode: number }
  | { path: string; type: 'symlink'; target: string };

/** Which stream a run of bytes went to: 1 stdout, 2 stderr. */
export type StreamId = 1 | 2;

export interface Logs {
  stdout: BlobRef | null;
  stderr: BlobRef | null;
  /** The order the bytes arrived in: [stream, byte length] runs, adjacent runs of one stream merged. */
  chunks: Array<[StreamId, number]>;
}

export interface Provenance {
  host: string;
  user: string;
  version: string;
  gitCommit?: string;
  /** 'local' for entries made here; 'remote' for entries pulled from a team cache. */
  origin: 'local' | 'remote';
}

export interface Entry {
  schema: number;
  key: string;
  task: string;
  algorithm: HashAlgorithm;
  /** Paths are relative to the project root, POSIX separators. */
  outputs: OutputRecord[];
  /** The output globs, so that a restore can clear stale files first. */
  outputGlobs: string[];
  /** cwd of the run relative to the project root; output globs are relative to it. */
  cwd: string;
  logs: Logs;
  exitCode: number;
  durationMs: number;
  createdAt: number;
  /** Sum of output and log blob sizes. */
  bytes: number;
  ttlMs: number;
  provenance: Provenance;
  /**
   * Set on entries made by `cache save` / the SDK (a stored result, not a command run): the single
   * output is the result, served to whatever path or caller asks, never restored to its recorded path.
   */
  result?: { encoding: ResultEncoding };
}

/** 'raw': the bytes as given; 'json': a JSON text (memoize's default codec). */
export type ResultEncoding = 'raw' | 'json';

export function entryBlobs(entry: Entry): BlobRef[] {
  const refs: BlobRef[] = [];
  for (const o of entry.outputs) if (o.type === 'file') refs.push({ hash: o.hash, size: o.size });
  if (entry.logs.stdout) refs.push(entry.logs.stdout);
  if (entry.logs.stderr) refs.push(entry.logs.stderr);
  return refs;
}

/** An entry's blobs, each once (two identical outputs share one blob and one reference). */
export function uniqueBlobs(entry: Entry): BlobRef[] {
  const seen = new Map<string, BlobRef>();
  for (const ref of entryBlobs(entry)) seen.set(ref.hash, ref);
  return [...seen.values()];
}

const HEX_DIGEST = /^[0-9a-f]{16,128}$/;

/**
 * Whether `s` can be a cache key or a blob hash (16 to 128 lowercase hex digits). Both may come
 * from a hostile entry or file name and become path segments, so nothing else is accepted.
 */
export function isHexDigest(s: unknown): s is string {
  return typeof s === 'string' && HEX_DIGEST.test(s);
}

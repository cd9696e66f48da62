import { createHmac, timingSafeEqual } from 'node:crypto';
import type { HashAlgorithm } from '../config/types.js';
import { canonicalJson } from '../fingerprint/hash.js';
import { type Entry, entryBlobs, STORE_SCHEMA } from '../store/entry.js';
import { err, ok, type Result } from '../util/result.js';
import type { WireRef } from './wire.js';

export const DOCUMENT_FORMAT = 'taskvault-remote-entry';
export const DOCUMENT_VERSION = 1;

/**
 * What goes to `ac/<key>`: the entry, and for every blob it names the remote key and encoding. The signature, when present, is an HMAC-SHA256 over the canonical
 * JSON of everything else; since every blob is verified against the hash the entry names, signing
 * the document covers the blobs too.
 */
export interface RemoteDocument {
  format: typeof DOCUMENT_FORMAT;
  version: number;
  entry: Entry;
  blobs: Record<string, WireRef>;
  signature?: string;
}

export function buildDocument(entry: Entry, blobs: Record<string, WireRef>, signatureKey?: string): Buffer {
  const doc: RemoteDocument = { format: DOCUMENT_FORMAT, version: DOCUMENT_VERSION, entry, blobs };
  if (signatureKey) doc.signature = sign(doc, signatureKey);
  return Buffer.from(JSON.stringify(doc));
}

function sign(doc: RemoteDocument, key: string): string {
  const { signature: _, ...unsigned } = doc;
  return createHmac('sha256', key).update(canonicalJson(unsigned)).digest('hex');
}

/**
 * Parses and checks a downloaded document. Everything in it is untrusted: shapes are checked field
 * by field before any of it is used, and with a signature key a missing or wrong signature rejects it.
 */
export function parseDocument(
  bytes: Buffer,
  expect: { key: string; algorithm: HashAlgorithm; signatureKey?: string },
): Result<RemoteDocument, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    return err('the remote entry is not JSON');
  }
  const shape = checkShape(raw);
  if (shape) return err(`the remote entry is malformed: ${shape}`);
  const doc = raw as RemoteDocument;
  if (expect.signatureKey) {
    if (typeof doc.signature !== 'string')
      return err('the remote entry is not signed (TASKVAULT_REMOTE_SIGNATURE_KEY is set)');
    const want = Buffer.from(sign(doc, expect.signatureKey), 'hex');
    const got = Buffer.from(doc.signature, 'hex');
    if (got.length !== want.length || !timingSafeEqual(got, want))
      return err('the remote entry has a bad signature (signed with another key, or altered)');
  }
  if (doc.entry.key !== expect.key) return err('the remote entry is stored under another key');
  if (doc.entry.algorithm !== expect.algorithm)
    return err(`the remote entry uses hash algorithm ${doc.entry.algorithm}`);
  for (const ref of entryBlobs(doc.entry))
    if (!doc.blobs[ref.hash])
      return err(`the remote entry has no remote key for blob ${ref.hash.slice(0, 12)}`);
  return ok(doc);
}

const HEX = /^[0-9a-f]{32,128}$/;
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isHex = (v: unknown): v is string => typeof v === 'string' && HEX.test(v);

function checkShape(d: unknown): string | undefined {
  if (!isObj(d)) return 'not an object';
  if (d.format !== DOCUMENT_FORMAT) return 'unknown format';
  if (d.version !== DOCUMENT_VERSION)
    return `version ${String(d.version)} (this TaskVault reads ${DOCUMENT_VERSION})`;
  if (!isObj(d.blobs)) return 'blobs';
  for (const [hash, w] of Object.entries(d.blobs)) {
    if (!isHex(hash) || !isObj(w)) return 'blobs';
    if (!isHex(w.key) || (w.key as string).length !== 64) return `blobs.${hash.slice(0, 12)}.key`;
    if (w.encoding !== 'identity' && w.encoding !== 'gzip') return `blobs.${hash.slice(0, 12)}.encoding`;
    if (!isCount(w.size)) return `blobs.${hash.slice(0, 12)}.size`;
  }
  const e = d.entry;
  if (!isObj(e)) return 'entry';
  if (e.schema !== STORE_SCHEMA) return `entry schema ${String(e.schema)}`;
  for (const f of ['key', 'task', 'cwd'] as const) if (!isStr(e[f])) return `entry.${f}`;
  if (e.algorithm !== 'blake3' && e.algorithm !== 'sha256') return 'entry.algorithm';
  for (const f of ['exitCode', 'durationMs', 'createdAt', 'bytes', 'ttlMs'] as const)
    if (typeof e[f] !== 'number' || !Number.isFinite(e[f])) return `entry.${f}`;
  if (!Array.isArray(e.outputGlobs) || !e.outputGlobs.every(isStr)) return 'entry.outputGlobs';
  if (!isObj(e.provenance)) return 'entry.provenance';
  if (!Array.isArray(e.outputs)) return 'entry.outputs';
  for (const o of e.outputs) {
    if (!isObj(o) || !isStr(o.path)) return 'entry.outputs[]';
    if (o.type === 'file') {
      if (!isCount(o.mode) || !isCount(o.size) || !isHex(o.hash)) return `entry.outputs ${o.path}`;
    } else if (o.type === 'dir') {
      if (!isCount(o.mode)) return `entry.outputs ${o.path}`;
    } else if (o.type === 'symlink') {
      if (!isStr(o.target)) return `entry.outputs ${o.path}`;
    } else return `entry.outputs ${o.path}: type`;
  }
  const logs = e.logs;
  if (!isObj(logs) || !Array.isArray(logs.chunks)) return 'entry.logs';
  const sizes: Record<number, number> = { 1: 0, 2: 0 };
  for (const c of logs.chunks) {
    if (!Array.isArray(c) || c.length !== 2 || (c[0] !== 1 && c[0] !== 2) || !isCount(c[1]))
      return 'entry.logs.chunks';
    sizes[c[0]]! += c[1];
  }
  for (const [name, id] of [
    ['stdout', 1],
    ['stderr', 2],
  ] as const) {
    const ref = logs[name];
    if (ref === null) {
      if (sizes[id] !== 0) return `entry.logs.${name}`;
      continue;
    }
    if (!isObj(ref) || !isHex(ref.hash) || !isCount(ref.size) || ref.size !== sizes[id])
      return `entry.logs.${name}`;
  }
  return undefined;
}

/**
 * `taskvault serve --stdio`: one long-lived SDK Client answering framed requests (frames.ts) on
 * stdin/stdout, for clients in other languages (python/taskvault). Every operation is the TS SDK's
 * own, so keys, audit lines, stats, eviction, TTL and policies are exactly the CLI's.
 * docs/serve-protocol.md is the reference for the requests and replies.
 */
import { canonicalJson } from '../fingerprint/hash.js';
import { Client, type ClientOptions, type RunSpec, TaskVaultError } from '../sdk/client.js';
import type { ResultEncoding } from '../store/entry.js';
import { hashInput, type ResultData } from '../store/results.js';
import { VERSION } from '../version.js';
import { ChunkQueue } from './chunks.js';
import { encodeFrame, type Frame, type Header, readFrames } from './frames.js';

export const PROTOCOL_VERSION = 1;

/** A request the service cannot make sense of: the client's bug, said in one line. */
class BadRequest extends Error {}

type Send = (header: Header, body?: Uint8Array) => void;

interface Request {
  id: number;
  header: Header;
  /** The request's raw bytes, taken in order by each `{bytes: n}` value. */
  body: Buffer;
  at: number;
  /** Stream values of this request, by name ('input', 'output'), fed by chunk frames. */
  streams: Map<string, ChunkQueue>;
}

/**
 * Serves requests from `input` until it ends, writing replies with `send`. Requests run
 * concurrently; each reply carries its request's id. Resolves once every reply is sent and the
 * client is closed.
 */
export async function serve(
  input: AsyncIterable<Uint8Array>,
  send: Send,
  options: Pick<ClientOptions, 'configPath' | 'cacheDir' | 'cwd'>,
): Promise<void> {
  const client = new Client({ ...options, onWarning: (message) => send({ warning: message }) });
  const open = new Map<number, Request>();
  const running = new Set<Promise<void>>();
  /** The last `hits` request's booking. */
  let booking: Promise<void> = Promise.resolve();
  try {
    for await (const frame of readFrames(input)) {
      const h = frame.header;
      if (typeof h.chunk === 'string') {
        await feedChunk(open, frame);
        continue;
      }
      const id = h.id;
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0 || open.has(id)) {
        send({ id: 0, ok: false, error: { type: 'ProtocolError', message: `bad request id ${String(id)}` } });
        continue;
      }
      const req: Request = { id, header: h, body: frame.body, at: 0, streams: streamsOf(h) };
      open.set(id, req);
      const done = handle(client, req, send, booking).finally(() => {
        open.delete(id);
        for (const q of req.streams.values()) q.discard();
        running.delete(done);
      });
      running.add(done);
      if (h.op === 'hits') booking = done;
    }
  } finally {
    // Input ended (or broke) with values still streaming in: those requests fail, whole or not at all.
    for (const req of open.values())
      for (const q of req.streams.values()) q.fail(new Error('the client went away mid-stream'));
    await Promise.allSettled([...running]);
    await client.close();
  }
}

/**
 * A queue for each value the request sends as chunk frames, made as the request arrives: its
 * chunks may follow at once, before the handler has come to that value (after awaiting the one
 * before it), and a chunk with no queue is dropped as belonging to a request already answered.
 */
function streamsOf(h: Frame['header']): Map<string, ChunkQueue> {
  const streams = new Map<string, ChunkQueue>();
  // Only for what the op will read as a stream: a queue nobody reads stops the frame reader (every
  // request's) once it holds LIMIT chunks. The chunks of any other value are dropped.
  const names = h.op === 'save' ? ['input', 'output'] : h.op === 'get' ? ['input'] : [];
  for (const name of names) if (kindOf(h[name]) === 'stream') streams.set(name, new ChunkQueue());
  return streams;
}

/** How dataOf() takes a request's value: the one reading of it, for streamsOf() and plainData(). */
function kindOf(d: unknown): 'memo' | 'bytes' | 'path' | 'stream' | undefined {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) return undefined;
  const v = d as Record<string, unknown>;
  if ('memo' in v) return 'memo';
  if (typeof v.bytes === 'number') return 'bytes';
  if (typeof v.path === 'string' && v.path !== '') return 'path';
  return v.stream === true ? 'stream' : undefined;
}

async function feedChunk(open: Map<number, Request>, frame: Frame): Promise<void> {
  const { id, chunk, end, abort } = frame.header;
  // Chunks of a request already answered (it failed before reading them) are dropped.
  const q = typeof id === 'number' ? open.get(id)?.streams.get(String(chunk)) : undefined;
  if (!q) return;
  // The client could not read the rest of the value (its file object failed): the request fails,
  // never taking what came so far for the whole value.
  if (abort === true) {
    q.fail(new Error(`the client could not read the ${String(chunk)} it was sending`));
    return;
  }
  if (frame.body.length > 0) await q.push(frame.body);
  if (end === true) q.end();
}

/** `booked`: the booking of the last `hits` request before this one, which `stats` must count. */
async function handle(client: Client, req: Request, send: Send, booked: Promise<void>): Promise<void> {
  const { id } = req;
  try {
    const op = req.header.op;
    switch (op) {
      case 'hello': {
        const s = await client.settings();
        send({
          id,
          ok: true,
          version: VERSION,
          protocol: PROTOCOL_VERSION,
          pid: process.pid,
          root: s.root,
          cacheDir: s.cacheDir,
          hashAlgorithm: s.hashAlgorithm,
          ...(s.configPath ? { configPath: s.configPath } : {}),
        });
        return;
      }
      case 'get': {
        const task = taskOf(req);
        const input = await dataOf(client, req, 'input');
        const toFile = req.header.toFile;
        if (toFile !== undefined) {
          if (typeof toFile !== 'string' || toFile === '') throw new BadRequest('toFile must be a path');
          const r = await client.getCachedResult(task, input, { toFile });
          send(
            r.hit ? { id, ok: true, hit: true, key: r.key, size: r.size, encoding: r.encoding } : miss(id, r),
          );
          return;
        }
        const r = await client.getCachedResult(task, input);
        if (!r.hit) send(miss(id, r));
        else {
          // `until`: how long the client may serve this value from its memory (the `hits` op below).
          const until = Number.isFinite(r.expiresAt) ? { until: r.expiresAt } : {};
          send(
            { id, ok: true, hit: true, key: r.key, size: r.size, encoding: r.encoding, ...until },
            r.value,
          );
        }
        return;
      }
      case 'hits':
        // No reply: the client does not wait for bookkeeping. A failure is a warning instead.
        try {
          await client.bookServedHits(servedHits(req));
        } catch (e) {
          send({ warning: `hits served from memory were not booked: ${errorOf(e).message}` });
        }
        return;
      case 'save': {
        const task = taskOf(req);
        const input = await dataOf(client, req, 'input');
        const output = await dataOf(client, req, 'output');
        const { durationMs, encoding } = req.header;
        if (durationMs !== undefined && (typeof durationMs !== 'number' || !(durationMs >= 0)))
          throw new BadRequest('durationMs must be a number of milliseconds >= 0');
        if (encoding !== undefined && encoding !== 'raw' && encoding !== 'json')
          throw new BadRequest("encoding must be 'raw' or 'json'");
        const key = await client.cacheResult(task, input, output, {
          ...(durationMs !== undefined ? { durationMs } : {}),
          ...(encoding !== undefined ? { encoding: encoding as ResultEncoding } : {}),
        });
        send({ id, ok: true, key });
        return;
      }
      case 'stats':
        await booked;
        send({ id, ok: true, stats: await client.getStats() });
        return;
      case 'explain': {
        const spec = req.header.spec;
        if (spec === null || typeof spec !== 'object' || Array.isArray(spec))
          throw new BadRequest('explain needs a spec object');
        send({ id, ok: true, explanation: await client.explain(spec as RunSpec) });
        return;
      }
      default:
        throw new BadRequest(`unknown op ${JSON.stringify(op)}`);
    }
  } catch (e) {
    send({ id, ok: false, error: errorOf(e) });
  }
}

/** `hits`: `[[task, key], …]`, hits the client served from its memory of earlier `get` replies. */
function servedHits(req: Request): Array<{ task: string; key: string }> {
  const hits = req.header.hits;
  if (!Array.isArray(hits)) throw new BadRequest('hits must be a list of [task, key]');
  return hits.map((h) => {
    if (!Array.isArray(h) || typeof h[0] !== 'string' || typeof h[1] !== 'string')
      throw new BadRequest('hits must be a list of [task, key]');
    return { task: h[0], key: h[1] };
  });
}

const miss = (id: number, r: { key: string }): Header => ({ id, ok: true, hit: false, key: r.key });

function errorOf(e: unknown): Record<string, unknown> {
  if (e instanceof TaskVaultError) return { type: 'TaskVaultError', reason: e.reason, message: e.message };
  if (e instanceof BadRequest) return { type: 'ProtocolError', message: e.message };
  const message = e instanceof Error ? e.message : String(e);
  return { type: 'InternalError', message };
}

function taskOf(req: Request): string {
  const task = req.header.task;
  if (typeof task !== 'string' || task === '') throw new BadRequest('task must be a non-empty string');
  return task;
}

/** The `name` value of a request ('input' or 'output') as SDK data. */
async function dataOf(client: Client, req: Request, name: 'input' | 'output'): Promise<ResultData> {
  const d = req.header[name];
  if (kindOf(d) === 'memo') {
    if (name !== 'input') throw new BadRequest('only an input can be memoize arguments');
    return memoInput(client, req, d as { memo: unknown; blobs?: unknown });
  }
  return plainData(req, d, name);
}

function plainData(req: Request, d: unknown, name: string): ResultData {
  const kind = kindOf(d);
  const v = d as Record<string, unknown>;
  if (kind === 'bytes') {
    const n = v.bytes as number;
    if (!Number.isSafeInteger(n) || n < 0 || req.at + n > req.body.length)
      throw new BadRequest(`${name}: ${n} bytes do not fit in the frame's body`);
    const bytes = req.body.subarray(req.at, req.at + n);
    req.at += n;
    return bytes;
  }
  if (kind === 'path') return { path: v.path as string };
  const q = kind === 'stream' ? req.streams.get(name) : undefined;
  if (q) return q;
  throw new BadRequest(`${name} must be {bytes}, {path} or {stream}`);
}

/**
 * Memoize arguments: JSON in which `{"$bytes": i}` and `{"$file": i}` stand for `blobs[i]`. Each is
 * replaced by its content hash and the whole written as canonical JSON: the same input text the TS
 * SDK's memoize keys a call by (byte arrays as `{"$bytes": <hash>}`), so keys agree across languages.
 */
async function memoInput(
  client: Client,
  req: Request,
  d: { memo: unknown; blobs?: unknown },
): Promise<string> {
  const blobs = d.blobs ?? [];
  if (!Array.isArray(blobs)) throw new BadRequest('memo blobs must be a list');
  const { hashAlgorithm } = await client.settings();
  const hashes: string[] = [];
  for (const [i, b] of blobs.entries()) {
    const data = plainData(req, b, `memo blob ${i}`);
    const h = await hashInput(hashAlgorithm, data);
    if (!h.ok) throw new TaskVaultError(h.error);
    hashes.push(h.value);
  }
  // Each blob stands in exactly one place: a placeholder that repeats one (or one not referred
  // to at all) means the client took a value of its caller's for a placeholder, and the key would
  // be another call's. Refused rather than keyed wrongly.
  const used = new Set<number>();
  const swap = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(swap);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (
      keys.length === 1 &&
      (keys[0] === '$bytes' || keys[0] === '$file') &&
      typeof o[keys[0]] === 'number'
    ) {
      const i = o[keys[0]] as number;
      const hash = Number.isSafeInteger(i) ? hashes[i] : undefined;
      if (hash === undefined) throw new BadRequest(`memo refers to blob ${i}, which is not there`);
      if (used.has(i)) throw new BadRequest(`memo refers to blob ${i} twice`);
      used.add(i);
      return { [keys[0]]: hash };
    }
    return Object.fromEntries(keys.map((k) => [k, swap(o[k])]));
  };
  const input = canonicalJson(swap(d.memo));
  if (used.size !== hashes.length) throw new BadRequest('memo does not refer to every blob');
  return input;
}

/** Writes frames to a stream whose writes are synchronous (a pipe on Linux, a file). */
export function frameWriter(out: NodeJS.WritableStream): Send {
  return (header, body) => {
    out.write(encodeFrame(header, body));
  };
}

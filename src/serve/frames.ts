/**
 * The framing of `taskvault serve --stdio` (docs/serve-protocol.md): each frame is a 4-byte
 * big-endian length, that many bytes of a JSON header, then `header.body` raw bytes (0 if absent).
 * Binary values travel as raw bytes, never base64.
 */

/** A header is a JSON object; `body` says how many raw bytes follow it. */
export type Header = Record<string, unknown> & { body?: number };

export interface Frame {
  header: Header;
  body: Buffer;
}

/** Headers are small; a larger one means the peer is not speaking this protocol. */
export const MAX_HEADER_BYTES = 16 * 1024 * 1024;

/** One frame as a single buffer, so that one synchronous write puts it on the pipe whole. */
export function encodeFrame(header: Header, body?: Uint8Array): Buffer {
  const h = body && body.byteLength > 0 ? { ...header, body: body.byteLength } : header;
  const json = Buffer.from(JSON.stringify(h));
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(json.length, 0);
  return body && body.byteLength > 0 ? Buffer.concat([len, json, body]) : Buffer.concat([len, json]);
}

/** Thrown for bytes that cannot be frames: the stream cannot be resynchronised after it. */
export class FrameError extends Error {}

/**
 * Frames read from a byte stream, in order. Ends when the stream ends between frames; a stream
 * that ends inside a frame, a header that is not a JSON object, or a bad length throws FrameError.
 */
export async function* readFrames(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncGenerator<Frame> {
  const chunks: Buffer[] = [];
  let buffered = 0;
  /** The first n buffered bytes, removed from the buffer. */
  const take = (n: number): Buffer => {
    if (n === 0) return Buffer.alloc(0);
    const first = chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) chunks.shift();
      else chunks[0] = first.subarray(n);
      buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = chunks[0]!;
      const part = Math.min(c.length, n - at);
      c.copy(out, at, 0, part);
      at += part;
      if (part === c.length) chunks.shift();
      else chunks[0] = c.subarray(part);
    }
    buffered -= n;
    return out;
  };
  // What the next `need` bytes are: a header's length, a header, or a body.
  let state: 'length' | 'header' | 'body' = 'length';
  let need = 4;
  let header: Header = {};
  for await (const chunk of source) {
    if (chunk.byteLength === 0) continue;
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    buffered += chunk.byteLength;
    while (buffered >= need) {
      if (state === 'length') {
        need = take(4).readUInt32BE(0);
        if (need === 0 || need > MAX_HEADER_BYTES) throw new FrameError(`bad header length ${need}`);
        state = 'header';
        continue;
      }
      if (state === 'header') {
        header = parseHeader(take(need));
        need = header.body ?? 0;
        if (!Number.isSafeInteger(need) || need < 0) throw new FrameError(`bad body length ${header.body}`);
        state = 'body';
        continue;
      }
      const frame: Frame = { header, body: take(need) };
      state = 'length';
      need = 4;
      yield frame;
    }
  }
  if (buffered > 0 || state !== 'length') throw new FrameError('the stream ended inside a frame');
}

function parseHeader(bytes: Buffer): Header {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new FrameError(`a frame header is not JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new FrameError('a frame header is not a JSON object');
  return v as Header;
}

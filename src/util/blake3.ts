import { blakeHash } from './blake-native.js';

const { blake3 } = blakeHash();

/**
 * BLAKE3 of bytes or UTF-8 text, as lower-case hex. Here rather than in fingerprint/ so that
 * config/ (the layer below it) can key its own small caches without importing fingerprint/.
 */
export function blake3Hex(data: Uint8Array | string): string {
  const buf =
    typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return blake3(buf).toString('hex');
}

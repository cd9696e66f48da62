import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// Loaded with require(): imported from ESM, Node would first scan the package's CommonJS loader for
// its export names (see fingerprint/hash.ts).
const { blake3 } = require('@napi-rs/blake-hash') as typeof import('@napi-rs/blake-hash');

/**
 * BLAKE3 of bytes or UTF-8 text, as lower-case hex. Here rather than in fingerprint/ so that
 * config/ (the layer below it) can key its own small caches without importing fingerprint/.
 */
export function blake3Hex(data: Uint8Array | string): string {
  const buf =
    typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return blake3(buf).toString('hex');
}

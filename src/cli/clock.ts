/**
 * The clock for this process. TASKVAULT_NOW_MS pins it to a fixed epoch-ms value so tests of TTL
 * and LRU move time forward without sleeping; it is read here, at the CLI boundary, and passed down.
 */
export function clockFromEnv(env: NodeJS.ProcessEnv = process.env): () => number {
  const text = env.TASKVAULT_NOW_MS;
  const pinned = text ? Number(text) : Number.NaN;
  return Number.isFinite(pinned) ? () => pinned : Date.now;
}

/** The public API: `import { defineConfig, Client } from 'taskvault'`. */

export type { Settings } from './config/resolve.js';
export type {
  HashAlgorithm,
  LogLevel,
  PolicyConfig,
  RemoteConfig,
  TaskConfig,
  TaskVaultConfig,
} from './config/types.js';
export { defineConfig } from './config/types.js';
export type { FingerprintChange } from './fingerprint/diff.js';
export type { Fingerprint } from './fingerprint/fingerprint.js';
export type { Comparison, Explanation } from './runner/explain.js';
export type { RunOutcome } from './runner/types.js';
export {
  type CachedResult,
  type CacheResultOptions,
  type CacheStats,
  Client,
  type ClientOptions,
  type GetToFileOptions,
  type MemoizeOptions,
  type ResultData,
  type RunResult,
  type RunSpec,
  TaskVaultError,
} from './sdk/client.js';
export type { Entry, OutputRecord, Provenance } from './store/entry.js';
export { VERSION } from './version.js';

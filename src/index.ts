/** The public API: `import { defineConfig, Client } from 'taskvault'`. */

export type {
  HashAlgorithm,
  LogLevel,
  PolicyConfig,
  RemoteConfig,
  TaskConfig,
  TaskVaultConfig,
} from './config/types.js';
export { defineConfig } from './config/types.js';
export type { Fingerprint } from './fingerprint/fingerprint.js';
export type { RunOutcome } from './runner/run-task.js';
export type { Entry, OutputRecord } from './store/entry.js';
export { VERSION } from './version.js';

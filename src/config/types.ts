/** The shape of taskvault.config.{ts,mjs,js,json}. Every field is optional. */
export interface TaskVaultConfig {
  /** Cache directory, relative to the project root. Default `.taskvault/cache`. */
  cacheDir?: string;
  /** Upper bound of the whole local cache in GB (10^9 bytes). Default 10. */
  maxSizeGb?: number;
  /** Eviction brings usage down to this fraction of maxSizeGb. Default 0.5. */
  lowWaterMark?: number;
  /** Hash for input files, blobs and keys. Default 'blake3'. */
  hashAlgorithm?: HashAlgorithm;
  /** How much TaskVault says on stderr. Default 'info'. */
  logLevel?: LogLevel;
  /** Extra string mixed into every key: bump it to invalidate everything. */
  salt?: string;
  /** Eviction policies by task name; `default` applies to tasks without one of their own. */
  policies?: Record<string, PolicyConfig>;
  /** Named tasks for `taskvault run NAME`. */
  tasks?: Record<string, TaskConfig>;
  /** A team-shared cache (see docs/team-cache.md). */
  remote?: RemoteConfig;
  /** Default of every task's `stdin` (see TaskConfig.stdin). Default 'auto'. */
  stdin?: StdinMode;
  /**
   * When a save is acknowledged: 'strict' once it would survive a power loss (blobs and index
   * fsynced), 'fast' once it would survive a crash of the process (written, flushed to disk
   * shortly after). Default: strict for runs, fast for results saved through the SDK
   * (docs/guarantees.md).
   */
  durability?: Durability;
  /** Port of `taskvault ui` (its --port wins). Default 9999. */
  servicePort?: number;
  /** What an hour of the cached commands costs, for the dashboard's "cost saved" (docs/dashboard.md). */
  cost?: CostConfig;
  /** Prometheus metrics (docs/dashboard.md). */
  metrics?: MetricsConfig;
  /** The team index on PostgreSQL: every machine's runs in one place (see docs/team-index.md). */
  team?: TeamConfig;
}

/** See TaskVaultConfig.durability. */
export type Durability = 'strict' | 'fast';

export interface CostConfig {
  /** ISO 4217 code shown beside amounts, e.g. 'EUR'. Default 'USD'. */
  currency?: string;
  /** Price of one hour of a task's command, by task (or policy) name; `default` for the rest. */
  perHour: Record<string, number>;
}

export interface MetricsConfig {
  /**
   * Rewrite the Prometheus textfile after each run: true for .taskvault/metrics/prometheus.txt,
   * or a path (relative to the project root). Default false.
   */
  textfile?: boolean | string;
}

/**
 * Whether what a command reads on stdin is part of its key. 'auto': a pipe or file is read first
 * and keyed, but a pipe that stays open with nothing in it runs uncached; 'key': always read to
 * its end (waiting for it) and keyed; 'ignore': left alone and not keyed (as if it were a terminal).
 */
export type StdinMode = 'auto' | 'key' | 'ignore';

export type HashAlgorithm = 'blake3' | 'sha256';
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';

export interface TaskConfig {
  /** A string runs through the shell; an array is argv and runs without one. */
  command: string | string[];
  /** Globs of files the result depends on, relative to the task's cwd. Default: every file under cwd. */
  inputs?: string[];
  /** Globs of files the command produces, restored on a hit. */
  outputs?: string[];
  /** Names of environment variables whose values are part of the key. */
  env?: string[];
  /** Cache non-zero exits too (their logs and exit code). Default false. */
  cacheFailures?: boolean;
  /** Working directory relative to the project root. Default the root. */
  cwd?: string;
  /** Per-task policy; overrides policies[name] and policies.default field by field. */
  policy?: PolicyConfig;
  /** Whether stdin is part of the key (see StdinMode). Default: the top-level `stdin`, else 'auto'. */
  stdin?: StdinMode;
}

export interface PolicyConfig {
  /** Entries older than this are misses and are removed. Seconds, or a string like '7d'. */
  ttlSeconds?: number | string;
  /** Entries larger than this are not stored. Bytes, or a string like '500MB'. */
  maxSizeBytes?: number | string;
  /** Which entries go first when the cache is over its limit. */
  strategy?: 'lru';
}

export interface RemoteConfig {
  /**
   * http(s)://host[:port]/prefix (Bazel HTTP cache layout), s3://bucket/prefix,
   * azure://account/container/prefix, turbo+http(s)://host (Turborepo remote cache API) or
   * nx+http(s)://host (Nx self-hosted remote cache API).
   */
  url: string;
  /** The API an http(s):// url speaks: 'bazel' (default), 'turbo' or 'nx' (same as the url prefixes). */
  protocol?: 'bazel' | 'turbo' | 'nx';
  /** Turborepo: the team (an id starting with `team_` is sent as teamId, anything else as slug). */
  team?: string;
  /** Read but never write (e.g. for pull-request CI jobs). */
  readOnly?: boolean;
  /** Bearer token for HTTP remotes (prefer the TASKVAULT_REMOTE_TOKEN env var). */
  token?: string;
  /** S3: endpoint override for MinIO, R2, GCS interop. */
  endpoint?: string;
  /** S3: region override. */
  region?: string;
  /** Per-request idle timeout in milliseconds. Default 5000. */
  timeoutMs?: number;
}

/** Identity helper that gives config files type checking and editor completion. */
export function defineConfig(config: TaskVaultConfig): TaskVaultConfig {
  return config;
}

export interface TeamConfig {
  /** postgres://user:password@host:port/db (prefer TASKVAULT_TEAM_DATABASE for the password). */
  database: string;
}

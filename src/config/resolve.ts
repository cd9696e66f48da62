import { existsSync } from 'node:fs';
import { basename, isAbsolute, relative, resolve } from 'node:path';
import { parseDuration, parseSize } from '../util/format.js';
import { isInside, toPosix } from '../util/paths.js';
import { err, failure, ok, type Result } from '../util/result.js';
import { loadConfig } from './load.js';
import { type RemoteSettings, resolveRemote } from './remote.js';
import { findProject } from './root.js';
import { resolveTeam, type TeamSettings } from './team.js';
import type {
  Durability,
  HashAlgorithm,
  LogLevel,
  PolicyConfig,
  StdinMode,
  TaskVaultConfig,
} from './types.js';
import { isEnvName } from './validate.js';

export const DEFAULT_CACHE_DIR = '.taskvault/cache';
export const DEFAULT_MAX_SIZE_GB = 10;
export const DEFAULT_TTL_MS = 7 * 86400_000;
export const DEFAULT_LOW_WATER_MARK = 0.5;
/** policies.default.maxSizeBytes when unset: results over 100 MiB are not stored. */
export const DEFAULT_MAX_ENTRY_BYTES = 104_857_600;

/** Where the cache is and how it behaves, after config file, env vars and flags are merged. */
export interface Settings {
  root: string;
  configPath?: string;
  config: TaskVaultConfig;
  cacheDir: string;
  hashAlgorithm: HashAlgorithm;
  maxSizeBytes: number;
  lowWaterMark: number;
  logLevel: LogLevel;
  salt: string;
  /** TASKVAULT_DISABLE=1 or --no-cache: run commands straight through. */
  disabled: boolean;
  /**
   * When a save counts as done (config `durability`, TASKVAULT_DURABILITY); unset: strict for
   * runs, fast for SDK results (durabilityOf).
   */
  durability?: Durability;
  /** The team cache, when one is configured (config `remote` and TASKVAULT_REMOTE_* env). */
  remote?: RemoteSettings;
  /** The team index on PostgreSQL (config `team` and TASKVAULT_TEAM_DATABASE). */
  team?: TeamSettings;
}

export interface Policy {
  ttlMs: number;
  maxEntryBytes: number;
  strategy: 'lru';
}

/** Everything needed to fingerprint and run one task. Paths are absolute. */
export interface TaskSpec {
  /** Task name from config or the command line; '' for an anonymous `run -- cmd`. */
  name: string;
  command: string[];
  /** Run `command[0]` through the system shell (a command string) instead of as argv. */
  shell: boolean;
  cwd: string;
  root: string;
  /** Input globs relative to cwd; undefined means every file under cwd (minus outputs). */
  inputs: string[] | undefined;
  outputs: string[];
  env: string[];
  cacheFailures: boolean;
  policy: Policy;
  /** Whether `run` reads stdin into the key (runner/stdin.ts). */
  stdin: StdinMode;
}

export interface SettingsOverrides {
  cwd?: string;
  cacheDir?: string;
  hashAlgorithm?: string;
  durability?: string;
  /** Load this config file instead of searching upward. */
  configPath?: string;
  noCache?: boolean;
  env?: NodeJS.ProcessEnv;
}

const truthy = (v: string | undefined): boolean => v !== undefined && v !== '' && v !== '0' && v !== 'false';

export async function resolveSettings(o: SettingsOverrides = {}): Promise<Result<Settings>> {
  const env = o.env ?? process.env;
  const cwd = resolve(o.cwd ?? process.cwd());
  const located = o.configPath
    ? { root: resolve(o.configPath, '..'), configPath: resolve(o.configPath) }
    : findProject(cwd);
  let config: TaskVaultConfig = {};
  if (located.configPath) {
    const loaded = await loadConfig(located.configPath);
    if (!loaded.ok) return loaded;
    config = loaded.value;
  }
  const algo = chosen(['blake3', 'sha256'] as const, 'hash algorithm', [
    ['the hash algorithm option', o.hashAlgorithm],
    ['TASKVAULT_HASH_ALGORITHM', env.TASKVAULT_HASH_ALGORITHM],
    ['hashAlgorithm', config.hashAlgorithm ?? 'blake3'],
  ]);
  if (!algo.ok) return algo;
  const durability = chosen(['strict', 'fast'] as const, 'durability', [
    ['the durability option', o.durability],
    ['TASKVAULT_DURABILITY', env.TASKVAULT_DURABILITY],
    ['durability', config.durability],
  ]);
  if (!durability.ok) return durability;
  const cacheDirText = o.cacheDir ?? env.TASKVAULT_CACHE_DIR ?? config.cacheDir ?? DEFAULT_CACHE_DIR;
  const settings: Settings = {
    root: located.root,
    config,
    cacheDir: isAbsolute(cacheDirText) ? cacheDirText : resolve(located.root, cacheDirText),
    hashAlgorithm: algo.value!,
    maxSizeBytes: Math.round((config.maxSizeGb ?? DEFAULT_MAX_SIZE_GB) * 1e9),
    lowWaterMark: config.lowWaterMark ?? DEFAULT_LOW_WATER_MARK,
    logLevel: config.logLevel ?? 'info',
    salt: config.salt ?? '',
    disabled: o.noCache === true || truthy(env.TASKVAULT_DISABLE),
  };
  if (located.configPath) settings.configPath = located.configPath;
  if (durability.value !== undefined) settings.durability = durability.value;
  const remote = resolveRemote(config.remote, env);
  if (remote) settings.remote = remote;
  const team = resolveTeam(config.team, env);
  if (team) settings.team = team;
  return ok(settings);
}

/**
 * The first of `sources` ([where, value], by precedence) that is set, if it is one of `allowed`;
 * else one line naming where the bad value came from.
 */
function chosen<T extends string>(
  allowed: readonly T[],
  what: string,
  sources: Array<[where: string, value: string | undefined]>,
): Result<T | undefined> {
  const found = sources.find(([, value]) => value !== undefined);
  if (!found) return ok(undefined);
  const [where, value] = found;
  if ((allowed as readonly string[]).includes(value!)) return ok(value as T);
  return err(
    failure(
      'config',
      `${where}: unknown ${what} '${value}'`,
      `use ${allowed.map((a) => `'${a}'`).join(' or ')}`,
    ),
  );
}

/**
 * How a save of this kind is made durable: the setting, else strict for a run's entry (a few
 * fsyncs are small beside the command it saves) and fast for an SDK result (where they are most
 * of the save: ~9 ms against ~0.2 ms; bench/python).
 */
export function durabilityOf(settings: Pick<Settings, 'durability'>, kind: 'run' | 'result'): Durability {
  return settings.durability ?? (kind === 'run' ? 'strict' : 'fast');
}

export function isQuiet(settings: Settings, flag: boolean | undefined, env = process.env): boolean {
  return (
    flag === true ||
    truthy(env.TASKVAULT_QUIET) ||
    settings.logLevel === 'silent' ||
    settings.logLevel === 'error'
  );
}

/** Field-by-field merge: task's own policy, then policies[task], then policies.default, then defaults. */
export function resolvePolicy(
  settings: Pick<Settings, 'config'>,
  task: string,
  own?: PolicyConfig,
  flags?: PolicyFlags,
): Result<Policy> {
  const layers = [settings.config.policies?.default, settings.config.policies?.[task], own].filter(
    (p): p is PolicyConfig => p !== undefined,
  );
  let ttl: number | string | undefined;
  let max: number | string | undefined;
  for (const layer of layers) {
    if (layer.ttlSeconds !== undefined) ttl = layer.ttlSeconds;
    if (layer.maxSizeBytes !== undefined) max = layer.maxSizeBytes;
  }
  if (flags?.ttl !== undefined) ttl = flags.ttl;
  if (flags?.maxEntrySize !== undefined) max = flags.maxEntrySize;
  const ttlMs =
    ttl === undefined ? DEFAULT_TTL_MS : typeof ttl === 'number' ? ttl * 1000 : parseDuration(ttl);
  if (ttlMs === undefined || ttlMs <= 0) {
    return err(
      failure('usage', `invalid TTL ${JSON.stringify(ttl)}`, "use seconds or a duration like '2h', '7d'"),
    );
  }
  const maxEntryBytes =
    max === undefined ? DEFAULT_MAX_ENTRY_BYTES : typeof max === 'number' ? max : parseSize(max);
  if (maxEntryBytes === undefined || maxEntryBytes <= 0) {
    return err(
      failure('usage', `invalid size ${JSON.stringify(max)}`, "use bytes or a size like '500MB', '10GB'"),
    );
  }
  return ok({ ttlMs, maxEntryBytes, strategy: 'lru' });
}

export interface PolicyFlags {
  ttl?: string;
  maxEntrySize?: string;
}

export interface TaskFlags extends PolicyFlags {
  inputs?: string[];
  outputs?: string[];
  env?: string[];
  shell?: boolean;
  cacheFailures?: boolean;
  cwd?: string;
  stdin?: string;
}

/**
 * Turns `run [TASK] [flags] -- [cmd...]` into a TaskSpec. A configured task's command gets `args`
 * appended; without a configured task, `args` is the command. Flags override the task's config.
 */
export function resolveTask(
  settings: Settings,
  taskName: string | undefined,
  args: string[],
  flags: TaskFlags,
): Result<TaskSpec> {
  const tasks = settings.config.tasks ?? {};
  const configured = taskName !== undefined && Object.hasOwn(tasks, taskName) ? tasks[taskName] : undefined;
  if (taskName !== undefined && !configured && args.length === 0) {
    const known = Object.keys(settings.config.tasks ?? {});
    return err(
      failure(
        'unknown-task',
        `unknown task '${taskName}'${settings.configPath ? '' : ': no taskvault.config.ts found'}`,
        known.length
          ? `known tasks: ${known.join(', ')}`
          : 'define it under tasks in taskvault.config.ts, or give a command after --',
      ),
    );
  }
  let command: string[];
  let shell: boolean;
  if (configured) {
    if (typeof configured.command === 'string') {
      // Appended args are quoted so they reach the command as the user typed them.
      command = [[configured.command, ...args.map(shellQuote)].join(' ')];
      shell = true;
    } else {
      command = [...configured.command, ...args];
      shell = flags.shell === true;
    }
  } else {
    if (args.length === 0) {
      return err(
        failure('usage', 'no command given', 'usage: taskvault run [TASK] [options] -- <cmd> [args...]'),
      );
    }
    // One argument that looks like shell code ('npm test && echo ok') runs through the shell,
    // unless it names a file that exists ('./my script.sh').
    shell =
      flags.shell === true ||
      (args.length === 1 &&
        /[\s|&;<>()$`*?[\]{}~'"\\]/.test(args[0]!) &&
        !existsSync(
          resolve(flags.cwd !== undefined ? resolve(settings.root, flags.cwd) : process.cwd(), args[0]!),
        ));
    command = shell ? [args.join(' ')] : args;
    if (command[0]!.trim() === '') {
      return err(
        failure(
          'usage',
          args.join('').trim() === ''
            ? 'the command after -- is empty'
            : `the program name after -- is empty (${args.map((a) => JSON.stringify(a)).join(' ')})`,
          'usage: taskvault run [TASK] [options] -- <cmd> [args...]',
        ),
      );
    }
  }
  const badEnv = flags.env?.find((n) => !isEnvName(n));
  if (badEnv !== undefined) {
    return err(
      failure(
        'usage',
        `--env ${JSON.stringify(badEnv)} is not an environment variable name`,
        'give one name per --env, e.g. --env NODE_ENV',
      ),
    );
  }
  const stdin = flags.stdin ?? configured?.stdin ?? settings.config.stdin ?? 'auto';
  if (stdin !== 'auto' && stdin !== 'key' && stdin !== 'ignore') {
    return err(
      failure(
        'usage',
        `--stdin ${JSON.stringify(stdin)} is not a stdin mode`,
        "use 'auto', 'key' or 'ignore'",
      ),
    );
  }
  const name = taskName ?? '';
  const policy = resolvePolicy(settings, name, configured?.policy, flags);
  if (!policy.ok) return policy;
  const cwdText = flags.cwd ?? configured?.cwd;
  const cwd =
    cwdText !== undefined ? resolve(settings.root, cwdText) : configured ? settings.root : process.cwd();
  // Entries record cwd from the root: one outside it would be stored, then refused by every restore.
  const root = settings.root;
  const inConfig = `${basename(settings.configPath ?? '')}: tasks.${name}`;
  if (!isInside(root, cwd)) {
    return err(
      flags.cwd !== undefined
        ? failure('usage', `--cwd must be inside the project root (${root})`)
        : cwdText !== undefined
          ? failure('config', `${inConfig}.cwd must be inside the project root (${root})`)
          : failure(
              'usage',
              `the working directory must be inside the project root (${root})`,
              'run from inside the project, or pass --cwd',
            ),
    );
  }
  const outputs = (flags.outputs?.length ? flags.outputs : (configured?.outputs ?? [])).map((g) =>
    rebaseInsideRoot(g, cwd, root),
  );
  const badOutput = outputs.map((g) => outputGlobProblem(g, cwd, root)).find((p) => p !== undefined);
  if (badOutput) {
    return err(
      flags.outputs?.length
        ? failure('usage', `--outputs ${badOutput}`, OUTPUT_GLOB_HINT)
        : failure('config', `${inConfig}.outputs: ${badOutput}`, OUTPUT_GLOB_HINT),
    );
  }
  const spec: TaskSpec = {
    name,
    command,
    shell,
    cwd,
    root,
    inputs: flags.inputs?.length ? flags.inputs : configured?.inputs,
    outputs,
    env: [...new Set([...(configured?.env ?? []), ...(flags.env ?? [])])].sort(),
    cacheFailures: flags.cacheFailures ?? configured?.cacheFailures ?? false,
    policy: policy.value,
    stdin,
  };
  return ok(spec);
}

const OUTPUT_GLOB_HINT =
  'outputs are stored and restored inside the project: give them relative to the working directory';

/**
 * Why an output glob cannot be used, if it cannot: outputs are recorded from the project root and
 * restored under it, so a glob that is absolute or climbs out of the root (its `..` resolved as in
 * a path) could only match files that the snapshot then refuses, after the command has run.
 */
function outputGlobProblem(glob: string, cwd: string, root: string): string | undefined {
  const g = glob.startsWith('!') ? glob.slice(1) : glob;
  if (isAbsolute(g)) return `'${glob}' is an absolute path outside the project root (${root})`;
  if (!isInside(root, resolve(cwd, g))) return `'${glob}' reaches outside the project root (${root})`;
  return undefined;
}

/**
 * An absolute output glob inside the root (`$(CURDIR)/dist/**` in a Makefile) made relative to the
 * working directory, as a relative glob would be written; anything else is left as it is.
 */
function rebaseInsideRoot(glob: string, cwd: string, root: string): string {
  const negated = glob.startsWith('!');
  const g = negated ? glob.slice(1) : glob;
  if (!isAbsolute(g) || !isInside(root, g)) return glob;
  const rel = toPosix(relative(cwd, g)) || '.';
  return negated ? `!${rel}` : rel;
}

export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A short human label for a task: its name, or its command line. */
export function taskLabel(spec: Pick<TaskSpec, 'name' | 'command'>): string {
  if (spec.name) return spec.name;
  const line = spec.command.join(' ');
  return line.length > 40 ? `${line.slice(0, 37)}...` : line;
}

import type { CAC } from 'cac';
import type { TaskFlags } from '../config/resolve.js';
import { type CommonFlags, list, withCommonOptions } from './shared.js';

/*
 * The flags that describe a task, shared by run, explain and watch (run.ts and watch.ts both use
 * them; neither imports the other, except run.ts loading watch.ts on demand).
 */

export interface RunFlags extends CommonFlags {
  '--': string[];
  inputs?: unknown;
  outputs?: unknown;
  env?: unknown;
  shell?: boolean;
  cacheFailures?: boolean;
  force?: boolean;
  cache?: boolean;
  dryRun?: boolean;
  ttl?: string;
  maxEntrySize?: string;
  cwd?: string;
  stdin?: string;
}

export function taskFlags(flags: RunFlags): TaskFlags {
  const t: TaskFlags = {};
  const inputs = list(flags.inputs, 'inputs');
  const outputs = list(flags.outputs, 'outputs');
  const env = list(flags.env, 'env');
  if (inputs) t.inputs = inputs;
  if (outputs) t.outputs = outputs;
  if (env) t.env = env;
  if (flags.shell) t.shell = true;
  if (flags.cacheFailures) t.cacheFailures = true;
  if (flags.ttl !== undefined) t.ttl = String(flags.ttl);
  if (flags.maxEntrySize !== undefined) t.maxEntrySize = String(flags.maxEntrySize);
  if (flags.cwd !== undefined) t.cwd = String(flags.cwd);
  if (flags.stdin !== undefined) t.stdin = String(flags.stdin);
  return t;
}

/**
 * Values of repeatable options stay strings (as with String), but a flag given
 * without a value stays `true`, so that list() rejects it instead of using the glob or name "true".
 */
const keepMissing = (v: unknown): unknown => (v === true ? v : String(v));

/** Options that describe a task: shared by run, explain and watch. */
export function withTaskOptions<T extends ReturnType<CAC['command']>>(cmd: T): T {
  return withCommonOptions(cmd)
    .option('--inputs <glob>', 'Input files (repeatable); default: every file under the working directory', {
      type: [keepMissing],
    })
    .option('--outputs <glob>', 'Output files to cache and restore (repeatable)')
    .option('--env <name>', 'Environment variable whose value is part of the key (repeatable)', {
      type: [keepMissing],
    })
    .option('--shell', 'Run the command through the system shell (joined with spaces)')
    .option('--cwd <dir>', 'Working directory for the command, relative to the project root')
    .option('--cache-failures', 'Cache non-zero exits as well') as T;
}

/** `taskvault run --watch` adds these to the run flags. */
export interface WatchFlags extends RunFlags {
  watch?: boolean;
  restart?: boolean;
  poll?: boolean;
  debounce?: string | number;
}

import type { CAC } from 'cac';
import { isQuiet, resolveTask, type TaskFlags, taskLabel } from '../config/resolve.js';
import { type RunOutcome, runTask } from '../runner/run-task.js';
import { formatBytes, formatDuration } from '../util/format.js';
import { color, info, warn } from '../util/term.js';
import { clockFromEnv } from './clock.js';
import { enterRun } from './recursion.js';
import {
  action,
  type CommonFlags,
  list,
  report,
  settingsFor,
  withCommonOptions,
  withQuietOption,
  writeJson,
} from './shared.js';
import type { WatchFlags } from './watch.js';

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

export function registerRun(cli: CAC): void {
  withQuietOption(withTaskOptions(cli.command('run [task]', 'Run a command or named task through the cache')))
    .usage('run [TASK] [options] -- <cmd> [args...]')
    .option('--force', 'Run even if cached, and store the new result')
    .option('--no-cache', 'Run without the cache at all (env TASKVAULT_DISABLE=1)')
    .option('--dry-run', 'Print the key and whether it would hit; run nothing')
    .option('--ttl <duration>', "Override the policy's TTL, e.g. 2h, 7d")
    .option('--max-entry-size <size>', "Override the policy's per-entry size limit, e.g. 500MB")
    .option(
      '--stdin <mode>',
      'Piped stdin in the key: auto (default; uncached if it stays open), key, ignore',
    )
    .option('--watch', 'Run, then run again through the cache whenever an input or the config changes')
    .option('--restart', 'With --watch: stop a running command when inputs change, and start over')
    .option('--poll', 'With --watch: poll for changes (network mounts, some containers)')
    .option('--debounce <ms>', 'With --watch: run once changes have been quiet this long (default 100)')
    .example('taskvault run --inputs "src/**" --outputs "dist/**" -- tsc -p .')
    .example("taskvault run -- 'npm test && echo ok'")
    .example('taskvault run build -- --verbose')
    .example('taskvault run --watch test')
    .action(action(run));
}

async function run(
  task: string | undefined,
  flags: WatchFlags,
): Promise<number | import('../util/result.js').Failure> {
  // Imported only when asked for: chokidar must not load on the hit path.
  if (flags.watch || flags.restart || flags.poll || flags.debounce !== undefined)
    return (await import('./watch.js')).runWatch(task, flags);
  const settings = await settingsFor(flags, flags.cache === false ? { noCache: true } : {});
  const spec = resolveTask(settings, task, flags['--'] ?? [], taskFlags(flags));
  if (!spec.ok) return spec.error;
  const recursion = flags.dryRun ? undefined : enterRun(spec.value, taskLabel(spec.value));
  if (recursion) return recursion;
  const quiet = isQuiet(settings, flags.quiet);
  const outcome = await runTask(settings, spec.value, {
    force: flags.force === true,
    dryRun: flags.dryRun === true,
    stdin: spec.value.stdin,
    now: clockFromEnv(),
    reporter: { warn, info: (m) => !quiet && info(m) },
  });
  const label = taskLabel(spec.value);
  if (outcome.kind === 'failed') return report(outcome.failure);
  if (outcome.kind === 'dry-run') {
    if (flags.json) writeJson({ key: outcome.key, hit: outcome.hit, fingerprint: outcome.fingerprint });
    else process.stdout.write(`${outcome.key} ${outcome.hit ? 'hit' : 'miss'}\n`);
    return 0;
  }
  const forced = flags.force === true;
  if (flags.json) process.stderr.write(`${JSON.stringify(summaryJson(outcome, label, forced))}\n`);
  else if (!quiet) process.stderr.write(`${summaryLine(outcome, label, forced)}\n`);
  // Off the hit path unless asked for: refreshing opens the index (docs/dashboard.md).
  if (settings.config.metrics?.textfile && !settings.disabled)
    await (await import('../ui/textfile.js')).refreshTextfile(settings, warn);
  return outcome.exitCode;
}

type Ran = Exclude<RunOutcome, { kind: 'failed' } | { kind: 'dry-run' }>;

function summaryJson(o: Ran, task: string, forced: boolean): Record<string, unknown> {
  return forced ? { task, forced, ...o } : { task, ...o };
}

const files = (n: number, bytes: number): string => `${n} file${n === 1 ? '' : 's'} (${formatBytes(bytes)})`;

/**
 * The one line a run leaves on stderr. Why nothing was cached is left out when a warning has just
 * said it (the outcome is `warned`), so each cause is printed once. A --force run says `forced`.
 */
export function summaryLine(o: Ran, task: string, forced = false): string {
  const tag = color.dim('taskvault:');
  const key = (k: string) => color.cyan(k.slice(0, 10));
  switch (o.kind) {
    case 'hit':
      return `${tag} ${color.green('hit')}${o.origin === 'remote' ? ' (remote)' : ''} ${key(o.key)} ${task} · ${o.files === 0 ? 'replayed the logs' : `restored ${files(o.files, o.bytes)}`} in ${formatDuration(o.restoreMs)} · saved ${formatDuration(o.savedMs)}`;
    case 'miss':
      // --force ran the command whether or not it was cached: not a miss.
      return `${tag} ${color.yellow(forced ? 'forced' : 'miss')} ${key(o.key)} ${task} · ran in ${formatDuration(o.durationMs)} · ${
        o.stored
          ? o.files === 0
            ? 'cached its logs and exit code'
            : `cached ${files(o.files, o.bytes)}`
          : o.warned
            ? 'not cached'
            : `not cached: ${o.notStored}`
      }`;
    case 'uncached':
      return `${tag} ran uncached ${task} in ${formatDuration(o.durationMs)}${o.warned ? '' : ` (${o.reason})`}`;
  }
}

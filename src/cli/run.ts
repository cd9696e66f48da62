import type { CAC } from 'cac';
import { isQuiet, resolveTask, type Settings, taskLabel } from '../config/resolve.js';
import type { ResidentAnswer } from '../fingerprint/resident.js';
import { remoteTier } from '../remote/tier.js';
import { runTask } from '../runner/lookup.js';
import { reraiseAtExit } from '../util/process.js';
import { info, keepOutputExact, ownLine, warn } from '../util/term.js';
import { clockFromEnv } from './clock.js';
import { enterRun } from './recursion.js';
import { action, report, settingsFor, withQuietOption, writeJson } from './shared.js';
import { summaryJson, summaryLine } from './summary.js';
import { taskFlags, type WatchFlags, withTaskOptions } from './task-flags.js';

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
  if (flags.json) keepOutputExact();
  if (flags.watch || flags.restart || flags.poll || flags.debounce !== undefined)
    return (await import('./watch.js')).runWatch(task, flags);
  const settings = await settingsFor(flags, flags.cache === false ? { noCache: true } : {});
  const spec = resolveTask(settings, task, flags['--'] ?? [], taskFlags(flags));
  if (!spec.ok) return spec.error;
  const recursion = flags.dryRun ? undefined : enterRun(spec.value, taskLabel(spec.value));
  if (recursion) return recursion;
  const quiet = isQuiet(settings, flags.quiet);
  let daemon: ResidentAnswer | undefined;
  const outcome = await runTask(settings, spec.value, {
    onDaemonAnswer: (answer) => {
      daemon = answer;
    },
    force: flags.force === true,
    dryRun: flags.dryRun === true,
    stdin: spec.value.stdin,
    now: clockFromEnv(),
    reporter: { warn, info: (m) => !quiet && info(m) },
    remote: remoteTier(settings),
  });
  const label = taskLabel(spec.value);
  if (process.env.TASKVAULT_DAEMON === 'auto' && !flags.dryRun) await autoStartDaemon(settings, daemon);
  if (settings.team && !flags.dryRun) {
    // Only with a team index: the module (and its fs appends) stays off plain runs' path.
    const { recordRun } = await import('./team.js');
    recordRun(settings, outcome, { task: label, warn });
  }
  if (outcome.kind === 'failed') return report(outcome.failure);
  if (outcome.kind === 'dry-run') {
    if (flags.json) writeJson({ key: outcome.key, hit: outcome.hit, fingerprint: outcome.fingerprint });
    else process.stdout.write(`${outcome.key} ${outcome.hit ? 'hit' : 'miss'}\n`);
    return 0;
  }
  const forced = flags.force === true;
  if (flags.json) process.stderr.write(ownLine(JSON.stringify(summaryJson(outcome, label, forced))));
  else if (!quiet) process.stderr.write(ownLine(summaryLine(outcome, label, forced)));
  // Off the hit path unless asked for: refreshing opens the index (docs/dashboard.md).
  if (settings.config.metrics?.textfile && !settings.disabled)
    await (await import('../ui/textfile.js')).refreshTextfile(settings, warn);
  // Killed by a signal: TaskVault ends by the same one, once all is written (the exit code 128 + N
  // stays where it cannot).
  if (outcome.kind !== 'hit' && outcome.signal) reraiseAtExit(outcome.signal);
  return outcome.exitCode;
}

/**
 * TASKVAULT_DAEMON=auto: a run that found no daemon of its build (a first run, or one after the
 * last exited idle) starts one in the background for the next runs. Never fails the run.
 */
async function autoStartDaemon(settings: Settings, answer: ResidentAnswer | undefined): Promise<void> {
  if (answer === undefined || answer === 'unchanged') return;
  if (answer.why !== 'no daemon' && answer.build === undefined) return;
  try {
    const { startDaemon } = await import('../daemon/control.js');
    const { AUTO_IDLE_MINUTES } = await import('./daemon.js');
    const { cacheLayout } = await import('../store/layout.js');
    // Spawned, not waited for (waitMs 0): the daemon is for the next run.
    await startDaemon(cacheLayout(settings.cacheDir), {
      cwd: settings.root,
      idleMinutes: AUTO_IDLE_MINUTES,
      waitMs: 0,
    }).catch(() => {});
  } catch {
    // Could not start one (no processes left?): this and later runs walk, as without a daemon.
  }
}

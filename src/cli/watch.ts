import { relative } from 'node:path';
import {
  isQuiet,
  resolveSettings,
  resolveTask,
  type SettingsOverrides,
  taskLabel,
} from '../config/resolve.js';
import { signalExitCode } from '../runner/execute.js';
import { formatDuration } from '../util/format.js';
import { toPosix } from '../util/paths.js';
import { reraiseAtExit } from '../util/process.js';
import { err, type Failure, failure, ok } from '../util/result.js';
import { color, errorLine, info, ownLine, warn } from '../util/term.js';
import type { Change } from '../watch/changes.js';
import { type WatchEvents, watchTask } from '../watch/watch.js';
import { report } from './shared.js';
import { type Ran, summaryLine } from './summary.js';
import { taskFlags, type WatchFlags } from './task-flags.js';

export const DEFAULT_DEBOUNCE_MS = 100;

/** `taskvault run --watch`: parses the watch flags and prints what the loop reports. */
export async function runWatch(task: string | undefined, flags: WatchFlags): Promise<number | Failure> {
  if (!flags.watch) {
    const which = flags.restart ? '--restart' : flags.poll ? '--poll' : '--debounce';
    return failure('usage', `${which} only applies with --watch`, 'add --watch');
  }
  if (flags.dryRun) return failure('usage', '--dry-run cannot be combined with --watch');
  const debounceMs = flags.debounce === undefined ? DEFAULT_DEBOUNCE_MS : Number(flags.debounce);
  if (!Number.isInteger(debounceMs) || debounceMs < 0) {
    return failure(
      'usage',
      `invalid --debounce ${JSON.stringify(flags.debounce)}`,
      'give milliseconds, e.g. 200',
    );
  }
  // The same overrides settingsFor() applies, but failures come back as values so a broken config
  // during watching is one line and a wait rather than the end of the process.
  const overrides: SettingsOverrides = flags.cache === false ? { noCache: true } : {};
  if (flags.cacheDir !== undefined) overrides.cacheDir = String(flags.cacheDir);
  if (flags.config !== undefined) overrides.configPath = String(flags.config);

  const fromFlags = taskFlags(flags); // throws a usage FailureError once, up front, for a bad flag
  let quiet = false;
  const end = await watchTask({
    async resolve() {
      const settings = await resolveSettings(overrides);
      if (!settings.ok) return settings;
      const spec = resolveTask(settings.value, task, flags['--'] ?? [], fromFlags);
      if (!spec.ok) return err(spec.error);
      quiet = isQuiet(settings.value, flags.quiet);
      return ok({ settings: settings.value, spec: spec.value });
    },
    debounceMs,
    poll: flags.poll === true,
    restart: flags.restart === true,
    force: flags.force === true,
    reporter: { warn, info: (m) => !quiet && info(m) },
    events: printer(flags, () => quiet),
  });
  if (end.kind === 'failed') return end.failure;
  process.stderr.write(ownLine(`${tag()} stopped`));
  // Stopped by a signal: ends by it too, as `run` does, so a calling shell stops as well.
  reraiseAtExit(end.signal);
  return signalExitCode(end.signal);
}

const tag = () => color.dim('taskvault: watch:');

function printer(flags: WatchFlags, quiet: () => boolean): WatchEvents {
  return {
    cycleStart(cycle, { spec }) {
      const why =
        cycle.n === 1
          ? 'initial run'
          : `${cycle.configReloaded ? 'config re-read · ' : ''}${describeChanges(cycle.changes)}`;
      process.stderr.write(ownLine(`${tag()} ${color.bold(`#${cycle.n}`)} ${taskLabel(spec)} · ${why}`));
    },
    cycleEnd(cycle, { spec }, outcome, wallMs, cancelled) {
      if (outcome.kind === 'failed') {
        report(outcome.failure);
        return;
      }
      if (outcome.kind === 'dry-run') return;
      if (flags.json) process.stderr.write(`${JSON.stringify({ task: taskLabel(spec), ...outcome })}\n`);
      else if (!quiet()) process.stderr.write(ownLine(summaryLine(outcome, taskLabel(spec))));
      const result = cancelled
        ? color.yellow('cancelled for newer changes')
        : `${kindOf(outcome)} · exit ${outcome.exitCode === 0 ? '0' : color.red(String(outcome.exitCode))}`;
      process.stderr.write(
        ownLine(`${tag()} ${color.bold(`#${cycle.n}`)} ${result} · took ${formatDuration(wallMs)}`),
      );
    },
    configError(f) {
      errorLine(f.message, f.hint);
    },
    waiting(plan) {
      const globs = plan.globs.join(', ');
      process.stderr.write(
        ownLine(
          `${tag()} waiting for changes to ${globs.length > 60 ? `${globs.slice(0, 57)}...` : globs} (Ctrl-C to stop)`,
        ),
      );
    },
    watcherError(message) {
      warn(
        `watcher: ${message}${/ENOSPC|EMFILE/.test(message) ? ' (too many files to watch: try --poll)' : ''}`,
      );
    },
  };
}

function kindOf(o: Ran): string {
  if (o.kind === 'hit') return color.green('hit');
  if (o.kind === 'miss') return color.yellow('miss');
  return 'uncached';
}

const MAX_LISTED = 3;
const MAX_PATH = 50;

/** "changed src/a.ts, src/b.ts, removed x.ts, +4 more": the first few paths, each cut to fit. */
export function describeChanges(changes: Change[], cwd = process.cwd()): string {
  if (changes.length === 0) return 'no net change';
  const verb = { add: 'added', change: 'changed', unlink: 'removed' } as const;
  const shown = changes.slice(0, MAX_LISTED).map((c) => {
    const rel = toPosix(relative(cwd, c.path)) || '.';
    const cut = rel.length > MAX_PATH ? `...${rel.slice(-(MAX_PATH - 3))}` : rel;
    return `${verb[c.kind]} ${cut}`;
  });
  const more = changes.length - shown.length;
  return `${shown.join(', ')}${more > 0 ? `, +${more} more` : ''}`;
}

import type { CAC } from 'cac';
import { resolveSettings, type Settings, type SettingsOverrides } from '../config/resolve.js';
import { corruptIndex, corruptionText, isIndexCorruption } from '../store/index-errors.js';
import { EXIT_CODES, type Failure, FailureError, failure } from '../util/result.js';
import { errorLine } from '../util/term.js';

/** A command action returns the process exit code; failures it expects come back as values. */
export type Action<A extends unknown[]> = (...args: A) => Promise<number | Failure>;

export function report(f: Failure): number {
  errorLine(f.message, f.hint);
  return EXIT_CODES[f.reason];
}

/** Wraps an action so its result becomes process.exitCode and no stack trace reaches the user. */
export function action<A extends unknown[]>(fn: Action<A>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const r = await fn(...args);
      process.exitCode = typeof r === 'number' ? r : report(r);
    } catch (e) {
      if (e instanceof FailureError) {
        process.exitCode = report(e.failure);
        return;
      }
      // lmdb-js rejects a failed commit with "Commit failed" and the cause in a commitError promise.
      const inner = (e as { commitError?: Promise<unknown> } | undefined)?.commitError;
      const commitError = typeof inner?.then === 'function' ? inner : undefined;
      const cause = commitError
        ? await commitError.then(
            () => e,
            (x: unknown) => x,
          )
        : e;
      const message = cause instanceof Error ? cause.message : String(cause);
      if (isIndexCorruption(cause)) {
        process.exitCode = report(corruptIndex(undefined, corruptionText(cause)));
        return;
      }
      if (commitError) {
        process.exitCode = report(failure('cache', `the cache index could not be written: ${message}`));
        return;
      }
      errorLine(`internal error: ${message}`, 'please report this with TASKVAULT_DEBUG=1 output');
      if (process.env.TASKVAULT_DEBUG) console.error(e);
      process.exitCode = EXIT_CODES.internal;
    }
  };
}

/** Options every command that touches the cache accepts. */
export interface CommonFlags {
  cacheDir?: string;
  config?: string;
  json?: boolean;
  quiet?: boolean;
}

export function withCommonOptions<T extends ReturnType<CAC['command']>>(cmd: T): T {
  return cmd
    .option(
      '--cache-dir <dir>',
      'Cache directory (env TASKVAULT_CACHE_DIR; default .taskvault/cache under the project root)',
    )
    .option('--config <file>', 'Use this config file instead of searching upward for taskvault.config.*')
    .option('--json', 'Machine-readable output') as T;
}

/** `-q`: only for commands that print a summary line besides their real output. */
export function withQuietOption<T extends ReturnType<CAC['command']>>(cmd: T): T {
  return cmd.option('-q, --quiet', 'No summary line (env TASKVAULT_QUIET=1)') as T;
}

export async function settingsFor(flags: CommonFlags, extra: SettingsOverrides = {}): Promise<Settings> {
  const o: SettingsOverrides = { ...extra };
  if (flags.cacheDir !== undefined) o.cacheDir = String(flags.cacheDir);
  if (flags.config !== undefined) o.configPath = String(flags.config);
  const s = await resolveSettings(o);
  if (!s.ok) throw new FailureError(s.error);
  return s.value;
}

/**
 * cac gives a value for one use of a flag and an array for several; always take an array.
 * A bare flag with no value arrives as `true`, which is a usage error, not the glob "true".
 */
export function list(v: unknown, flag: string): string[] | undefined {
  if (v === undefined || v === false) return undefined;
  const values = Array.isArray(v) ? v : [v];
  if (values.some((x) => x === true || x === '')) {
    throw new FailureError(
      failure(
        'usage',
        `--${flag} needs a value`,
        `e.g. --${flag} ${flag === 'env' ? 'NODE_ENV' : "'src/**'"}`,
      ),
    );
  }
  return values.map(String);
}

/**
 * mri (inside cac) turns an empty option value into the number 0; catch `--flag ''` in the raw
 * argv before that happens. Only looks before `--`: the command's own arguments are never touched.
 */
export function findEmptyOptionValue(argv: string[]): string | undefined {
  const end = argv.indexOf('--') === -1 ? argv.length : argv.indexOf('--');
  for (let i = 1; i < end; i++) {
    if (argv[i] === '' && argv[i - 1]!.startsWith('--')) return argv[i - 1];
  }
  return undefined;
}

export function writeJson(value: unknown, stream: NodeJS.WriteStream = process.stdout): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}

import type { CAC } from 'cac';
import { cac } from 'cac';
import { commandsStarted } from '../runner/started.js';
import { useImporter } from '../util/import-module.js';
import { EXIT_CODES } from '../util/result.js';
import { errorLine } from '../util/term.js';
import { writesUnfinished } from '../util/unfinished.js';
import { useVendorLoader, type VendorPart } from '../util/vendor.js';
import { VERSION } from '../version.js';
import { guardClosedStdout } from './closed-stdout.js';
import { guardLmdbWriteFailures } from './lmdb-guard.js';
import { registerRun } from './run.js';
import { findEmptyOptionValue } from './shared.js';

/**
 * Each command's module, evaluated on demand: start-up time is most of a hit, so `run` is imported
 * statically and the others only when invoked; `--help` and unknown commands load them all. (The
 * build compiles all of them into one bundle, where each stays a lazily evaluated part.)
 */
const COMMANDS: Record<string, () => Promise<(cli: CAC) => void>> = {
  run: async () => registerRun,
  init: async () => (await import('./init.js')).registerInit,
  verify: async () => (await import('./verify.js')).registerVerify,
  cache: async () => (await import('./cache.js')).registerCache,
  stats: async () => (await import('./cache.js')).registerCache,
  ls: async () => (await import('./ls.js')).registerLs,
  explain: async () => (await import('./explain.js')).registerExplain,
  gc: async () => (await import('./gc.js')).registerGc,
  clean: async () => (await import('./gc.js')).registerGc,
  serve: async () => (await import('../serve/command.js')).registerServe,
  ui: async () => (await import('./ui.js')).registerUi,
  metrics: async () => (await import('./ui.js')).registerUi,
  audit: async () => (await import('./audit.js')).registerAudit,
  team: async () => (await import('./team.js')).registerTeam,
  daemon: async () => (await import('./daemon.js')).registerDaemon,
};

/**
 * The CLI: parses the arguments, runs the command and sets the exit code. It only parses and
 * prints; every command lives beside it in src/cli/. Started by the bin (src/cli.cts).
 */
export async function main(
  argv: string[] = process.argv,
  /** The bin's own import(), for what lies outside the bundle (util/import-module.ts). */
  importer?: (specifier: string) => Promise<unknown>,
  /** The bin's loader for dist/vendor/*.cjs, with their code caches (util/vendor.ts). */
  requireVendor?: (part: VendorPart) => unknown,
): Promise<{ ranCommand: boolean; exitNow: boolean }> {
  guardLmdbWriteFailures();
  guardClosedStdout();
  if (importer) useImporter(importer);
  if (requireVendor) useVendorLoader(requireVendor);
  const cli = cac('taskvault');
  const named = argv[2];
  // A bare --version needs no command at all (help and unknown commands need them all).
  const versionOnly = argv.length === 3 && (named === '--version' || named === '-v');
  const loaders = versionOnly
    ? []
    : named !== undefined && Object.hasOwn(COMMANDS, named)
      ? [COMMANDS[named]!]
      : [...new Set(Object.values(COMMANDS))];
  const registered = new Set<(cli: CAC) => void>();
  for (const register of await Promise.all(loaders.map((load) => load()))) {
    if (registered.has(register)) continue;
    registered.add(register);
    register(cli);
  }
  // cac labels every `--no-x` flag "(default: true)", which reads as if the flag were on by default.
  cli.help((sections) =>
    sections.map((s) => ({ ...s, body: s.body.replace(/^( +--no-.*?) *\(default: true\)$/gm, '$1') })),
  );
  cli.version(VERSION);

  try {
    const empty = findEmptyOptionValue(argv.slice(2));
    if (empty) throw new Error(`${empty} needs a non-empty value`);
    const end = ownArgsEnd(argv);
    // mri drops a lone '-' (stdin/stdout elsewhere), so `cache get t in -` would count two arguments.
    if (argv.slice(2, end).includes('-'))
      throw new Error("'-' (standard input or output) is not supported: name a file");
    cli.parse(
      joinNegativeValues(camelCaseFlags(argv, end), end, () => valueFlags(cli)),
      { run: false },
    );
    if (!cli.matchedCommand && cli.args.length > 0) {
      errorLine(`unknown command '${cli.args[0]}'`, "see 'taskvault --help'");
      process.exitCode = EXIT_CODES.usage;
    } else if (!cli.matchedCommand && !cli.options.help && !cli.options.version) {
      // cac checks options only for a matched command; `taskvault --bogus` would print help and exit 0.
      const unknown = Object.keys(cli.options).find((k) => k !== '--');
      if (unknown) {
        errorLine(
          `unknown option '${unknown.length === 1 ? '-' : '--'}${kebab(unknown)}'`,
          "see 'taskvault --help'",
        );
        process.exitCode = EXIT_CODES.usage;
      } else cli.outputHelp();
    } else {
      await cli.runMatchedCommand();
    }
  } catch (e) {
    // cac's own errors: unknown option, missing argument, unused argument.
    // cac names an unknown option in camelCase (`--maxEntrySize`); show it as it was typed.
    const message = (e instanceof Error ? e.message.replace(/`/g, "'") : String(e)).replace(
      /'--([a-z]+(?:[A-Z][a-z0-9]*)+)'/,
      (_, name: string) => `'--${kebab(name)}'`,
    );
    // The empty-value check runs before parsing, when no command has matched yet.
    const command = cli.matchedCommandName ?? (named && Object.hasOwn(COMMANDS, named) ? named : '');
    const hint =
      /Unused args/.test(message) && command === 'run'
        ? "put the command after '--', e.g. taskvault run -- echo hi"
        : `see 'taskvault ${command} --help'`.replace('  ', ' ');
    errorLine(message.charAt(0).toLowerCase() + message.slice(1), hint);
    process.exitCode = EXIT_CODES.usage;
  }
  // exitNow: a finished `run` whose writes are all done; the bin then exits without waiting for Node
  // to wind down (other commands, e.g. a watch, may leave work behind them on purpose).
  return {
    ranCommand: commandsStarted() > 0,
    exitNow: cli.matchedCommandName === 'run' && !writesUnfinished(),
  };
}

/**
 * cac tells its parser (mri) which flags are boolean by their camel-cased names (`dryRun`), so mri
 * took the word after `--dry-run` as its value and `run --dry-run build` lost the task name. Flags
 * are handed over as cac knows them (`--dryRun`); `--no-*` (negations, which mri reads itself) and
 * everything after `--` (the user's command) stay as typed.
 */
function camelCaseFlags(argv: string[], end: number): string[] {
  return argv.map((a, i) =>
    i >= end || a.startsWith('--no-')
      ? a
      : a.replace(
          /^--([a-z0-9]+(?:-[a-z0-9]+)+)(?==|$)/,
          (_, name: string) => `--${name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase())}`,
        ),
  );
}

/** The (camel-cased) names of every option that takes a value. */
function valueFlags(cli: CAC): Set<string> {
  const options = [cli.globalCommand, ...cli.commands].flatMap((c) => c.options);
  return new Set(options.filter((o) => o.required !== undefined).flatMap((o) => o.names));
}

/** Where TaskVault's own arguments end: at `--`, after which they are the command's. */
function ownArgsEnd(argv: string[]): number {
  const i = argv.indexOf('--');
  return i === -1 ? argv.length : i;
}

/**
 * mri reads `--ttl -5` as `--ttl` without a value and then an unknown option `-5`. A value that
 * looks like a negative number is joined to its option (`--ttl=-5`), as if typed so, and the
 * option's own check then says what is wrong with it. Only before `end`; the option list is read
 * only when such a value is there (not on every run).
 */
function joinNegativeValues(argv: string[], end: number, valueFlags: () => Set<string>): string[] {
  if (!argv.slice(0, end).some((a) => /^-\d/.test(a))) return argv;
  const valued = valueFlags();
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (i + 1 < end && /^--[^=]+$/.test(a) && valued.has(a.slice(2)) && next && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

#!/usr/bin/env node
import './compile-cache.js';
import { cac } from 'cac';
import { registerCache } from './cli/cache.js';
import { registerExplain } from './cli/explain.js';
import { registerGc } from './cli/gc.js';
import { registerInit } from './cli/init.js';
import { registerLs } from './cli/ls.js';
import { registerRun } from './cli/run.js';
import { findEmptyOptionValue } from './cli/shared.js';
import { registerVerify } from './cli/verify.js';
import { EXIT_CODES } from './util/result.js';
import { errorLine } from './util/term.js';
import { VERSION } from './version.js';

/** The CLI only parses arguments and prints results; every command lives in src/cli/. */
const cli = cac('taskvault');
registerRun(cli);
registerInit(cli);
registerVerify(cli);
registerCache(cli);
registerLs(cli);
registerExplain(cli);
registerGc(cli);
// cac labels every `--no-x` flag "(default: true)", which reads as if the flag were on by default.
cli.help((sections) =>
  sections.map((s) => ({ ...s, body: s.body.replace(/^( +--no-.*?) *\(default: true\)$/gm, '$1') })),
);
cli.version(VERSION);

try {
  const empty = findEmptyOptionValue(process.argv.slice(2));
  if (empty) throw new Error(`${empty} needs a non-empty value`);
  cli.parse(process.argv, { run: false });
  if (!cli.matchedCommand && cli.args.length > 0) {
    errorLine(`unknown command '${cli.args[0]}'`, "see 'taskvault --help'");
    process.exitCode = EXIT_CODES.usage;
  } else if (!cli.matchedCommand && !cli.options.help && !cli.options.version) {
    cli.outputHelp();
  } else {
    await cli.runMatchedCommand();
  }
} catch (e) {
  // cac's own errors: unknown option, missing argument, unused argument.
  // cac names an unknown option in camelCase (`--maxEntrySize`); show it as it was typed.
  const message = (e instanceof Error ? e.message.replace(/`/g, "'") : String(e)).replace(
    /'--([a-z]+(?:[A-Z][a-z0-9]*)+)'/,
    (_, name: string) => `'--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}'`,
  );
  const hint = /Unused args/.test(message)
    ? "put the command after '--', e.g. taskvault run -- echo hi"
    : `see 'taskvault ${cli.matchedCommandName ?? ''} --help'`.replace('  ', ' ');
  errorLine(message.charAt(0).toLowerCase() + message.slice(1), hint);
  process.exitCode = EXIT_CODES.usage;
}

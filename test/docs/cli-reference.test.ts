/**
 * docs/cli.md against the built CLI: every command `taskvault --help` lists has a section, every flag
 * a command's `--help` lists is documented for it, every flag the docs give `run` exists, and the exit
 * code table matches the codes the CLI uses.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXIT_CODES } from '../../src/util/result.js';
import { REPO, runCli, tempDir } from '../support/helpers.js';

const CLI_MD = readFileSync(join(REPO, 'docs/cli.md'), 'utf8');
/** The conventions before the first `## `: flags every command takes are documented there once. */
const PREAMBLE = CLI_MD.slice(0, CLI_MD.indexOf('\n## '));

/** The `## \`taskvault NAME\`` section of docs/cli.md (with its ### subsections). */
function sectionOf(command: string): string {
  const start = CLI_MD.indexOf(`\n## \`taskvault ${command}\`\n`);
  assert.ok(start >= 0, `docs/cli.md has no section "## \`taskvault ${command}\`"`);
  const end = CLI_MD.indexOf('\n## ', start + 1);
  return CLI_MD.slice(start, end < 0 ? undefined : end);
}

async function help(args: string[]): Promise<string> {
  const r = await runCli([...args, '--help'], { cwd: tempDir() });
  assert.is(r.code, 0, r.err);
  return r.out;
}

/** The long flags an `--help` text lists under Options, without --help itself. */
const flagsIn = (helpText: string): string[] =>
  [...helpText.matchAll(/^\s+(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]!).filter((f) => f !== '--help');

test('every command of `taskvault --help` has a section in docs/cli.md', async () => {
  const top = await help([]);
  const commands = [...top.slice(top.indexOf('Commands:')).matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]!);
  assert.ok(commands.length >= 9, top);
  for (const command of commands) sectionOf(command);
});

test("every flag of each command's --help is documented for that command", async () => {
  const top = await help([]);
  const commands = [...top.slice(top.indexOf('Commands:')).matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]!);
  for (const command of commands) {
    const text = PREAMBLE + sectionOf(command);
    const flags = flagsIn(await help([command]));
    assert.ok(flags.length > 0 || command === 'init', `${command}: no flags found in its --help`);
    for (const flag of flags)
      assert.ok(text.includes(`\`${flag}`), `docs/cli.md does not document ${flag} of ${command}`);
  }
});

test("every flag in the docs' table of `run` exists in `run --help`", async () => {
  const known = new Set(flagsIn(await help(['run'])));
  const table = sectionOf('run')
    .split('\n')
    .filter((l) => l.startsWith('| `-'));
  assert.ok(table.length >= 15, 'the run flag table is missing');
  for (const row of table)
    for (const [, flag] of row.split('|')[1]!.matchAll(/`(--[\w-]+)/g))
      assert.ok(known.has(flag!), `docs/cli.md documents ${flag}, which run --help does not list`);
});

test('the exit code table has every code the CLI uses', () => {
  const table = CLI_MD.slice(CLI_MD.indexOf('\n## Exit codes\n'));
  const documented = new Set([...table.matchAll(/^\| (\d+)(?: \/ (\d+))? +\|/gm)].flatMap((m) => m.slice(1)));
  for (const [reason, code] of Object.entries(EXIT_CODES))
    assert.ok(documented.has(String(code)), `exit code ${code} (${reason}) is not in docs/cli.md`);
});

test.run();

import type { CAC } from 'cac';
import { EXIT_CODES } from '../util/result.js';
import { errorLine } from '../util/term.js';
import { frameWriter, serve } from './service.js';

interface ServeFlags {
  stdio?: boolean;
  cacheDir?: string | string[];
  config?: string | string[];
}

/**
 * `taskvault serve --stdio`: the long-lived service the Python SDK starts (docs/serve-protocol.md).
 * Registered by src/cli/main.ts; lives here because it is an entry point of its own.
 */
export function registerServe(cli: CAC): void {
  cli
    .command('serve', 'Answer SDK requests over stdin/stdout (used by the Python SDK)')
    .option('--stdio', 'Framed requests on stdin, replies on stdout (docs/serve-protocol.md)')
    .option(
      '--cache-dir <dir>',
      'Cache directory (env TASKVAULT_CACHE_DIR; default .taskvault/cache under the project root)',
    )
    .option('--config <file>', 'Use this config file instead of searching upward for taskvault.config.*')
    .action(async (flags: ServeFlags) => {
      if (flags.stdio !== true) {
        errorLine('serve needs --stdio', 'stdin/stdout is the only transport: taskvault serve --stdio');
        process.exitCode = EXIT_CODES.usage;
        return;
      }
      const options: { cacheDir?: string; configPath?: string } = {};
      for (const [flag, value, key] of [
        ['--cache-dir', flags.cacheDir, 'cacheDir'],
        ['--config', flags.config, 'configPath'],
      ] as const) {
        if (value === undefined) continue;
        // cac makes an array of a repeated flag, which String() would join into one path ("a,b").
        if (Array.isArray(value)) {
          errorLine(`serve: ${flag} given ${value.length} times`, 'give it once');
          process.exitCode = EXIT_CODES.usage;
          return;
        }
        options[key] = String(value);
      }
      // The client went away (its end of the pipe closed): nothing is left to answer.
      process.stdout.on('error', () => process.exit(0));
      try {
        await serve(process.stdin, frameWriter(process.stdout), options);
      } catch (e) {
        errorLine(`serve: ${e instanceof Error ? e.message : String(e)}`, 'the client broke the protocol');
        process.exitCode = EXIT_CODES.usage;
      }
    });
}

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CAC } from 'cac';
import { failure } from '../util/result.js';
import { action } from './shared.js';

export const STARTER_CONFIG = `import { defineConfig } from 'taskvault';

// TaskVault caches a command's outputs and logs under a key made from its inputs.
// Run a task with \`npx taskvault run <name>\`; every field is in docs/config.md.
export default defineConfig({
  // cacheDir: '.taskvault/cache',   // relative to this file's directory
  // maxSizeGb: 10,                  // the whole local cache; least recently used entries go first
  // hashAlgorithm: 'blake3',        // or 'sha256'

  policies: {
    // ttlSeconds: how long an entry stays valid; maxSizeBytes: larger results are not stored.
    default: { ttlSeconds: 7 * 24 * 3600, maxSizeBytes: '1GB' },
  },

  tasks: {
    build: {
      command: 'npm run build',      // a string runs through the shell; an array is argv
      inputs: ['src/**', 'package.json', 'tsconfig.json'],
      outputs: ['dist/**'],
      env: ['NODE_ENV'],              // their values are part of the key
    },
    // test: { command: 'npm test', inputs: ['src/**', 'test/**'], cacheFailures: false },
  },
});
`;

export function registerInit(cli: CAC): void {
  cli
    .command('init', 'Write a starter taskvault.config.ts and ignore .taskvault/ in .gitignore')
    .option('--force', 'Overwrite an existing taskvault.config.ts')
    .action(
      action(async (flags: { force?: boolean }) => {
        const dir = process.cwd();
        const configPath = join(dir, 'taskvault.config.ts');
        if (existsSync(configPath) && !flags.force) {
          return failure('usage', 'taskvault.config.ts already exists', 'use --force to overwrite it');
        }
        writeFileSync(configPath, STARTER_CONFIG);
        const ignorePath = join(dir, '.gitignore');
        const ignore = existsSync(ignorePath) ? readFileSync(ignorePath, 'utf8') : '';
        const ignored = ignore
          .split(/\r?\n/)
          .some((l) => ['.taskvault', '.taskvault/', '/.taskvault', '/.taskvault/'].includes(l.trim()));
        if (!ignored)
          writeFileSync(ignorePath, `${ignore}${ignore && !ignore.endsWith('\n') ? '\n' : ''}.taskvault/\n`);
        process.stderr.write(
          `taskvault: wrote taskvault.config.ts${ignored ? '' : ' and added .taskvault/ to .gitignore'}\n`,
        );
        return 0;
      }),
    );
}

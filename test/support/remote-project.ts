/** A small project whose task writes varied outputs, shared by the remote-cache suites. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CliResult, runCli, tempDir, writeTree } from './helpers.js';

export const GEN = `import { appendFileSync, chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
if (process.env.RAN_MARKER) appendFileSync(process.env.RAN_MARKER, 'ran\\n');
rmSync('out', { recursive: true, force: true });
mkdirSync('out/sub', { recursive: true });
const input = readFileSync('src/input.txt', 'utf8');
writeFileSync('out/result.txt', input.toUpperCase());
// compressible (gzipped on the wire) and incompressible (sent as is) large outputs
writeFileSync('out/big.txt', input.repeat(Math.ceil(600000 / input.length)));
writeFileSync('out/sub/random.bin', randomBytes(200000));
writeFileSync('out/tool.sh', '#!/bin/sh\\necho hi\\n');
chmodSync('out/tool.sh', 0o755);
symlinkSync('result.txt', 'out/latest.txt');
process.stdout.write('stdout line 1\\n');
process.stderr.write('stderr line\\n');
process.stdout.write('done ' + input.length + '\\n');
process.exitCode = Number(process.env.GEN_EXIT || 0);
`;

/** A fresh copy of the project (a "machine"); `config` goes to taskvault.config.json. */
export function project(config: Record<string, unknown> = {}): string {
  return writeTree(tempDir('tv-remote-'), {
    'gen.mjs': GEN,
    'src/input.txt': 'the quick brown fox jumps over the lazy dog\n',
    'taskvault.config.json': JSON.stringify({
      ...config,
      tasks: {
        gen: {
          command: ['node', 'gen.mjs'],
          inputs: ['gen.mjs', 'src/**'],
          outputs: ['out/**'],
          cacheFailures: true,
        },
      },
    }),
  });
}

/** Where gen.mjs records each real run of a project (outside it, so never an input or output). */
export const markerOf = (dir: string): string => join(dir, '..', `${dir.split('/').pop()}.ran`);

/** Runs `taskvault run gen` in a project; RAN_MARKER records whether the command itself ran. */
export function runGen(
  dir: string,
  env: Record<string, string | undefined>,
  args: string[] = [],
): Promise<CliResult> {
  return runCli(['run', 'gen', ...args], {
    cwd: dir,
    env: { RAN_MARKER: markerOf(dir), ...env },
  });
}

/** How many times the task's command really ran in that project. */
export function timesRan(dir: string): number {
  const marker = markerOf(dir);
  return existsSync(marker) ? readFileSync(marker, 'utf8').split('\n').filter(Boolean).length : 0;
}

/** The key `run gen` would use, from --dry-run. */
export async function keyOf(dir: string): Promise<string> {
  const r = await runCli(['run', 'gen', '--dry-run'], { cwd: dir });
  return r.out.trim().split(' ')[0]!;
}

/** Stderr lines TaskVault wrote as warnings. */
export const warnings = (r: CliResult): string[] =>
  r.err.split('\n').filter((l) => l.startsWith('taskvault: warning:'));

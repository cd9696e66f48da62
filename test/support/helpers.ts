/** Shared test helpers: temp projects, the built CLI as a child process, file-tree snapshots. */
import { execFileSync, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TaskSpec } from '../../src/config/resolve.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(REPO, 'dist', 'cli.cjs');
export const FIXTURES = join(REPO, 'fixtures');

const made: string[] = [];
process.on('exit', () => {
  if (process.env.KEEP_TMP) return;
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory, removed when the test process exits (unless KEEP_TMP=1). */
export function tempDir(prefix = 'tv-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Writes files given as { 'path/in/dir': content } and returns dir. */
export function writeTree(dir: string, files: Record<string, string | Uint8Array>): string {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  return dir;
}

/** Runs git in `dir` with a fixed author, so that commits work on a machine with no git identity. */
export const git = (dir: string, ...args: string[]): Buffer =>
  execFileSync('git', args, {
    cwd: dir,
    stdio: 'pipe',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@t',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@t',
    },
  });

/**
 * Copies fixtures/<name> into a new temp dir, as a user's project with taskvault (and typescript)
 * installed: node_modules/ links to this repo, so config files can `import ... from 'taskvault'`.
 */
export function fixture(name: string): string {
  const d = tempDir(`tv-${name}-`);
  cpSync(join(FIXTURES, name), d, { recursive: true, verbatimSymlinks: true });
  linkNodeModules(d);
  return d;
}

export function linkNodeModules(dir: string): void {
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(REPO, join(dir, 'node_modules', 'taskvault'));
  symlinkSync(join(REPO, 'node_modules', 'typescript'), join(dir, 'node_modules', 'typescript'));
  symlinkSync('../typescript/bin/tsc', join(dir, 'node_modules', '.bin', 'tsc'));
}

/** PATH with a project's node_modules/.bin first, as npm scripts and npx have it. */
export const pathWithBin = (dir: string): string =>
  `${join(dir, 'node_modules', '.bin')}:${process.env.PATH}`;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  out: string;
  err: string;
}

export interface CliOptions {
  cwd: string;
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  timeoutMs?: number;
}

/** Environment for the CLI under test: no colour, no inherited TaskVault settings. */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const k of Object.keys(env)) if (k.startsWith('TASKVAULT_')) delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Runs the built CLI (`node dist/cli.cjs ...args`) and collects everything it wrote. */
export function runCli(args: string[], o: CliOptions): Promise<CliResult> {
  return runProcess(process.execPath, [CLI, ...args], o);
}

/**
 * Runs argv under strace(1), following children and naming each descriptor's path (`-y`), tracing
 * only `calls` (e.g. 'fsync,fdatasync,rename'); the result and the trace's lines, in order.
 */
export async function runTraced(
  calls: string,
  argv: string[],
  o: CliOptions,
  /** More strace options, e.g. `['-e', 'inject=fdatasync:delay_exit=200000']` to slow a call. */
  straceArgs: string[] = [],
): Promise<CliResult & { lines: string[] }> {
  const trace = join(tempDir(), 'strace.log');
  const r = await runProcess(
    'strace',
    ['-f', '-qq', '-y', '-o', trace, '-e', `trace=${calls}`, ...straceArgs, ...argv],
    {
      timeoutMs: 120_000,
      ...o,
    },
  );
  const lines = existsSync(trace) ? readFileSync(trace, 'utf8').split('\n') : [];
  return { ...r, lines };
}

export function runProcess(file: string, args: string[], o: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: o.cwd, env: cliEnv(o.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      const stderr = Buffer.concat(err);
      resolve({ code, signal, stdout, stderr, out: stdout.toString(), err: stderr.toString() });
    });
    child.stdin.on('error', () => {}); // the child may exit without reading its stdin
    child.stdin.end(o.input ?? '');
  });
}

export type TreeEntry =
  | { type: 'file'; mode: number; content: string }
  | { type: 'dir'; mode: number }
  | { type: 'symlink'; target: string };

/** A comparable picture of a directory: every path with its type, mode and content or link target. */
export function readTreeSnapshot(
  dir: string,
  ignore: string[] = ['.taskvault', 'node_modules'],
): Record<string, TreeEntry> {
  const result: Record<string, TreeEntry> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const rel = relative(dir, p);
      if (ignore.includes(rel)) continue;
      const s = lstatSync(p);
      if (s.isSymbolicLink()) result[rel] = { type: 'symlink', target: readlinkSync(p) };
      else if (s.isDirectory()) {
        result[rel] = { type: 'dir', mode: s.mode & 0o777 };
        walk(p);
      } else
        result[rel] = { type: 'file', mode: s.mode & 0o777, content: readFileSync(p).toString('base64') };
    }
  };
  walk(dir);
  return result;
}

/** The names in `dir`, sorted; none if it does not exist. */
export const listSorted = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort() : []);

/** A TaskSpec for tests that call the fingerprint or watch modules directly. */
export function taskSpec(root: string, o: Partial<TaskSpec> = {}): TaskSpec {
  return {
    name: 't',
    command: ['true'],
    shell: false,
    cwd: root,
    root,
    inputs: undefined,
    outputs: [],
    env: [],
    cacheFailures: false,
    policy: { ttlMs: 1000, maxEntryBytes: 1000, strategy: 'lru' },
    stdin: 'auto',
    ...o,
  };
}

/**
 * Runs `fn` with a tmpfs of `size` (e.g. '24m') mounted on a temp dir: a disk that fills up. Where
 * mounting is not allowed it prints `<what>: SKIPPED` and returns; CI runs as root and must allow it.
 */
export async function withTmpfs(
  size: string,
  what: string,
  fn: (mnt: string) => Promise<void>,
): Promise<void> {
  const mnt = tempDir('tv-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { stdio: 'ignore' });
  } catch {
    if (process.env.CI) throw new Error('CI must be able to mount a tmpfs (it runs as root)');
    console.log(`${what}: SKIPPED (no permission to mount a tmpfs here)`);
    return;
  }
  try {
    await fn(mnt);
  } finally {
    execFileSync('umount', [mnt], { stdio: 'ignore' });
  }
}

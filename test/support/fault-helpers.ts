/** Helpers for the fault-injection suites: spawning the CLI to kill it, reading the audit log. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, cliEnv } from './helpers.js';

export interface Spawned {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  /** Resolves when stdout or stderr contains `text` (false if the process ended first or on timeout). */
  waitFor: (text: string, timeoutMs?: number) => Promise<boolean>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `node dist/cli.cjs ...args` and keeps its output, for tests that signal or kill it.
 * `alone`: under a shell that leads a session and process group of its own, without a terminal:
 * a signal sent to taskvault's pid then counts as sent to it alone, whether or not the tests run
 * in a terminal (whose Ctrl-C taskvault leaves to the command: docs/guarantees.md, guarantee 10).
 */
export function spawnCli(
  args: string[],
  cwd: string,
  env: Record<string, string | undefined> = {},
  o: { alone?: boolean } = {},
): Spawned {
  const argv = [process.execPath, CLI, ...args];
  const child = o.alone
    ? spawn('sh', ['-c', '"$@"; exit $?', 'sh', ...argv], {
        cwd,
        env: cliEnv(env),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      })
    : spawn(argv[0]!, argv.slice(1), { cwd, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of listeners) l();
  };
  child.stdout!.on('data', (d: Buffer) => {
    out += d;
    notify();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d;
    notify();
  });
  const kill = setTimeout(
    () => (o.alone ? process.kill(-child.pid!, 'SIGKILL') : child.kill('SIGKILL')),
    60_000,
  );
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(kill);
      notify();
      resolve({ code, signal });
    }),
  );
  let ended = false;
  void done.then(() => (ended = true));
  const waitFor = (text: string, timeoutMs = 30_000) =>
    new Promise<boolean>((resolve) => {
      const check = () => {
        if (out.includes(text) || err.includes(text)) finish(true);
        else if (ended) finish(false);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (v: boolean) => {
        clearTimeout(timer);
        listeners.delete(check);
        resolve(v);
      };
      listeners.add(check);
      check();
    });
  return { child, out: () => out, err: () => err, waitFor, done };
}

export function auditLines(cacheDir: string): string[] {
  const p = join(cacheDir, 'audit.log');
  return existsSync(p) ? readFileSync(p, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/** Lines TaskVault printed as warnings. */
export const warnings = (stderr: string): string[] =>
  stderr.split('\n').filter((l) => l.includes('warning:'));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How many times a counter file (one line per execution) was appended to. */
export function executions(counterFile: string): number {
  return existsSync(counterFile) ? readFileSync(counterFile, 'utf8').split('\n').filter(Boolean).length : 0;
}

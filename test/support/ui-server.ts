/** `taskvault ui` as a child process of a test, on a free port of 127.0.0.1. */
import { type ChildProcess, spawn } from 'node:child_process';
import { CLI, cliEnv } from './helpers.js';
import { freePort } from './servers.js';

export interface UiServer {
  url: string;
  port: number;
  child: ChildProcess;
  /** What it wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
}

export async function startUi(
  cwd: string,
  args: string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<UiServer> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'ui', '--port', String(port), ...args], {
    cwd,
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await Promise.race([
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`taskvault ui did not start: ${err}`)), 15_000);
      child.stderr!.on('data', () => {
        if (/dashboard on /.test(err)) {
          clearTimeout(t);
          resolve();
        }
      });
    }),
    exited.then((code) => {
      throw new Error(`taskvault ui exited with ${code}: ${err}`);
    }),
  ]);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

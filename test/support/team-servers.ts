/**
 * The team-cache servers from npm for the remote suites, as child processes on 127.0.0.1: the
 * `turborepo-remote-cache` package (Turborepo's remote cache API) and Azurite (Azure Blob Storage).
 * The Nx server is ./nx-server.ts (Nx publishes a spec, not a server).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { signAzure } from '../../src/remote/azure-auth.js';
import { tempDir } from './helpers.js';
import { freePort, waitForHttp } from './servers.js';

const pkg = (path: string) => fileURLToPath(new URL(`../../node_modules/${path}`, import.meta.url));

export interface Child {
  url: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

async function startChild(
  what: string,
  args: string[],
  env: Record<string, string>,
  port: number,
  dir: string,
): Promise<Child> {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', HOME: dir, ...env },
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    await Promise.race([
      waitForHttp(port, 30_000),
      exited.then((code) => {
        throw new Error(`${what} exited with ${code}: ${stderr.trim()}`);
      }),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    console.error(String(e)); // uvu does not print errors thrown by hooks
    throw e;
  }
  return { url: `http://127.0.0.1:${port}`, port, dir, stop: () => stopChild(child, exited) };
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

export const TURBO_TOKEN = 'turbo-token-1';
export const TURBO_READ_ONLY_TOKEN = 'turbo-token-2';

/** The env docs/remote-servers.md gives for the Turborepo server, on a temp dir and a free port. */
export function turboServerEnv(
  dir: string,
  port: number,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    HOST: '127.0.0.1',
    PORT: String(port),
    STORAGE_PROVIDER: 'local',
    STORAGE_PATH: dir,
    STORAGE_PATH_USE_TMP_FOLDER: 'false',
    TURBO_TOKEN,
    LOG_LEVEL: 'error',
    ENABLE_STATUS_LOG: 'false',
    NODE_ENV: 'production',
    ...extra,
  };
}

/** `turborepo-remote-cache` with local storage; `extra` env e.g. READ_ONLY, BODY_LIMIT. */
export async function startTurboServer(
  extra: Record<string, string> = {},
  dir = tempDir('tv-turbo-'),
): Promise<Child> {
  const port = await freePort();
  return startChild(
    'turborepo-remote-cache',
    [pkg('turborepo-remote-cache/dist/cli.js')],
    turboServerEnv(dir, port, extra),
    port,
    dir,
  );
}

export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite extends Child {
  /** The account's blob endpoint (path-style), e.g. http://127.0.0.1:10000/devstoreaccount1. */
  endpoint: string;
  connectionString: string;
  createContainer(name: string): Promise<void>;
}

/** Azurite's blob service (telemetry off) with its well-known development account. */
export async function startAzurite(): Promise<Azurite> {
  const dir = tempDir('tv-azurite-');
  const port = await freePort();
  const child = await startChild(
    'azurite',
    [
      pkg('azurite/dist/src/blob/main.js'),
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--location',
      dir,
      '--silent',
      '--disableTelemetry',
      // Azurite closes idle connections after 5 s; a request on one it just closed is ECONNRESET,
      // a race of its idle timer that a suite's pauses on a loaded machine would otherwise hit.
      '--blobKeepAliveTimeout',
      '60',
    ],
    {},
    port,
    dir,
  );
  const endpoint = `${child.url}/${AZURITE_ACCOUNT}`;
  return {
    ...child,
    endpoint,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`,
    async createContainer(name) {
      const url = new URL(`${endpoint}/${name}?restype=container`);
      const headers = signAzure(
        { kind: 'sharedKey', account: AZURITE_ACCOUNT, key: Buffer.from(AZURITE_KEY, 'base64') },
        'PUT',
        url,
        {},
        0,
      );
      const r = await fetch(url, { method: 'PUT', headers: { ...headers, 'content-length': '0' } });
      if (r.status !== 201 && r.status !== 409)
        throw new Error(`creating container ${name}: HTTP ${r.status} ${await r.text()}`);
    },
  };
}

/**
 * A real PostgreSQL server for the team-index tests: initdb in a temp dir and `postgres` on a free
 * 127.0.0.1 port, never the system service. PostgreSQL refuses to run as root, so under root (CI)
 * it runs as a dedicated system user, `tvpg`, created here if missing, via setpriv.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { tempDir } from './helpers.js';
import { freePort } from './servers.js';

export interface Postgres {
  port: number;
  /** postgres://URL for a role (default: the owner, `tvowner`, trusted without a password). */
  url(role?: string): string;
  /** A connected client as the owner; closed by stop(). */
  query(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  stop(): Promise<void>;
}

const PG_USER = 'tvpg';

function pgBin(name: string): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const p = join(base, v, 'bin', name);
    if (existsSync(p)) return p;
  }
  throw new Error(`${name} not found under ${base}/*/bin: apt-get install postgresql`);
}

/** argv prefix that runs a program as the unprivileged user when we are root. */
function asUser(dir: string): string[] {
  if (process.getuid?.() !== 0) return [];
  if (spawnSync('id', ['-u', PG_USER]).status !== 0) {
    const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', PG_USER]);
    // Another test process may have created it in the meantime.
    if (r.status !== 0 && spawnSync('id', ['-u', PG_USER]).status !== 0)
      throw new Error(`useradd ${PG_USER}: ${r.stderr}`);
  }
  const uid = Number(spawnSync('id', ['-u', PG_USER]).stdout.toString());
  const gid = Number(spawnSync('id', ['-g', PG_USER]).stdout.toString());
  chownSync(dir, uid, gid);
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups'];
}

export async function startPostgres(): Promise<Postgres> {
  const dir = tempDir('tv-pg-');
  const prefix = asUser(dir);
  const data = join(dir, 'data');
  const run = (argv: string[]) =>
    (prefix.length ? [prefix[0]!, [...prefix.slice(1), ...argv]] : [argv[0]!, argv.slice(1)]) as [
      string,
      string[],
    ];
  const [initFile, initArgs] = run([
    pgBin('initdb'),
    '-D',
    data,
    '-U',
    'tvowner',
    '-A',
    'trust',
    '--no-sync',
    '-E',
    'UTF8',
  ]);
  const init = spawnSync(initFile, initArgs, { cwd: dir, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}${init.stdout}`);
  const port = await freePort();
  const [file, args] = run([
    pgBin('postgres'),
    '-D',
    data,
    '-k',
    dir,
    '-p',
    String(port),
    '-h',
    '127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
  ]);
  const child: ChildProcess = spawn(file, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const url = (role = 'tvowner') => `postgres://${role}@127.0.0.1:${port}/postgres`;
  let client: pg.Client;
  const until = Date.now() + 30_000;
  for (;;) {
    client = new pg.Client({ connectionString: url() });
    try {
      await client.connect();
      break;
    } catch (e) {
      await client.end().catch(() => {});
      if (Date.now() > until || child.exitCode !== null)
        throw new Error(`postgres did not start: ${e}\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    port,
    url,
    query: (sql, params) => client.query(sql, params),
    stop: async () => {
      await client.end().catch(() => {});
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT'); // fast shutdown
      await exited;
    },
  };
}

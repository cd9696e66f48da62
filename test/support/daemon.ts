import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { CLI, type CliResult, cliEnv, runCli, tempDir, writeTree } from './helpers.js';

/** What the test command writes to out/o.txt: every file under src/ with its content and x bit. */
export function rendering(dir: string): string {
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .flatMap((e) => {
        const p = join(d, e.name);
        if (e.isDirectory()) return walk(p);
        return [
          `${p.slice(dir.length + 1)}=${readFileSync(p, 'utf8')}:${statSync(p).mode & 0o111 ? 'x' : '-'}`,
        ];
      });
  return walk(join(dir, 'src')).join('\n');
}

const SCRIPT = `const fs=require('fs'),p=require('path');
const w=(d)=>fs.readdirSync(d,{withFileTypes:true}).sort((a,b)=>a.name<b.name?-1:1).flatMap((e)=>{const f=p.join(d,e.name);
return e.isDirectory()?w(f):[f+'='+fs.readFileSync(f,'utf8')+':'+(fs.statSync(f).mode&0o111?'x':'-')]});
fs.mkdirSync('out',{recursive:true});fs.writeFileSync('out/o.txt',w('src').join('\\n'));console.log('built')`;

export const runArgs = (extra: string[] = []) => [
  'run',
  '--inputs',
  'src/**',
  '--outputs',
  'out/**',
  ...extra,
  '--',
  'node',
  '-e',
  SCRIPT,
];

/** A project whose files were all written more than the racy window (2 s) ago. */
export async function settledProject(files: Record<string, string> = {}): Promise<string> {
  const dir = writeTree(tempDir('tv-daemon-'), {
    'src/a.txt': 'a',
    'src/lib/b.txt': 'b',
    'src/lib/deep/c.txt': 'c',
    ...files,
  });
  await settle();
  return dir;
}

/** Waits out the racy window, after which a manifest can vouch for what was written before. */
export const settle = () => new Promise((r) => setTimeout(r, 2200));

export const cacheOf = (dir: string) => join(dir, '.taskvault', 'cache');

/** A run with the trace on and a generous time limit for the daemon (the machine may be loaded). */
export async function run(
  dir: string,
  env: Record<string, string> = {},
  extra: string[] = [],
): Promise<CliResult> {
  const r = await runCli(runArgs(extra), {
    cwd: dir,
    env: { TASKVAULT_TRACE: '1', TASKVAULT_DAEMON_TIMEOUT_MS: '5000', ...env },
  });
  assert.is(r.code, 0, r.err);
  assert.is(readFileSync(join(dir, 'out/o.txt'), 'utf8'), rendering(dir), `stale output:\n${r.err}`);
  return r;
}

export const daemonSaid = (r: CliResult): string | undefined =>
  /· daemon: ([^·\n]*)/.exec(r.err)?.[1]?.trim();
export const wasHit = (r: CliResult) => /taskvault: hit /.test(r.err);

/**
 * Runs hits until the daemon vouches for the inputs (a fresh manifest may need a walk to be
 * rewritten first). Returns the run that was vouched.
 */
export async function untilVouched(
  dir: string,
  env: Record<string, string> = {},
  extra: string[] = [],
): Promise<CliResult> {
  const said: string[] = [];
  for (let i = 0; i < 12; i++) {
    const r = await run(dir, env, extra);
    const d = daemonSaid(r);
    if (d === 'unchanged') {
      assert.ok(wasHit(r), r.err);
      return r;
    }
    said.push(String(d));
    if (i >= 3) await settle();
  }
  throw new Error(`the daemon never vouched: ${said.join(' | ')}`);
}

/** `taskvault daemon run` as a child of the test, started and answering. */
export async function foregroundDaemon(
  dir: string,
  o: { cli?: string; args?: string[] } = {},
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [o.cli ?? CLI, 'daemon', 'run', ...(o.args ?? [])], {
    cwd: dir,
    env: cliEnv(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  for (let i = 0; i < 200 && !/daemon running/.test(err); i++) {
    if (child.exitCode !== null) throw new Error(`daemon exited: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!/daemon running/.test(err)) throw new Error(`daemon did not start: ${err}`);
  return child;
}

export async function killed(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

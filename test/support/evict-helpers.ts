/** Shared by the eviction suites: small projects whose tasks write outputs of known sizes. */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { runCli, tempDir, writeTree } from './helpers.js';

export const T0 = 1_900_000_000_000;
export const MIN = 60_000;

/**
 * A project whose tasks each write `out/<name>.bin` (`size` bytes of the content letter) and append
 * a line to runs.log (not an input, not an output), so a test can count how often each really ran.
 */
export function project(config: {
  tasks: Record<string, { size: number; letter?: string; policy?: Record<string, unknown> }>;
  extra?: Record<string, unknown>;
}): string {
  const dir = tempDir('tv-evict-');
  const tasks: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(config.tasks)) {
    const code = [
      "const fs=require('fs');",
      "fs.mkdirSync('out',{recursive:true});",
      `fs.writeFileSync('out/${name}.bin', ${JSON.stringify(t.letter ?? name[0])}.repeat(${t.size}));`,
      `fs.appendFileSync('runs.log', '${name}\\n');`,
    ].join('');
    tasks[name] = {
      command: ['node', '-e', code],
      inputs: ['in.txt'],
      outputs: [`out/${name}.bin`],
      ...(t.policy ? { policy: t.policy } : {}),
    };
  }
  writeTree(dir, {
    'in.txt': 'input\n',
    'taskvault.config.json': JSON.stringify({ ...config.extra, tasks }, null, 2),
  });
  return dir;
}

export const cache = (dir: string) => join(dir, '.taskvault', 'cache');

export async function tv(dir: string, args: string[], now: number, env: Record<string, string> = {}) {
  const r = await runCli(args, { cwd: dir, env: { TASKVAULT_NOW_MS: String(now), ...env } });
  return r;
}

export async function run(dir: string, task: string, now: number, flags: string[] = []) {
  const r = await tv(dir, ['run', task, ...flags], now);
  assert.is(r.code, 0, `run ${task} failed: ${r.err}`);
  return r;
}

export const runs = (dir: string): string[] =>
  existsSync(join(dir, 'runs.log')) ? readFileSync(join(dir, 'runs.log'), 'utf8').trim().split('\n') : [];

export function audit(dir: string, event?: string): Array<Record<string, string>> {
  const p = join(cache(dir), 'audit.log');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [, ev, source, rest] = /^\[[^\]]+\] (\w+) (\S+) ?(.*)$/.exec(line)!;
      const fields: Record<string, string> = { event: ev!, source: source! };
      for (const m of rest!.matchAll(/(\w+)=(\S+)/g)) fields[m[1]!] = m[2]!;
      return fields;
    })
    .filter((f) => event === undefined || f.event === event);
}

export function blobFiles(dir: string): Array<{ hash: string; size: number }> {
  const root = join(cache(dir), 'blobs');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((fan) =>
    readdirSync(join(root, fan)).map((name) => ({
      hash: fan + name,
      size: statSync(join(root, fan, name)).size,
    })),
  );
}

export async function gcJson(dir: string, now: number, flags: string[] = []) {
  const r = await tv(dir, ['gc', '--json', ...flags], now);
  assert.is(r.code, 0, r.err);
  return JSON.parse(r.out) as {
    entries: number;
    bytes: number;
    byReason: Record<string, { entries: number; bytes: number }>;
    orphanBlobs: { files: number; bytes: number };
    staleTmp: { files: number; bytes: number };
    refsRepaired: number;
    missingBlobs: number;
    usage: number;
  };
}

#!/usr/bin/env node
// The README's quick start (`npm run demo`): runs a real fixture task through TaskVault twice (a miss, then a hit).
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'taskvault-demo-'));
cpSync(join(repo, 'fixtures', 'csv-report'), dir, { recursive: true });
mkdirSync(join(dir, 'node_modules'));
symlinkSync(repo, join(dir, 'node_modules', 'taskvault'));

const cli = join(repo, 'dist', 'cli.cjs');
const bold = (s) => (process.stdout.isTTY && !('NO_COLOR' in process.env) ? `\x1b[1m${s}\x1b[0m` : s);
const step = (title, args) => {
  console.log(`\n${bold(`$ taskvault ${args.join(' ')}`)}   # ${title}`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

console.log(`TaskVault demo in ${dir}: a CSV aggregation task (fixtures/csv-report) that takes ~1.5 s.`);
step('first run: a miss, the command runs and its outputs are cached', ['run', 'report']);
rmSync(join(dir, 'out'), { recursive: true, force: true });
console.log('\n(out/ deleted)');
step('second run: a hit, out/ restored and the logs replayed in milliseconds', ['run', 'report']);
step('what is cached', ['run', 'report', '--dry-run']);
rmSync(dir, { recursive: true, force: true });

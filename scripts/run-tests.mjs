#!/usr/bin/env node
// Runs every test/**/*.test.ts file in its own Node process (uvu + tsx), a few at a time,
// and ends with one `N passed, N failed` line that CI can read. Usage: run-tests.mjs [filter...]
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);
const concurrency = Number(process.env.TEST_CONCURRENCY) || Math.max(2, cpus().length);

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const files = walk(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)))
  .sort();

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
const totals = { passed: 0, failed: 0, skipped: 0 };
const failedFiles = [];

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const limitMs = Number(process.env.TEST_FILE_TIMEOUT_MS) || 600_000;
    const timer = setTimeout(() => {
      out += `\n[run-tests] ${relative(root, file)} exceeded ${limitMs} ms, killed\n`;
      child.kill('SIGKILL');
    }, limitMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const text = stripAnsi(out);
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? Number.NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? Number.NaN);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0);
      let failed = total - passed - skipped;
      if (Number.isNaN(total) || Number.isNaN(passed))
        failed = 1; // the file crashed before reporting
      else if (code !== 0 && failed === 0) failed = 1; // it reported success but exited non-zero
      totals.passed += Number.isNaN(passed) ? 0 : passed;
      totals.failed += failed;
      totals.skipped += skipped;
      const name = relative(root, file);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (failed > 0) failedFiles.push(name);
      process.stdout.write(`\n=== ${name} (${secs}s) ${failed > 0 ? 'FAILED' : 'ok'}\n${out.trimEnd()}\n`);
      resolve();
    });
  });
}

const queue = [...files];
await Promise.all(
  Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    while (queue.length > 0) await runFile(queue.shift());
  }),
);

if (failedFiles.length > 0) console.log(`\nFailed files:\n  ${failedFiles.join('\n  ')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = totals.failed > 0 || files.length === 0 ? 1 : 0;

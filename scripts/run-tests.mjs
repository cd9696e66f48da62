#!/usr/bin/env node
// Runs every test/**/*.test.ts file in its own Node process (uvu + tsx), and every
// python/tests/test_*.py file in its own Python process (unittest), a few at a time,
// and ends with one `N passed, N failed` line that CI can read. Usage: run-tests.mjs [filter...]
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
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

const pythonTests = join(root, 'python', 'tests');
// Debian's python3 (with python3-pandas) even where another python3 comes first on PATH.
const python =
  process.env.TASKVAULT_PYTHON || (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

const files = [...walk(join(root, 'test')), ...walk(pythonTests)]
  .filter((f) => f.endsWith('.test.ts') || (f.startsWith(pythonTests) && /\/test_\w+\.py$/.test(f)))
  .filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)))
  .sort();

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
const totals = { passed: 0, failed: 0, skipped: 0 };
const failedFiles = [];

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const py = file.endsWith('.py');
    const [cmd, args, cwd] = py
      ? [python, ['-m', 'unittest', '-v', relative(pythonTests, file).slice(0, -3)], pythonTests]
      : [process.execPath, ['--import', 'tsx', file], root];
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, FORCE_COLOR: '0', ...(py ? { PYTHONPATH: join(root, 'python') } : {}) },
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
      const { total, passed, skipped } = py ? unittestCounts(text) : uvuCounts(text);
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

function uvuCounts(text) {
  return {
    total: Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? Number.NaN),
    passed: Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? Number.NaN),
    skipped: Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0),
  };
}

/** unittest ends with `Ran N tests` and `OK (skipped=1)` or `FAILED (failures=1, errors=2)`. */
function unittestCounts(text) {
  const total = Number(/^Ran (\d+) tests? in /m.exec(text)?.[1] ?? Number.NaN);
  const verdict = /^(OK|FAILED)(?: \((.*)\))?$/m.exec(text);
  const n = (name) => Number(new RegExp(`${name}=(\\d+)`).exec(verdict?.[2] ?? '')?.[1] ?? 0);
  const skipped = n('skipped');
  const passed = verdict
    ? total - n('failures') - n('errors') - n('unexpected successes') - skipped
    : Number.NaN;
  return { total, passed, skipped };
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

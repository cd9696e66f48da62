/** The audit trail: concurrent writers from many processes, and rotation by size. */
import {
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

const AUDIT_JS = pathToFileURL(join(REPO, 'dist', 'store', 'audit.js')).href;
const LINE =
  /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] (HIT|MISS|SAVE|EVICT|ERROR) \S+ task=\S+ hash=\S+( [a-z]+=(\S+|"[^"]*"))*$/;

/** Every line of audit.log and its rotations, oldest file first. */
function allLines(dir: string): { files: string[]; lines: string[] } {
  const files = readdirSync(dir)
    .filter((f) => /^audit\.log(\.\d+)?$/.test(f))
    .sort((a, b) => Number(b.split('.')[2] ?? 0) - Number(a.split('.')[2] ?? 0));
  const lines = files.flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));
  return { files, lines };
}

/** A node process that appends `count` lines through the built AuditLog (kept open: as an SDK's). */
const writer = (dir: string, id: number, count: number, maxBytes: number, keep: number, keptOpen = false) =>
  runProcess(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { AuditLog } = await import(${JSON.stringify(AUDIT_JS)});
       const log = new AuditLog(${JSON.stringify(join(dir, 'audit.log'))}, ${maxBytes}, ${keep});
       if (${keptOpen}) log.keepOpen();
       for (let i = 0; i < ${count}; i++)
         log.write(i % 5 === 4 ? 'ERROR' : 'HIT', 'get', { task: 'w${id}', hash: String(i), error: i % 5 === 4 ? 'disk said: no space left' : undefined, pad: 'x'.repeat(40 + (i % 50)) });`,
    ],
    { cwd: dir },
  );

test('8 processes appending at once while the log rotates: every line intact, none lost or doubled', async () => {
  const dir = tempDir('tv-audit-');
  const writers = 8;
  const count = 400;
  const maxBytes = 32 * 1024;
  // Half of them keep the file open between lines, as long-lived SDK clients do.
  const results = await Promise.all(
    Array.from({ length: writers }, (_, id) => writer(dir, id, count, maxBytes, 100, id % 2 === 1)),
  );
  for (const r of results) assert.is(r.code, 0, r.err);

  const { files, lines } = allLines(dir);
  assert.ok(files.length >= 5, `rotated into ${files.length} files`);
  assert.not.ok(existsSync(join(dir, 'audit.log.lock')), 'the rotation lock is released');
  for (const l of lines) assert.match(l, LINE);
  const seen = new Set<string>();
  for (const l of lines) {
    const m = / task=(w\d+) hash=(\d+) /.exec(l)!;
    const id = `${m[1]}:${m[2]}`;
    assert.not.ok(seen.has(id), `duplicate ${id}`);
    seen.add(id);
  }
  assert.is(seen.size, writers * count);
  // Per writer, lines appear in the order written (files oldest first).
  for (let w = 0; w < writers; w++) {
    const seq = lines.filter((l) => l.includes(` task=w${w} `)).map((l) => Number(/ hash=(\d+)/.exec(l)![1]));
    assert.equal(
      seq,
      [...seq].sort((a, b) => a - b),
    );
  }
  // The size is re-checked under the lock, so no writer rotates a file another one just rotated:
  // every rotated generation reached the limit (writers that lose the race keep appending meanwhile).
  for (const f of files.filter((x) => x !== 'audit.log'))
    assert.ok(statSync(join(dir, f)).size >= maxBytes, `${f} is ${statSync(join(dir, f)).size} bytes`);
  assert.ok(
    lines.some((l) => / ERROR get task=w\d+ hash=\d+ error="disk said: no space left" pad=x+$/.test(l)),
  );
});

test('a log kept open holds lines 20 ms and follows the path: after another process rotates it, lines go to the new audit.log', async () => {
  const dir = tempDir('tv-audit-');
  const { AuditLog } = (await import(AUDIT_JS)) as typeof import('../../src/store/audit.js');
  const path = join(dir, 'audit.log');
  const log = new AuditLog(path, 1024 * 1024, 3);
  log.keepOpen();
  log.write('HIT', 'get', { task: 't', hash: 'first' });
  assert.not.ok(existsSync(path), 'held for up to 20 ms');
  await new Promise((r) => setTimeout(r, 100));
  assert.match(readFileSync(path, 'utf8'), /hash=first\n$/);
  // Another process rotates (here by hand: what its rotateIfLarge does).
  renameSync(path, `${path}.1`);
  await new Promise((r) => setTimeout(r, 1_100)); // past the kept log's look at its path
  log.write('HIT', 'get', { task: 't', hash: 'second' });
  log.close(); // writes what it holds
  log.write('HIT', 'get', { task: 't', hash: 'third' }); // closed: the one-shot way, still logged
  assert.match(readFileSync(`${path}.1`, 'utf8'), /hash=first\n$/);
  const now = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  assert.is(now.length, 2);
  assert.match(now[0]!, /hash=second$/);
  assert.match(now[1]!, /hash=third$/);
});

test('rotation keeps the configured number of generations, newest lines in audit.log', async () => {
  const dir = tempDir('tv-audit-');
  const r = await writer(dir, 0, 60, 500, 2);
  assert.is(r.code, 0, r.err);
  assert.equal(readdirSync(dir).sort(), ['audit.log', 'audit.log.1', 'audit.log.2']);
  const { lines } = allLines(dir);
  const seq = lines.map((l) => Number(/ hash=(\d+)/.exec(l)![1]));
  assert.is(seq[seq.length - 1], 59);
  assert.equal(
    seq,
    [...seq].sort((a, b) => a - b),
    'oldest generation first, no gaps inside the kept files',
  );
  for (let i = 1; i < seq.length; i++) assert.is(seq[i], seq[i - 1]! + 1);
});

test('a held rotation lock never blocks writers; a stale one is cleared', async () => {
  const dir = tempDir('tv-audit-');
  writeFileSync(join(dir, 'audit.log'), `${'[2025-01-01T00:00:00Z] HIT get task=old hash=0\n'.repeat(50)}`);
  writeFileSync(join(dir, 'audit.log.lock'), '');
  assert.is((await writer(dir, 1, 5, 100, 3)).code, 0);
  assert.not.ok(existsSync(join(dir, 'audit.log.1')), 'no rotation while another process holds the lock');
  assert.is(allLines(dir).lines.length, 55);

  const old = new Date(Date.now() - 120_000);
  utimesSync(join(dir, 'audit.log.lock'), old, old);
  assert.is((await writer(dir, 2, 2, 100, 3)).code, 0);
  assert.not.ok(existsSync(join(dir, 'audit.log.lock')));
  assert.ok(existsSync(join(dir, 'audit.log.1')), 'rotated once the stale lock was gone');
  assert.is(allLines(dir).lines.length, 57);
});

test('concurrent CLI processes on one cache: one intact line each, counters exact', async () => {
  const dir = tempDir('tv-audit-cli-');
  writeTree(dir, { 'in.txt': 'same input\n', 'out.txt': 'result\n' });
  assert.is((await runCli(['cache', 'save', 'shared', 'in.txt', 'out.txt'], { cwd: dir })).code, 0);
  const n = 8;
  const runs = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      i % 2 === 0
        ? runCli(['cache', 'get', 'shared', 'in.txt', `got-${i}.txt`], { cwd: dir })
        : runCli(['cache', 'get', `task${i}`, 'in.txt', `got-${i}.txt`], { cwd: dir }),
    ),
  );
  for (const [i, r] of runs.entries()) assert.is(r.code, i % 2 === 0 ? 0 : 1, r.err);
  const lines = readFileSync(join(dir, '.taskvault/cache/audit.log'), 'utf8').trimEnd().split('\n');
  assert.is(lines.length, n + 1);
  for (const l of lines) assert.match(l, LINE);
  assert.is(lines.filter((l) => / HIT get task=shared /.test(l)).length, n / 2);
  assert.is(lines.filter((l) => / MISS get task=task\d /.test(l)).length, n / 2);
  const stats = JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out);
  assert.is(stats.hits, n / 2);
  assert.is(stats.misses, n / 2);
  const [row] = JSON.parse((await runCli(['ls', '--json'], { cwd: dir })).out);
  assert.is(row.hits, n / 2, 'per-entry hit count is exact under concurrency');
});

test.run();

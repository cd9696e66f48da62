/** End-to-end: `taskvault run` through the built CLI on real files, real LMDB, real child processes. */

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RACY_WINDOW_MS } from '../../src/fingerprint/manifest.js';
import { CLI, readTreeSnapshot, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

const oneLine = (s: string) => s.trim().split('\n').length === 1;

/** A command that writes nested files, a binary, an executable, a symlink, an empty dir and logs. */
const PRODUCE = `
const fs = require('fs');
fs.mkdirSync('out/nested/deeper', { recursive: true });
fs.mkdirSync('out/empty', { recursive: true });
fs.writeFileSync('out/nested/deeper/a.txt', fs.readFileSync('src/in.txt', 'utf8').toUpperCase());
fs.writeFileSync('out/bin.dat', Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 7919) % 256)));
fs.writeFileSync('out/run.sh', '#!/bin/sh\\necho hi\\n'); fs.chmodSync('out/run.sh', 0o755);
try { fs.symlinkSync('nested/deeper/a.txt', 'out/link.txt'); } catch {}
fs.appendFileSync('runs.log', 'x');
process.stdout.write(Buffer.from([0x68, 0x69, 0x00, 0xff, 0x0a, 0x6e, 0x6f, 0x2d, 0x6e, 0x6c]));
process.stderr.write('warning: something on stderr\\n');
`;

function project(): string {
  const dir = tempDir();
  writeTree(dir, { 'src/in.txt': 'hello inputs\n', 'produce.cjs': PRODUCE, 'unrelated.txt': 'x' });
  return dir;
}

const RUN = [
  'run',
  '--inputs',
  'src/**',
  '--inputs',
  'produce.cjs',
  '--outputs',
  'out/**',
  '--',
  'node',
  'produce.cjs',
];
const runs = (dir: string) =>
  existsSync(join(dir, 'runs.log')) ? readFileSync(join(dir, 'runs.log'), 'utf8').length : 0;

test('miss then hit: outputs, modes, symlinks, empty dirs, stdout and stderr are byte-identical', async () => {
  const dir = project();
  const miss = await runCli(RUN, { cwd: dir });
  assert.is(miss.code, 0, miss.err);
  assert.match(miss.err, /miss [0-9a-f]{10}/);
  const before = readTreeSnapshot(join(dir, 'out'));
  rmSync(join(dir, 'out'), { recursive: true });

  const hit = await runCli(RUN, { cwd: dir });
  assert.is(hit.code, 0, hit.err);
  assert.match(hit.err, /hit [0-9a-f]{10} .*restored 3 files/);
  assert.ok(hit.stdout.equals(miss.stdout), 'stdout bytes differ between miss and hit');
  assert.is(hit.err.split('\n')[0], 'warning: something on stderr');
  assert.equal(readTreeSnapshot(join(dir, 'out')), before);
  assert.is(runs(dir), 1, 'the command ran again on a hit');
  assert.is(
    readTreeSnapshot(join(dir, 'out'))['run.sh']?.type === 'file' &&
      (readTreeSnapshot(join(dir, 'out'))['run.sh'] as { mode: number }).mode,
    0o755,
  );
  assert.equal(readTreeSnapshot(join(dir, 'out'))['link.txt'], {
    type: 'symlink',
    target: 'nested/deeper/a.txt',
  });
  assert.equal(readTreeSnapshot(join(dir, 'out')).empty, { type: 'dir', mode: 0o755 });
});

test('a hit replaces changed outputs and removes stale ones', async () => {
  const dir = project();
  await runCli(RUN, { cwd: dir });
  const before = readTreeSnapshot(join(dir, 'out'));
  writeFileSync(join(dir, 'out/nested/deeper/a.txt'), 'tampered by the user');
  writeFileSync(join(dir, 'out/stale.txt'), 'left from an older build');
  const hit = await runCli(RUN, { cwd: dir });
  assert.match(hit.err, /hit/);
  assert.equal(readTreeSnapshot(join(dir, 'out')), before);
});

test('stdout and stderr keep their interleaving on a hit', async () => {
  const dir = tempDir();
  const script = `
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    (async () => { for (let i = 0; i < 4; i++) { process.stdout.write('out' + i + '\\n'); await sleep(120); process.stderr.write('err' + i + '\\n'); await sleep(120); } })();`;
  writeTree(dir, { 'inter.cjs': script });
  const both = (args: string[]) =>
    runProcess('sh', ['-c', `node "$CLI" ${args.map((a) => `'${a}'`).join(' ')} 2>&1`], {
      cwd: dir,
      env: { CLI: join(import.meta.dirname, '..', '..', 'dist', 'cli.cjs'), TASKVAULT_QUIET: '1' },
    });
  const args = ['run', '--inputs', 'inter.cjs', '--', 'node', 'inter.cjs'];
  const first = await both(args);
  const second = await both(args);
  const expected = 'out0\nerr0\nout1\nerr1\nout2\nerr2\nout3\nerr3\n';
  assert.is(first.out, expected);
  assert.is(second.out, expected);
});

test('exit codes pass through; failures are not cached unless --cache-failures', async () => {
  const dir = tempDir();
  writeTree(dir, {
    'fail.cjs': "require('fs').appendFileSync('runs.log','x'); console.log('failing'); process.exit(3);",
  });
  const base = ['run', '--inputs', 'fail.cjs', '--', 'node', 'fail.cjs'];
  const a = await runCli(base, { cwd: dir });
  const b = await runCli(base, { cwd: dir });
  assert.is(a.code, 3);
  assert.is(b.code, 3);
  assert.match(b.err, /not cached: exit code 3/);
  assert.is(runs(dir), 2);

  const c = await runCli(['run', '--cache-failures', ...base.slice(1)], { cwd: dir });
  const d = await runCli(['run', '--cache-failures', ...base.slice(1)], { cwd: dir });
  assert.is(c.code, 3);
  assert.is(d.code, 3);
  assert.match(d.err, /hit/);
  assert.is(d.out, 'failing\n');
  assert.is(runs(dir), 3);
});

test('input, declared env and argv changes miss; undeclared env and files outside the inputs still hit', async () => {
  const dir = project();
  const withEnv = [...RUN.slice(0, -3), '--env', 'MODE', '--', 'node', 'produce.cjs'];
  const status = async (args: string[], env: Record<string, string> = {}) => {
    const r = await runCli(args, { cwd: dir, env });
    assert.is(r.code, 0, r.err);
    return /taskvault: hit/.test(r.err) ? 'hit' : 'miss';
  };
  assert.is(await status(withEnv, { MODE: 'a' }), 'miss');
  assert.is(await status(withEnv, { MODE: 'a' }), 'hit');
  assert.is(await status(withEnv, { MODE: 'a', OTHER: 'changed' }), 'hit');
  writeFileSync(join(dir, 'unrelated.txt'), 'changed outside the inputs');
  assert.is(await status(withEnv, { MODE: 'a' }), 'hit');
  assert.is(await status(withEnv, { MODE: 'b' }), 'miss');
  assert.is(await status(withEnv, {}), 'miss', 'unset differs from set');
  writeFileSync(join(dir, 'src/in.txt'), 'new content\n');
  assert.is(await status(withEnv, { MODE: 'b' }), 'miss');
  assert.is(await status([...withEnv, 'extra-arg'], { MODE: 'b' }), 'miss');
  writeFileSync(join(dir, 'src/added.txt'), 'a new input file');
  assert.is(await status(withEnv, { MODE: 'b' }), 'miss');
  chmodSync(join(dir, 'src/added.txt'), 0o755);
  assert.is(await status(withEnv, { MODE: 'b' }), 'miss', 'the executable bit is part of the key');
  assert.is(await status(withEnv, { MODE: 'b' }), 'hit');
});

test('absolute input paths and globs, inside and outside the root, are part of the key', async () => {
  const dir = writeTree(tempDir(), { 'inside.txt': 'i1\n', 'src/a.txt': 'a1\n' });
  const other = writeTree(tempDir(), { 'o.txt': 'o1\n' });
  // A literal path (fast-glob), a simple glob (the plain walk) and a glob outside the project.
  const args = ['run', '--inputs', join(dir, 'inside.txt'), '--inputs', join(dir, 'src/**')];
  const cmd = ['--inputs', join(other, '*.txt'), '--', 'sh', '-c', `cat inside.txt src/a.txt ${other}/o.txt`];
  const run = async () => {
    const r = await runCli([...args, ...cmd], { cwd: dir });
    assert.is(r.code, 0, r.err);
    return `${/taskvault: hit/.test(r.err) ? 'hit' : 'miss'} ${r.out.replace(/\n/g, ' ').trim()}`;
  };
  assert.is(await run(), 'miss i1 a1 o1');
  assert.is(await run(), 'hit i1 a1 o1');
  for (const [file, content, expected] of [
    [join(dir, 'inside.txt'), 'i2\n', 'i2 a1 o1'],
    [join(dir, 'src/a.txt'), 'a2\n', 'i2 a2 o1'],
    [join(other, 'o.txt'), 'o2\n', 'i2 a2 o2'],
    [join(dir, 'inside.txt'), 'i3\n', 'i3 a2 o2'], // a second edit, after a hit
    [join(other, 'o.txt'), 'o3\n', 'i3 a2 o3'],
  ] as const) {
    writeFileSync(file, content);
    assert.is(await run(), `miss ${expected}`, `after writing ${file}`);
    assert.is(await run(), `hit ${expected}`, `repeat after writing ${file}`);
  }
  const dry = await runCli(['run', '--dry-run', '--json', ...args.slice(1), ...cmd], { cwd: dir });
  const parsed = JSON.parse(dry.out) as { fingerprint: { inputs: Array<[string, string, boolean]> } };
  // Named from the root like relative inputs; the project's cache is not among them.
  assert.equal(
    parsed.fingerprint.inputs.map((i) => i[0]),
    ['inside.txt', relative(dir, join(other, 'o.txt')), 'src/a.txt'].sort(),
  );
});

test('an input glob reaching above the working directory still leaves out node_modules, .git and the cache', async () => {
  const dir = writeTree(tempDir(), {
    'src/a.txt': 'a',
    'sub/s.txt': 's',
    'node_modules/m/i.js': 'm',
    '.git/HEAD': 'h',
  });
  for (const [cwd, args] of [
    [dir, ['--cwd', 'sub', '--inputs', join(dir, '**')]],
    [join(dir, 'sub'), ['--inputs', '../**']],
  ] as const) {
    const run = () => runCli(['run', ...args, '--', 'echo', cwd], { cwd });
    const first = await run();
    assert.match(first.err, /miss .* cached its logs/, `${args}: ${first.err}`);
    assert.match((await run()).err, /\bhit\b/, `${args}`);
    const dry = await runCli(['run', '--dry-run', '--json', ...args, '--', 'true'], { cwd });
    const parsed = JSON.parse(dry.out) as { fingerprint: { inputs: Array<[string, string, boolean]> } };
    assert.equal(
      parsed.fingerprint.inputs.map((i) => i[0]),
      ['src/a.txt', 'sub/s.txt'],
    );
  }
});

test('--force runs again and stores; --no-cache and TASKVAULT_DISABLE pass straight through', async () => {
  const dir = project();
  await runCli(RUN, { cwd: dir });
  const forced = await runCli(['run', '--force', ...RUN.slice(1)], { cwd: dir });
  assert.match(forced.err, /taskvault: forced [0-9a-f]{10} .* cached/);
  assert.not.match(forced.err, /miss/);
  assert.is(runs(dir), 2);

  const plain = tempDir();
  writeTree(plain, { 'src/in.txt': 'x', 'produce.cjs': PRODUCE });
  const off = await runCli(['run', '--no-cache', ...RUN.slice(1)], { cwd: plain });
  assert.is(off.code, 0);
  const env = await runCli(RUN, { cwd: plain, env: { TASKVAULT_DISABLE: '1' } });
  assert.is(env.code, 0);
  assert.is(runs(plain), 2);
  assert.not.ok(existsSync(join(plain, '.taskvault')), 'disabled runs must not create a cache');
});

test('--dry-run prints the key and whether it would hit, and runs nothing', async () => {
  const dir = project();
  const dry1 = await runCli(['run', '--dry-run', ...RUN.slice(1)], { cwd: dir });
  assert.is(dry1.code, 0);
  assert.match(dry1.out, /^[0-9a-f]{64} miss\n$/);
  assert.is(runs(dir), 0, `dry run executed the command? dir=${dir} stderr=${dry1.err}`);
  await runCli(RUN, { cwd: dir });
  const dry2 = await runCli(['run', '--dry-run', ...RUN.slice(1)], { cwd: dir });
  assert.is(dry2.out, `${dry1.out.split(' ')[0]} hit\n`);
  const json = await runCli(['run', '--dry-run', '--json', ...RUN.slice(1)], { cwd: dir });
  const parsed = JSON.parse(json.out) as { hit: boolean; fingerprint: { inputs: unknown[] } };
  assert.is(parsed.hit, true);
  assert.is(parsed.fingerprint.inputs.length, 2);
});

test("--json writes a machine-readable summary to stderr, keeping stdout the command's own", async () => {
  const dir = project();
  const r = await runCli(['run', '--json', ...RUN.slice(1)], { cwd: dir });
  const last = JSON.parse(r.err.trim().split('\n').at(-1)!) as {
    kind: string;
    exitCode: number;
    stored: boolean;
  };
  assert.is(last.kind, 'miss');
  assert.is(last.stored, true);
  const h = await runCli(['run', '--json', ...RUN.slice(1)], { cwd: dir });
  assert.is((JSON.parse(h.err.trim().split('\n').at(-1)!) as { kind: string }).kind, 'hit');
  assert.ok(h.stdout.equals(r.stdout));
});

test('a single shell-string argument runs through the shell; --shell forces it', async () => {
  const dir = tempDir();
  const a = await runCli(['run', '--inputs', 'none', '--', 'echo one && echo two | tr a-z A-Z'], {
    cwd: dir,
  });
  assert.is(a.out, 'one\nTWO\n');
  const b = await runCli(['run', '--inputs', 'none', '--', 'echo one && echo two | tr a-z A-Z'], {
    cwd: dir,
  });
  assert.is(b.out, 'one\nTWO\n');
  assert.match(b.err, /hit/);
  const c = await runCli(['run', '--shell', '--inputs', 'none', '--', 'echo', '$((6*7))'], { cwd: dir });
  assert.is(c.out, '42\n');
  const argv = await runCli(['run', '--inputs', 'none', '--', 'echo', '$HOME', '&&', 'x'], { cwd: dir });
  assert.is(argv.out, '$HOME && x\n', 'argv mode passes arguments untouched');
});

test('no declared inputs: every file under the working directory counts, outputs and the cache excluded', async () => {
  const dir = tempDir();
  writeTree(dir, { 'a.txt': 'a', 'sub/b.txt': 'b', 'node_modules/dep/index.js': '1' });
  const args = [
    'run',
    '--outputs',
    'out/**',
    '--',
    'sh',
    '-c',
    'mkdir -p out && cat a.txt sub/b.txt > out/ab.txt',
  ];
  assert.match((await runCli(args, { cwd: dir })).err, /miss/);
  assert.match(
    (await runCli(args, { cwd: dir })).err,
    /hit/,
    'its own outputs and the cache dir must not change the key',
  );
  writeFileSync(join(dir, 'node_modules/dep/index.js'), '2');
  assert.match((await runCli(args, { cwd: dir })).err, /hit/, 'node_modules is excluded by default');
  writeFileSync(join(dir, 'sub/b.txt'), 'changed');
  assert.match((await runCli(args, { cwd: dir })).err, /miss/);
  const dry = JSON.parse(
    (await runCli(['run', '--dry-run', '--json', ...args.slice(1)], { cwd: dir })).out,
  ) as {
    fingerprint: { inputs: Array<[string, string, boolean]> };
  };
  assert.equal(
    dry.fingerprint.inputs.map((i) => i[0]),
    ['a.txt', 'sub/b.txt'],
  );
});

test('the cache lives under the project root; --cache-dir and TASKVAULT_CACHE_DIR override it', async () => {
  const dir = project();
  writeFileSync(join(dir, 'taskvault.config.json'), '{}');
  const sub = join(dir, 'src');
  await runCli(['run', '--inputs', 'in.txt', '--', 'true'], { cwd: sub });
  assert.ok(existsSync(join(dir, '.taskvault/cache/index')), 'cache at the project root');
  const other = tempDir();
  await runCli(['run', '--cache-dir', join(other, 'c1'), '--inputs', 'in.txt', '--', 'true'], { cwd: sub });
  await runCli(['run', '--inputs', 'in.txt', '--', 'true'], {
    cwd: sub,
    env: { TASKVAULT_CACHE_DIR: join(other, 'c2') },
  });
  assert.ok(existsSync(join(other, 'c1/index')));
  assert.ok(existsSync(join(other, 'c2/index')));
});

test('sha256 is used when configured and gives different keys from blake3', async () => {
  const dir = project();
  const b3 = await runCli(['run', '--dry-run', ...RUN.slice(1)], { cwd: dir });
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify({ hashAlgorithm: 'sha256' }));
  const sha = await runCli(['run', '--dry-run', '--json', ...RUN.slice(1)], { cwd: dir });
  const parsed = JSON.parse(sha.out) as { key: string; fingerprint: { algorithm: string } };
  assert.is(parsed.fingerprint.algorithm, 'sha256');
  assert.is.not(parsed.key, b3.out.split(' ')[0]);
  assert.is((await runCli(RUN, { cwd: dir })).code, 0);
  assert.match((await runCli(RUN, { cwd: dir })).err, /hit/);
});

test('a tampered blob is detected: warning, the entry is dropped, the command runs, outputs are right', async () => {
  const dir = project();
  await runCli(RUN, { cwd: dir });
  const good = readTreeSnapshot(join(dir, 'out'));
  const blobsDir = join(dir, '.taskvault/cache/blobs');
  let tampered = 0;
  for (const fan of readdirSync(blobsDir)) {
    for (const name of readdirSync(join(blobsDir, fan))) {
      const p = join(blobsDir, fan, name);
      const data = readFileSync(p);
      if (data.length > 60000) {
        data[100] = data[100]! ^ 0xff;
        writeFileSync(p, data);
        tampered++;
      }
    }
  }
  assert.is(tampered, 1);
  rmSync(join(dir, 'out'), { recursive: true });
  const r = await runCli(RUN, { cwd: dir });
  assert.is(r.code, 0);
  assert.match(r.err, /not used: output blob corrupt/);
  assert.match(r.err, /miss/);
  assert.is(runs(dir), 2);
  assert.equal(readTreeSnapshot(join(dir, 'out')), good);
  assert.match(readFileSync(join(dir, '.taskvault/cache/audit.log'), 'utf8'), /ERROR run .*corrupt/);
  assert.match((await runCli(RUN, { cwd: dir })).err, /hit/);
});

test('--quiet and TASKVAULT_QUIET suppress the summary line', async () => {
  const dir = project();
  const q = await runCli(['run', '--quiet', ...RUN.slice(1)], { cwd: dir });
  assert.is(q.err, 'warning: something on stderr\n');
  const e = await runCli(RUN, { cwd: dir, env: { TASKVAULT_QUIET: '1' } });
  assert.is(e.err, 'warning: something on stderr\n');
});

test('a command that does not exist exits 127 like a shell, with one line', async () => {
  const dir = tempDir();
  const r = await runCli(['run', '--inputs', 'x', '--', 'definitely-not-a-command-xyz'], { cwd: dir });
  assert.is(r.code, 127);
  assert.match(r.err, /definitely-not-a-command-xyz/);
  assert.not.match(r.err, /\n\s+at /, 'no stack trace');
});

test('stdin is inherited by the command', async () => {
  const dir = tempDir();
  const r = await runCli(['run', '--inputs', 'none', '--', 'sh', '-c', 'tr a-z A-Z'], {
    cwd: dir,
    input: 'from stdin\n',
  });
  assert.is(r.out, 'FROM STDIN\n');
});

test('a reader that closes early (| head -1) ends the command like it would without TaskVault', async () => {
  const dir = tempDir();
  const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli.cjs');
  const pipeline = (cmd: string) =>
    runProcess(
      'bash',
      ['-c', `node "${cli}" run --inputs none -- ${cmd} | head -1; echo "status \${PIPESTATUS[0]}" >&2`],
      { cwd: dir },
    );
  const endless = await pipeline('yes');
  assert.is(endless.out, 'y\n');
  assert.match(endless.err, /status 141/, 'the child got SIGPIPE and its status passed through');
  assert.match(endless.err, /not cached: the run was interrupted \(SIGPIPE\)/);
  await runCli(['run', '--inputs', 'none', '--', 'seq', '1', '200000'], { cwd: dir });
  const replay = await pipeline('seq 1 200000');
  assert.is(replay.out, '1\n');
  assert.match(replay.err, /hit/);
  assert.match(replay.err, /status 0/);
  assert.not.match(replay.err, /EPIPE|\n\s+at /);
});

test('inputs edited while the command runs: the result is not stored under the old key', async () => {
  const dir = tempDir();
  writeTree(dir, { 'src/a.txt': 'v1', 'edit.sh': 'cat src/a.txt; echo v2 > src/a.txt' });
  const args = ['run', '--inputs', 'src/**', '--', 'sh', 'edit.sh'];
  const first = await runCli(args, { cwd: dir });
  assert.is(first.out, 'v1');
  assert.match(first.err, /not cached: inputs changed while the command ran/);
  writeFileSync(join(dir, 'src/a.txt'), 'v1');
  assert.match((await runCli(['run', '--dry-run', ...args.slice(1)], { cwd: dir })).out, / miss\n$/);
});

test('a same-size edit while the command runs is caught too (stat compared, racy files re-read)', async () => {
  const dir = tempDir();
  // Same length before and after, so only the content (and mtime) tell the edit apart.
  writeTree(dir, {
    'src/a.txt': 'AAAA',
    'src/b.txt': 'keep',
    'edit.sh': 'cat src/a.txt; printf BBBB > src/a.txt',
  });
  const args = ['run', '--inputs', 'src/**', '--', 'sh', 'edit.sh'];
  const first = await runCli(args, { cwd: dir });
  assert.is(first.out, 'AAAA');
  assert.match(first.err, /not cached: inputs changed while the command ran/);
  // A run that leaves its inputs alone is stored and then served.
  writeTree(dir, { 'edit.sh': 'cat src/a.txt' });
  assert.match((await runCli(args, { cwd: dir })).err, /miss .*cached/);
  assert.match((await runCli(args, { cwd: dir })).err, /hit /);
});

test('edits while the command runs are caught when the directories are settled (no walk again)', async () => {
  // Directories settled before the run (past the racy window: ctime cannot be set back, so this
  // waits it out) vouch for the file list, so the check after the command stats the known files in
  // place: it must still see content, mode and same-size edits with the time put back.
  const edits: Record<string, string> = {
    content: 'printf BBBBB > src/a.txt',
    'same size, time put back': "printf BBBB > src/a.txt; touch -d '@1700000000' src/a.txt",
    'exec bit': 'chmod +x src/a.txt',
    none: '',
  };
  const dirs = Object.values(edits).map((edit) =>
    writeTree(tempDir(), { 'src/a.txt': 'AAAA', 'src/b.txt': 'keep', 'edit.sh': `cat src/a.txt; ${edit}` }),
  );
  await new Promise((r) => setTimeout(r, RACY_WINDOW_MS + 100));
  const args = ['run', '--inputs', 'src/**', '--', 'sh', 'edit.sh'];
  for (const [k, what] of Object.keys(edits).entries()) {
    const first = await runCli(args, { cwd: dirs[k]!, env: { TASKVAULT_TRACE: '1' } });
    assert.is(first.out, 'AAAA', what);
    assert.match(first.err, /recheck in place/, `${what}: the path under test was taken`);
    if (what === 'none') {
      assert.match(first.err, /miss .*cached/);
      assert.match((await runCli(args, { cwd: dirs[k]! })).err, /hit /);
    } else assert.match(first.err, /not cached: inputs changed while the command ran/, what);
  }
});

test('a cache dir that cannot be created (under /proc) never blocks the command', async () => {
  const dir = tempDir();
  const r = await runCli(['run', '--inputs', 'none', '--', 'echo', 'still runs'], {
    cwd: dir,
    env: { TASKVAULT_CACHE_DIR: '/proc/taskvault-nope/cache' },
    timeoutMs: 20_000,
  });
  assert.is(r.signal, null, 'timed out: creating the cache dir hung');
  assert.is(r.code, 0);
  assert.is(r.out, 'still runs\n');
  assert.match(r.err, /warning: cache skipped/);
});

test('a run exits as soon as it is done, yet a slow reader still gets all of a large output, on a miss and a hit', async () => {
  const dir = tempDir();
  const cmd = [
    '--inputs',
    'none',
    '--',
    'node',
    '-e',
    "process.stdout.write('x'.repeat(4 << 20)); process.exitCode = 3",
  ];
  // The reader takes nothing for the first 300 ms, then reads slowly: TaskVault must not exit
  // (src/cli.cts, exitWhenDone) with output still unwritten.
  const slowRead = () =>
    new Promise<{ bytes: number; code: number | null }>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, 'run', '--cache-failures', ...cmd], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let bytes = 0;
      child.stdout.pause();
      setTimeout(() => {
        child.stdout.on('data', (d: Buffer) => {
          bytes += d.length;
          child.stdout.pause();
          setTimeout(() => child.stdout.resume(), 1);
        });
        child.stdout.resume();
      }, 300);
      child.on('error', reject);
      child.on('close', (code) => resolve({ bytes, code }));
    });
  const miss = await slowRead();
  assert.equal(miss, { bytes: 4 << 20, code: 3 });
  const hit = await slowRead();
  assert.equal(hit, { bytes: 4 << 20, code: 3 });
  const r = await runCli(['run', '--cache-failures', ...cmd], { cwd: dir });
  assert.match(r.err, /hit/, 'the second was a hit');
});

test('a command that cannot start: one line per message, 127/126, never cached', async () => {
  const dir = writeTree(tempDir(), { 'data.txt': 'not executable' });
  const missing = await runCli(['run', '--', 'no-such-command-xyz'], { cwd: dir });
  assert.is(missing.code, 127);
  for (const line of missing.err.trim().split('\n')) assert.match(line, /^taskvault: /);
  assert.match(missing.err, /warning: command not found: no-such-command-xyz\n/);
  // The warning gave the cause; the summary does not repeat it.
  assert.match(missing.err, /no-such-command-xyz · ran in \S+ · not cached\n$/);
  assert.is(missing.err.match(/command not found/g)?.length, 1, missing.err);
  const uncached = await runCli(['run', '--no-cache', '--', 'no-such-command-xyz'], { cwd: dir });
  assert.is(uncached.code, 127);
  assert.match(
    uncached.err,
    /^taskvault: warning: command not found: no-such-command-xyz\ntaskvault: ran uncached/,
  );
  const noExec = await runCli(['run', '--', './data.txt'], { cwd: dir });
  assert.is(noExec.code, 126);
  assert.match(noExec.err, /permission denied: \.\/data\.txt/);
  assert.is(noExec.err.trim().split('\n').length, 2, noExec.err);
  const badCwd = await runCli(['run', '--cwd', 'nowhere', '--', 'true'], { cwd: dir });
  assert.is(badCwd.code, 127);
  assert.match(badCwd.err, /working directory does not exist: .*nowhere/);
});

test('--dry-run never runs the command, even when the cache is disabled or cannot be opened', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'x', 'not-a-dir': '' });
  const side = join(dir, 'side.txt');
  const cmd = ['--', 'sh', '-c', `echo ran > ${side}`];
  const cases: Array<{ args: string[]; env?: Record<string, string> }> = [
    { args: ['run', '--dry-run', ...cmd], env: { TASKVAULT_DISABLE: '1' } },
    { args: ['run', '--no-cache', '--dry-run', ...cmd] },
    { args: ['run', '--dry-run', '--cache-dir', join(dir, 'not-a-dir'), ...cmd] },
  ];
  for (const c of cases) {
    const r = await runCli(c.args, { cwd: dir, env: c.env ?? {} });
    assert.is(r.code, 74, `${c.args.join(' ')}: ${r.err}`);
    assert.ok(oneLine(r.err), r.err);
    assert.match(r.err, /cannot look the key up: .*nothing was run/);
    assert.not.ok(existsSync(side), `${c.args.join(' ')} ran the command`);
  }
  // With a usable cache it still answers as before, and without one it creates none.
  const ok = await runCli(['run', '--dry-run', ...cmd], { cwd: dir });
  assert.is(ok.code, 0, ok.err);
  assert.match(ok.out, /^[0-9a-f]{64} miss\n$/);
  assert.not.ok(existsSync(side));
  assert.not.ok(existsSync(join(dir, '.taskvault')), 'a dry run created the cache');
});

test('one argument naming an existing file with a space runs that file, not shell words', async () => {
  const dir = writeTree(tempDir(), { 'my script.sh': '#!/bin/sh\necho from-script\n' });
  chmodSync(join(dir, 'my script.sh'), 0o755);
  const r = await runCli(['run', '--', './my script.sh'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(r.out, 'from-script\n');
  // Shell code still runs through the shell.
  const sh = await runCli(['run', '--', 'echo a && echo b'], { cwd: dir });
  assert.is(sh.out, 'a\nb\n', sh.err);
});

test.run();

/**
 * The speed-ups must not change what runs: the evaluated-config cache (invalidated by any edit,
 * skipped for dynamic configs, never loading jiti when it applies), the racy-write rule end to end
 * (manifest.test.ts has it in detail), hashing threads, and restores that still verify every byte.
 */
import {
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configCachePath, isStaticConfigSource } from '../../src/config/config-cache.js';
import { hashBytes, hashFile } from '../../src/fingerprint/hash.js';
import { CLI, linkNodeModules, REPO, runCli, runProcess, tempDir, writeTree } from '../support/helpers.js';

/**
 * Appends to $TV_LOAD_LOG every URL that import() resolves (packages loaded on demand) and, at exit,
 * every Node built-in module the process loaded, as `node:<name>`.
 */
function loadTracer(): { flags: string[]; loaded: (log: string) => string[] } {
  const dir = tempDir('tv-tracer-');
  writeTree(dir, {
    'hooks.mjs': `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (process.env.TV_LOAD_LOG) appendFileSync(process.env.TV_LOAD_LOG, r.url + '\\n');
  return r;
}\n`,
    'register.mjs': `import { appendFileSync } from 'node:fs';
import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
process.on('exit', () => {
  const builtins = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => 'node:' + m.slice(13));
  if (process.env.TV_LOAD_LOG) appendFileSync(process.env.TV_LOAD_LOG, builtins.join('\\n') + '\\n');
});\n`,
  });
  return {
    flags: ['--import', pathToFileURL(join(dir, 'register.mjs')).href],
    loaded: (log) => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []),
  };
}

const configWith = (message: string) => `import { defineConfig } from 'taskvault';

// A static config: plain data only.
export default defineConfig({
  tasks: {
    say: { command: ['node', '-e', "require('fs').writeFileSync('out.txt', '${message}')"], inputs: ['in.txt'], outputs: ['out.txt'] },
  },
});
`;

test('an unchanged static .ts config is served from its cached value, without loading jiti', async () => {
  const dir = tempDir();
  writeTree(dir, { 'in.txt': 'x', 'taskvault.config.ts': configWith('first') });
  linkNodeModules(dir);
  const tracer = loadTracer();
  const run = (log: string) =>
    runProcess(process.execPath, [...tracer.flags, CLI, 'run', 'say'], {
      cwd: dir,
      env: { TV_LOAD_LOG: join(dir, log) },
    });

  const a = await run('a.log');
  assert.is(a.code, 0, a.err);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'first');
  assert.ok(
    tracer.loaded(join(dir, 'a.log')).some((u) => u.includes('/jiti/')),
    'first run evaluates the config with jiti',
  );
  assert.ok(existsSync(configCachePath(join(dir, 'taskvault.config.ts'))), 'evaluated value was kept');
  const loadedA = tracer.loaded(join(dir, 'a.log'));
  assert.ok(
    loadedA.includes('node:child_process') && !loadedA.some((u) => /\/execa[./]/.test(u)),
    'a miss runs execa from dist/vendor/execa.cjs with the code cache: the execa package is not imported',
  );

  rmSync(join(dir, 'out.txt'));
  const b = await run('b.log');
  assert.is(b.code, 0, b.err);
  assert.match(b.err, /hit/);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'first');
  const loadedB = tracer.loaded(join(dir, 'b.log'));
  assert.ok(loadedB.includes('node:fs'), 'the tracer saw the CLI load');
  // child_process is what execa (and anything that spawns) loads first.
  assert.not.ok(
    loadedB.some((u) => /jiti|execa|chokidar|node:child_process/.test(u)),
    `hit path loaded: ${loadedB.filter((u) => /jiti|execa|chokidar|node:child_process/.test(u))}`,
  );

  // Same length, same mtime: only the content differs, and the new command must run.
  const path = join(dir, 'taskvault.config.ts');
  writeFileSync(path, configWith('other'));
  utimesSync(path, new Date(1_600_000_000_000), new Date(1_600_000_000_000));
  const c = await run('c.log');
  assert.is(c.code, 0, c.err);
  assert.match(c.err, /miss/);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'other');
  assert.ok(
    tracer.loaded(join(dir, 'c.log')).some((u) => u.includes('/jiti/')),
    'changed config re-evaluated',
  );
});

test('a miss and a hit load none of node:crypto, worker_threads, performance and v8; a hit no child_process', async () => {
  // A plain -r preload (the --import tracer above starts a loader thread, which loads worker_threads).
  const dir = writeTree(tempDir(), {
    'in.txt': 'x',
    'builtins.cjs':
      "process.on('exit', () => require('fs').writeFileSync(process.env.TV_BUILTINS, process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)).join('\\n')));\n",
  });
  const run = async (log: string) => {
    const r = await runProcess(
      process.execPath,
      ['-r', join(dir, 'builtins.cjs'), CLI, 'run', '--inputs', 'in.txt', '--', 'node', '-e', '0'],
      { cwd: dir, env: { TV_BUILTINS: join(dir, log) } },
    );
    assert.is(r.code, 0, r.err);
    return { err: r.err, loaded: readFileSync(join(dir, log), 'utf8').split('\n') };
  };
  // v8: execa imports it for an option TaskVault never sets (scripts/bundle.mjs).
  const unneeded = ['crypto', 'worker_threads', 'internal/perf/performance', 'v8'];
  const miss = await run('miss.log');
  assert.match(miss.err, /miss/);
  assert.ok(miss.loaded.includes('child_process'), 'the log is of the CLI itself');
  assert.equal(
    miss.loaded.filter((m) => unneeded.includes(m)),
    [],
  );
  const hit = await run('hit.log');
  assert.match(hit.err, /hit/);
  assert.equal(
    hit.loaded.filter((m) => [...unneeded, 'child_process'].includes(m)),
    [],
  );
});

test('literal input paths are found without fast-glob: one that appears, changes or goes changes the key', async () => {
  const config = (inputs: string) =>
    `export default { tasks: { t: { command: ['node', '-e', 'process.stdout.write("ran")'], inputs: ${inputs} } } };\n`;
  const dir = writeTree(tempDir(), {
    'src/a.txt': 'a',
    'taskvault.config.mjs': config("['src/**', 'extra.json']"),
  });
  // The trace names every part the bin loads, fast-glob's included (code cache: used|wrote ...).
  const env = { TASKVAULT_TRACE: '1', TASKVAULT_COMPILE_CACHE: tempDir('tv-cc-') };
  const run = async () => {
    const r = await runCli(['run', 't'], { cwd: dir, env });
    assert.is(r.code, 0, r.err);
    return r.err;
  };
  const first = await run();
  assert.match(first, /input glob 'extra\.json' matched no files/);
  assert.match(first, /miss/);
  assert.match(await run(), /hit/);
  writeFileSync(join(dir, 'extra.json'), '{}');
  assert.match(await run(), /miss/, 'it appeared');
  assert.match(await run(), /hit/);
  writeFileSync(join(dir, 'extra.json'), '{"x":1}');
  assert.match(await run(), /miss/, 'it changed');
  rmSync(join(dir, 'extra.json'));
  const gone = await run();
  assert.match(gone, /hit/, 'it went: the first key again');
  assert.not.match(gone, /-fast-glob-/, 'fast-glob was loaded');
  // The control: a glob the walks do not take does load it, and the trace says so.
  writeFileSync(join(dir, 'taskvault.config.mjs'), config("['src/**', '*.json']"));
  assert.match(await run(), /-fast-glob-/);
});

test('a config that reads the environment is evaluated on every run', async () => {
  const dir = tempDir();
  writeTree(dir, {
    'in.txt': 'x',
    'taskvault.config.ts': `export default {
  tasks: { say: { command: ['node', '-e', "require('fs').writeFileSync('out.txt', '" + process.env.TV_MSG + "')"], outputs: ['out.txt'], inputs: ['in.txt'] } },
};\n`,
  });
  const one = await runCli(['run', 'say'], { cwd: dir, env: { TV_MSG: 'one' } });
  assert.is(one.code, 0, one.err);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'one');
  assert.not.ok(existsSync(configCachePath(join(dir, 'taskvault.config.ts'))), 'dynamic config not cached');
  const two = await runCli(['run', 'say'], { cwd: dir, env: { TV_MSG: 'two' } });
  assert.is(two.code, 0, two.err);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'two');
});

test('a corrupt or foreign evaluated-config file is ignored and replaced', async () => {
  const dir = tempDir();
  writeTree(dir, { 'in.txt': 'x', 'taskvault.config.ts': configWith('fine') });
  linkNodeModules(dir);
  const cachePath = configCachePath(join(dir, 'taskvault.config.ts'));
  writeTree(dir, {
    [join('.taskvault', 'taskvault.config.ts.evaluated.json')]: '{"key": "nope", "value": {"tasks"',
  });
  const r = await runCli(['run', 'say'], { cwd: dir });
  assert.is(r.code, 0, r.err);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'fine');
  assert.ok(JSON.parse(readFileSync(cachePath, 'utf8')).value.tasks.say, 'rewritten with the real value');
  // A value cached under another source's key is not used.
  writeFileSync(cachePath, JSON.stringify({ key: 'f'.repeat(64), value: { tasks: {} } }));
  rmSync(join(dir, 'out.txt'));
  const again = await runCli(['run', 'say'], { cwd: dir });
  assert.is(again.code, 0, again.err);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'fine');
});

test('isStaticConfigSource: imports other than taskvault, env, time and randomness are dynamic', () => {
  assert.ok(isStaticConfigSource(configWith('x')));
  assert.ok(isStaticConfigSource("import type { TaskVaultConfig } from 'taskvault';\nexport default {};"));
  assert.not.ok(isStaticConfigSource("import base from './base.ts';\nexport default base;"));
  assert.not.ok(isStaticConfigSource('export default { salt: process.env.SALT };'));
  assert.not.ok(isStaticConfigSource('export default { salt: String(Date.now()) };'));
  assert.not.ok(isStaticConfigSource("const m = await import('./x.js'); export default m;"));
  assert.not.ok(isStaticConfigSource('export default { cacheDir: import.meta.dirname };'));
  // Words inside strings and comments are data; code hidden behind quotes in comments is not.
  assert.ok(isStaticConfigSource("// process.env is not read here\nexport default { c: 'process.env' };"));
  assert.not.ok(isStaticConfigSource("export default { a: 'http://x', b: process.env.B };"));
  assert.not.ok(isStaticConfigSource("/* ' */ export default { b: process.env.B }; /* ' */"));
  assert.not.ok(isStaticConfigSource(['export default { b: `$', '{1 + 1}` };'].join('')));
});

test('a racily modified input is re-hashed end to end: the run after a same-size edit misses', async () => {
  const dir = tempDir();
  writeTree(dir, {
    'in.txt': 'v1',
    'cmd.cjs': "require('fs').writeFileSync('out.txt', require('fs').readFileSync('in.txt'))",
  });
  const args = [
    'run',
    '--inputs',
    'in.txt',
    '--inputs',
    'cmd.cjs',
    '--outputs',
    'out.txt',
    '--',
    'node',
    'cmd.cjs',
  ];
  const first = await runCli(args, { cwd: dir });
  assert.is(first.code, 0, first.err);
  // Same size, and the mtime put back to what the first run saw: only the content (and ctime) differ.
  const { mtime } = await import('node:fs').then((fs) => fs.statSync(join(dir, 'in.txt')));
  writeFileSync(join(dir, 'in.txt'), 'v2');
  utimesSync(join(dir, 'in.txt'), mtime, mtime);
  const second = await runCli(args, { cwd: dir });
  assert.is(second.code, 0, second.err);
  assert.match(second.err, /miss/);
  assert.is(readFileSync(join(dir, 'out.txt'), 'utf8'), 'v2');
});

test('the hashing threads give the same hashes as the main thread, copy exactly, and report a missing file', async () => {
  // Through dist/: the worker file is the built one, as in production.
  const pool = (await import(
    pathToFileURL(join(REPO, 'dist/fingerprint/hash-pool.js')).href
  )) as typeof import('../../src/fingerprint/hash-pool.js');
  const dir = tempDir();
  const big = Buffer.alloc(9 * 1024 * 1024 + 7); // spans several reads of a worker's buffer
  for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
  writeTree(dir, { empty: '', small: 'small file', exact: Buffer.alloc(4 * 1024 * 1024, 1), big });
  const paths = ['empty', 'small', 'exact', 'big'].map((n) => join(dir, n));
  const jobs = paths.map((abs) => ({ abs, size: statSync(abs).size }));
  for (const algorithm of ['blake3', 'sha256'] as const) {
    const expected = await Promise.all(paths.map((p) => hashFile(algorithm, p, statSync(p).size)));
    assert.equal(await pool.hashFilesInPool(algorithm, jobs, 2, false), expected, 'workers only');
    assert.equal(await pool.hashFilesInPool(algorithm, jobs, 2), expected, 'workers and this thread');
    assert.is(expected[1], hashBytes(algorithm, 'small file'));
    // Copying while hashing: the copies are byte-identical and the hashes the same.
    for (const [tag, hereToo] of [
      ['w', false],
      ['h', true],
    ] as const) {
      const copies = jobs.map((j) => ({ ...j, dest: `${j.abs}.${algorithm}.${tag}` }));
      assert.equal(await pool.hashFilesInPool(algorithm, copies, 2, hereToo), expected);
      for (const c of copies) assert.ok(readFileSync(c.dest).equals(readFileSync(c.abs)), c.dest);
    }
  }
  try {
    await pool.hashFilesInPool('blake3', [...jobs, { abs: join(dir, 'gone'), size: 1 }], 2, false);
    assert.unreachable('a missing file must reject');
  } catch (e) {
    assert.is((e as NodeJS.ErrnoException).code, 'ENOENT');
  }
});

test('copying for a restore refuses a destination whose parent became a symlink, on every thread', async () => {
  const pool = (await import(
    pathToFileURL(join(REPO, 'dist/fingerprint/hash-pool.js')).href
  )) as typeof import('../../src/fingerprint/hash-pool.js');
  const root = tempDir();
  const outside = tempDir();
  writeTree(root, { 'blob.bin': 'cached bytes', 'out/.keep': '' });
  // out/ was checked and made before the copies start; then it is swapped for a link outside.
  rmSync(join(root, 'out'), { recursive: true });
  symlinkSync(outside, join(root, 'out'));
  const job = { abs: join(root, 'blob.bin'), size: 12, dest: join(root, 'out', 'f.tmp'), within: root };
  for (const hereToo of [true, false]) {
    try {
      await pool.hashFilesInPool('blake3', [job, { ...job, dest: join(root, 'out', 'g.tmp') }], 2, hereToo);
      assert.unreachable('wrote through a symlinked parent');
    } catch (e) {
      assert.is((e as NodeJS.ErrnoException).code, 'ESYMLINK');
    }
  }
  assert.equal(readdirSync(outside), [], 'a file was written outside the root');
});

test('large inputs and outputs (threaded hashing, verify while cloning): a changed input misses, a corrupt blob is caught', async () => {
  const dir = tempDir();
  const mb = 1024 * 1024;
  const block = (seed: number) => Buffer.alloc(36 * mb, seed);
  writeTree(dir, {
    'data/a.bin': block(1),
    'data/b.bin': block(2),
    'copy.cjs':
      "const fs=require('fs');fs.mkdirSync('out',{recursive:true});for(const f of fs.readdirSync('data'))fs.copyFileSync('data/'+f,'out/'+f);",
  });
  const args = [
    'run',
    '--inputs',
    'data/**',
    '--inputs',
    'copy.cjs',
    '--outputs',
    'out',
    '--',
    'node',
    'copy.cjs',
  ];
  const miss = await runCli(args, { cwd: dir });
  assert.is(miss.code, 0, miss.err);
  assert.match(miss.err, /miss/);
  rmSync(join(dir, 'out'), { recursive: true });
  const hit = await runCli(args, { cwd: dir });
  assert.match(hit.err, /hit/);
  assert.ok(readFileSync(join(dir, 'out/b.bin')).equals(block(2)));

  // Same size, new content: must miss (the stat cache must not vouch for it).
  const changed = block(2);
  changed[changed.length - 1] = 9;
  writeFileSync(join(dir, 'data/b.bin'), changed);
  const again = await runCli(args, { cwd: dir });
  assert.match(again.err, /miss/);
  assert.ok(readFileSync(join(dir, 'out/b.bin')).equals(changed));

  // Flip one byte of one output blob: the hit must refuse it and rerun.
  const blobs = join(dir, '.taskvault/cache/blobs');
  const target = readdirSync(blobs)
    .flatMap((fan) => readdirSync(join(blobs, fan)).map((n) => join(blobs, fan, n)))
    .find((p) => statSync(p).size === changed.length && readFileSync(p).equals(changed))!;
  assert.ok(target, 'found the blob of out/b.bin');
  const bad = Buffer.from(changed);
  bad[123] = 0xee;
  writeFileSync(target, bad);
  rmSync(join(dir, 'out'), { recursive: true });
  const caught = await runCli(args, { cwd: dir });
  assert.is(caught.code, 0, caught.err);
  assert.match(caught.err, /not used: output blob corrupt/);
  assert.ok(readFileSync(join(dir, 'out/b.bin')).equals(changed), 'outputs are right after the rerun');
  assert.not.ok(
    readdirSync(join(dir, 'out')).some((n) => n.includes('.tv-')),
    'no temp file left beside the outputs',
  );
});

test.run();

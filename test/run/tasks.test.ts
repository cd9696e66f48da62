/** Named tasks from taskvault.config.{ts,mjs,json}, the fixtures as real projects, npm scripts and make. */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CLI,
  fixture,
  pathWithBin,
  readTreeSnapshot,
  runCli,
  runProcess,
  tempDir,
  writeTree,
} from '../support/helpers.js';

test('fixture csv-report: a named task from taskvault.config.ts misses, then hits with identical outputs', async () => {
  const dir = fixture('csv-report');
  const env = { REPORT_WORK_MS: '50' };
  const miss = await runCli(['run', 'report'], { cwd: dir, env });
  assert.is(miss.code, 0, miss.err);
  assert.match(miss.err, /miss .* report .* cached 5 files/);
  const before = readTreeSnapshot(join(dir, 'out'));
  assert.ok(
    JSON.parse(Buffer.from((before['summary.json'] as { content: string }).content, 'base64').toString())
      .north,
  );
  rmSync(join(dir, 'out'), { recursive: true });
  const hit = await runCli(['run', 'report'], { cwd: dir, env });
  assert.match(hit.err, /hit .* report .* restored 5 files/);
  assert.is(hit.out, miss.out);
  assert.equal(readTreeSnapshot(join(dir, 'out')), before);
  // Declared env var is part of the key.
  assert.match((await runCli(['run', 'report'], { cwd: dir, env: { REPORT_WORK_MS: '51' } })).err, /miss/);
  // Input change is a miss.
  writeFileSync(
    join(dir, 'data/sales.csv'),
    `${readFileSync(join(dir, 'data/sales.csv'), 'utf8')}999,north,1,1.00\n`,
  );
  assert.match((await runCli(['run', 'report'], { cwd: dir, env })).err, /miss/);
});

test('fixture ts-lib: a real tsc build through TaskVault, restored on a hit', async () => {
  const dir = fixture('ts-lib');
  const env = { PATH: pathWithBin(dir) };
  const miss = await runCli(['run', 'build'], { cwd: dir, env });
  assert.is(miss.code, 0, miss.err);
  assert.ok(existsSync(join(dir, 'dist/index.js')));
  assert.ok(existsSync(join(dir, 'dist/slug.d.ts')));
  const before = readTreeSnapshot(join(dir, 'dist'));
  rmSync(join(dir, 'dist'), { recursive: true });
  const hit = await runCli(['run', 'build'], { cwd: dir, env });
  assert.match(hit.err, /hit .* build/);
  assert.equal(readTreeSnapshot(join(dir, 'dist')), before);
  const lib = await runProcess(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      "import { slugify, median } from './dist/index.js'; console.log(slugify('Héllo Wörld!'), median([3, 1, 2]))",
    ],
    { cwd: dir },
  );
  assert.is(lib.out, 'hello-world 2\n');
  // A type error fails the build, which is not cached, and the exit code passes through.
  writeFileSync(join(dir, 'src/stats.ts'), 'export const sum = (xs: number[]): string => xs.length;\n');
  const broken = await runCli(['run', 'build'], { cwd: dir, env });
  assert.is(broken.code, 2);
  assert.match(broken.out, /error TS/);
  assert.match(broken.err, /not cached: exit code 2/);
});

test('fixture site (JSON config): a directory output with an executable, a binary and a symlink', async () => {
  const dir = fixture('site');
  const miss = await runCli(['run', 'site'], { cwd: dir });
  assert.is(miss.code, 0, miss.err);
  const before = readTreeSnapshot(join(dir, 'public'));
  assert.equal(before['latest.html'], { type: 'symlink', target: 'pages/index.html' });
  assert.equal(before.empty, { type: 'dir', mode: 0o755 });
  rmSync(join(dir, 'public'), { recursive: true });
  const hit = await runCli(['run', 'site'], { cwd: dir });
  assert.match(hit.err, /hit .* site/);
  assert.is(hit.out, 'built 2 pages\n');
  assert.equal(readTreeSnapshot(join(dir, 'public')), before);
  const serve = await runProcess(join(dir, 'public/serve.sh'), [], { cwd: dir });
  assert.is(serve.out, 'serving public/\n');
});

test('run TASK -- args appends arguments; CLI flags override the task config', async () => {
  const dir = tempDir();
  writeTree(dir, {
    'taskvault.config.mjs': `export default { tasks: {
      greet: { command: ['node', 'args.cjs'], inputs: ['in/**'] },
      shelly: { command: 'echo from-shell', inputs: ['in/**'] },
    } };`,
    'in/a.txt': 'a',
    'args.cjs': 'console.log(process.argv.slice(2).join(","))',
  });
  const a = await runCli(['run', 'greet', '--', '--flag', 'x y'], { cwd: dir });
  assert.is(a.out, '--flag,x y\n');
  const b = await runCli(['run', 'greet', '--', '--flag', 'x y'], { cwd: dir });
  assert.match(b.err, /hit/);
  assert.match((await runCli(['run', 'greet', '--', '--other'], { cwd: dir })).err, /miss/);
  const s = await runCli(['run', 'shelly', '--', "it's"], { cwd: dir });
  assert.is(s.out, "from-shell it's\n");
  const dry = JSON.parse(
    (await runCli(['run', 'greet', '--dry-run', '--json', '--inputs', 'other/**'], { cwd: dir })).out,
  ) as {
    fingerprint: { inputs: unknown[] };
  };
  assert.is(dry.fingerprint.inputs.length, 0, '--inputs replaced the configured inputs');
});

test('works as a prefix inside an npm script and inside a Makefile recipe', async () => {
  const dir = tempDir();
  writeTree(dir, {
    'package.json': JSON.stringify({
      name: 'p',
      private: true,
      scripts: {
        build: `node ${CLI} run --inputs 'src/**' --outputs 'out/**' -- sh -c 'mkdir -p out && cp src/a.txt out/ && echo built'`,
      },
    }),
    Makefile: `out/b.txt: src/a.txt\n\tnode ${CLI} run --inputs 'src/**' --outputs 'out/**' -- sh -c 'mkdir -p out && cp src/a.txt out/b.txt && echo made'\n`,
    'src/a.txt': 'content',
  });
  const npm1 = await runProcess('npm', ['run', '--silent', 'build'], { cwd: dir });
  assert.is(npm1.code, 0, npm1.err);
  assert.is(npm1.out, 'built\n');
  rmSync(join(dir, 'out'), { recursive: true });
  const npm2 = await runProcess('npm', ['run', '--silent', 'build'], { cwd: dir });
  assert.is(npm2.out, 'built\n');
  assert.match(npm2.err, /hit/);
  assert.is(readFileSync(join(dir, 'out/a.txt'), 'utf8'), 'content');

  const make1 = await runProcess('make', ['-s'], { cwd: dir });
  assert.is(make1.code, 0, make1.err);
  assert.is(make1.out, 'made\n');
  rmSync(join(dir, 'out'), { recursive: true });
  const make2 = await runProcess('make', ['-s'], { cwd: dir });
  assert.is(make2.out, 'made\n');
  assert.match(make2.err, /hit/);
  assert.ok(existsSync(join(dir, 'out/b.txt')));
});

test('a task whose command runs the same task again stops with one error instead of recursing', async () => {
  const dir = writeTree(tempDir(), {
    'taskvault.config.json': JSON.stringify({
      tasks: {
        // What `"build": "taskvault run build"` in package.json + `command: 'npm run build'` amounts to.
        build: { command: [process.execPath, CLI, 'run', 'build'] },
        // Nesting different tasks is fine.
        leaf: { command: ['echo', 'leaf ran'] },
        ci: { command: [process.execPath, CLI, 'run', 'leaf'] },
      },
    }),
  });
  const r = await runCli(['run', 'build'], { cwd: dir, timeoutMs: 30_000 });
  assert.is(r.signal, null);
  assert.is(r.code, 78, r.err);
  assert.is(r.err.match(/runs itself/g)?.length, 1, r.err);
  assert.match(r.err, /error: task 'build' runs itself: its command starts 'taskvault run build' again/);
  const nested = await runCli(['run', 'ci'], { cwd: dir });
  assert.is(nested.code, 0, nested.err);
  assert.is(nested.out, 'leaf ran\n');
  const again = await runCli(['run', 'ci'], { cwd: dir });
  assert.is(again.out, 'leaf ran\n');
  assert.match(again.err, /hit .* ci/);
});

test.run();

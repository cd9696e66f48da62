#!/usr/bin/env node
// `npm run bench`: TaskVault side by side with its peers, measured in one run, alternating, on
// fixtures generated in a temp dir. Prints medians and ratios and writes bench/results.md.
// BENCH_QUICK=1 shrinks every fixture for a smoke run; KEEP_TMP=1 keeps the fixtures.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, writePackage } from './common.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = process.env.BENCH_CLI ?? join(REPO, 'dist', 'cli.cjs');
const QUICK = process.env.BENCH_QUICK === '1';
const MB = 1024 * 1024;

const SIZES = QUICK
  ? {
      small: 200,
      large: 2000,
      treeFiles: 32,
      treeFileBytes: 2 * MB,
      bigBytes: 128 * MB,
      rounds: 3,
      bigRounds: 2,
    }
  : {
      small: 2000,
      large: 20000,
      treeFiles: 512,
      treeFileBytes: 2 * MB,
      bigBytes: 2048 * MB,
      rounds: 11,
      bigRounds: 5,
    };

const TURBO_SHIM = join(REPO, 'node_modules', '.bin', 'turbo');
const TURBO_NATIVE = join(
  REPO,
  'node_modules',
  '@turbo',
  `${process.platform === 'darwin' ? 'darwin' : 'linux'}-${process.arch === 'x64' ? '64' : 'arm64'}`,
  'bin',
  'turbo',
);
const EXECA_FLOOR = join(REPO, 'bench', 'execa-floor.mjs');
const B3SUM = which('b3sum');
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

const work = mkdtempSync(join(tmpdir(), 'tv-bench-'));
process.on('exit', () => {
  if (!process.env.KEEP_TMP) rmSync(work, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const env = {
  ...process.env,
  CI: '',
  TURBO_TELEMETRY_DISABLED: '1',
  DO_NOT_TRACK: '1',
  TURBO_NO_UPDATE_NOTIFIER: '1',
  WIREIT_LOGGER: 'quiet',
  FORCE_COLOR: '0',
  TASKVAULT_QUIET: '1',
};
delete env.CI;
delete env.TASKVAULT_CACHE_DIR;

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function log(msg) {
  process.stderr.write(`bench: ${msg}\n`);
}

/** Runs argv in cwd and returns wall-clock milliseconds; any failure stops the bench. */
function timed(argv, cwd, extraEnv = {}) {
  const t0 = process.hrtime.bigint();
  // An undefined value in extraEnv removes the variable.
  const runEnv = { ...env, ...extraEnv };
  for (const [k, v] of Object.entries(runEnv)) if (v === undefined) delete runEnv[k];
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd,
    env: runEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * MB,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) {
    throw new Error(
      `${argv.join(' ')} (in ${cwd}) exited ${r.status}: ${r.stderr}${r.stdout}`.slice(0, 2000),
    );
  }
  return { ms, stdout: String(r.stdout), stderr: String(r.stderr) };
}

// ---------------------------------------------------------------- fixtures

/** A package of `files` 4 KB sources that turbo, wireit and TaskVault can all build and cache. */
function makePackage(name, files) {
  const dir = join(work, name);
  writePackage(dir, name, files);
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify(
      {
        name,
        private: true,
        version: '1.0.0',
        packageManager: 'npm@10.9.0',
        scripts: { build: 'wireit', 'build:turbo': 'node build.mjs' },
        wireit: { build: { command: 'node build.mjs', files: ['src/**'], output: ['dist/**'] } },
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(
    join(dir, 'package-lock.json'),
    `${JSON.stringify({ name, lockfileVersion: 3, requires: true, packages: { '': { name, version: '1.0.0' } } }, null, 2)}\n`,
  );
  writeFileSync(
    join(dir, 'turbo.json'),
    `${JSON.stringify({ $schema: 'https://turbo.build/schema.json', tasks: { 'build:turbo': { inputs: ['src/**'], outputs: ['dist/**'] } } }, null, 2)}\n`,
  );
  writeFileSync(join(dir, '.gitignore'), 'node_modules/\n.taskvault/\n.turbo/\n.wireit/\ndist/\n');
  // wireit and turbo resolve from the package's node_modules, as in a real project.
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  for (const m of ['wireit', 'turbo'])
    execFileSync('ln', ['-s', join(REPO, 'node_modules', m), join(dir, 'node_modules', m)]);
  execFileSync('ln', ['-s', join(REPO, 'node_modules', '@turbo'), join(dir, 'node_modules', '@turbo')]);
  execFileSync('ln', ['-s', '../wireit/bin/wireit.js', join(dir, 'node_modules', '.bin', 'wireit')]);
  // turbo hashes through git when the package is a repository, its fast path.
  const git = (...a) => execFileSync('git', a, { cwd: dir, stdio: 'ignore' });
  git('init', '-q');
  git('add', '-A');
  git('-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', 'commit', '-qm', 'fixture');
  return dir;
}

/** `files` files of `bytes` each with distinct contents (a repeated random block, salted per file). */
function makeTree(dir, files, bytes) {
  const block = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  for (let i = 0; i < files; i++) {
    const d = join(dir, `d${String(Math.floor(i / 64)).padStart(2, '0')}`);
    if (i % 64 === 0) mkdirSync(d, { recursive: true });
    block.writeUInt32LE(i, 0);
    writeFileSync(join(d, `blob${String(i).padStart(4, '0')}.bin`), block);
  }
  return dir;
}

function makeBigFile(path, bytes) {
  const chunk = Buffer.alloc(16 * MB);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  rmSync(path, { force: true });
  for (let off = 0; off < bytes; off += chunk.length) {
    chunk.writeUInt32LE(off / chunk.length, 0);
    writeFileSync(path, chunk, { flag: 'a' });
  }
}

// ---------------------------------------------------------------- benchmarks

const tv = (...args) => ['node', CLI, ...args];

function hitBench(label, files, rounds) {
  log(`${label}: generating ${files} files`);
  const dir = makePackage(label, files);
  const rmDist = () => rmSync(join(dir, 'dist'), { recursive: true, force: true });
  // First runs are misses that fill every tool's cache.
  timed(tv('run', 'build'), dir);
  timed([TURBO_SHIM, 'run', 'build:turbo'], dir);
  timed(['npm', 'run', 'build'], dir);
  // Sanity: each must now hit (turbo says FULL TURBO, TaskVault says hit).
  rmDist();
  const turboHit = timed([TURBO_SHIM, 'run', 'build:turbo'], dir);
  if (!/FULL TURBO|cache hit/i.test(turboHit.stdout))
    log(`warning: turbo did not report a hit: ${turboHit.stdout.slice(-300)}`);
  rmDist();
  const h = timed(tv('run', 'build', '--json'), dir, { TASKVAULT_QUIET: '' });
  if (!/"kind":"hit"/.test(h.stderr)) throw new Error(`taskvault did not hit: ${h.stderr}`);
  rmDist();
  timed(['npm', 'run', 'build'], dir);
  if (!existsSync(join(dir, 'dist', 'digest.txt'))) throw new Error('wireit did not restore dist/');

  log(`${label}: timing hits (${rounds} rounds)`);
  const c = (name, argv) => ({ name, prep: rmDist, run: () => timed(argv, dir).ms });
  const t = alternate(
    [
      c('taskvault', tv('run', 'build')),
      c('turbo', [TURBO_SHIM, 'run', 'build:turbo']),
      c('turbo (native binary)', [TURBO_NATIVE, 'run', 'build:turbo']),
      c('wireit', ['npm', 'run', 'build']),
      c('node -e 0', ['node', '-e', '0']),
    ],
    rounds,
  );
  log(`${label}: ${JSON.stringify(t)}`);
  return t;
}

function missBench(dir, rounds, extraEnv = {}) {
  let n = 0;
  const touch = () => writeFileSync(join(dir, 'src', 'd000', 'f00000.txt'), `changed ${n++} ${Date.now()}\n`);
  const run = (argv) => () => timed(argv, dir, extraEnv).ms;
  return alternate(
    [
      { name: 'taskvault miss', prep: touch, run: run(tv('run', 'build')) },
      { name: 'bare command', prep: touch, run: run(['node', 'build.mjs']) },
      { name: 'execa alone', prep: touch, run: run(['node', EXECA_FLOOR, 'node', 'build.mjs']) },
      { name: 'node -e 0', run: run(['node', '-e', '0']) },
    ],
    rounds,
  );
}

/**
 * Throughput two ways: end to end (bytes / whole process time) and marginal (bytes / the time the
 * bytes add: the same command on no data measured in the same run is subtracted), which is what a
 * rate compares once a process's fixed start-up (Node's ~50 ms against b3sum's ~1 ms) is set aside.
 */
const rates = (bytes, ms, baseMs) => ({
  ms,
  baseMs,
  mbps: bytes / MB / (ms / 1000),
  marginalMbps: bytes / MB / (Math.max(1, ms - baseMs) / 1000),
});

function fingerprintBench(tree, bytes, rounds) {
  const cacheDir = join(work, 'fp-cache');
  const files = execFileSync('find', [tree, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n');
  const fresh = () => rmSync(cacheDir, { recursive: true, force: true });
  const dry = (glob) => () =>
    timed(tv('run', '--dry-run', '--inputs', glob, '--', 'true'), tree, { TASKVAULT_CACHE_DIR: cacheDir }).ms;
  const contenders = [
    { name: 'taskvault cold fingerprint', prep: fresh, run: dry('**') },
    { name: 'taskvault, no inputs', prep: fresh, run: dry('no-such-dir/**') },
  ];
  if (B3SUM) {
    contenders.push({ name: 'b3sum', run: () => timed([B3SUM, ...files], tree).ms });
    contenders.push({ name: 'b3sum, no input', run: () => timed([B3SUM, '/dev/null'], tree).ms });
  }
  spawnSync('cat', files, { cwd: tree, stdio: ['ignore', 'ignore', 'inherit'] }); // warm the page cache for both
  const t = alternate(contenders, rounds);
  return {
    taskvault: rates(bytes, t['taskvault cold fingerprint'], t['taskvault, no inputs']),
    b3sum: B3SUM ? rates(bytes, t.b3sum, t['b3sum, no input']) : undefined,
  };
}

function restoreBench(tree, bytes, rounds) {
  const dir = join(work, 'restore');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'seed.txt'), 'restore bench\n');
  const empty = join(dir, 'empty-tree');
  mkdirSync(join(empty, 'd'), { recursive: true });
  writeFileSync(join(empty, 'd', 'x'), 'x');
  const cache = { TASKVAULT_CACHE_DIR: join(dir, 'cache') };
  const restoreOf = (src, out) => {
    const cmd = tv(
      'run',
      '--inputs',
      'seed.txt',
      '--outputs',
      out,
      '--max-entry-size',
      '100GB',
      '--',
      'cp',
      '-r',
      src,
      out,
    );
    timed(cmd, dir, cache); // the miss that caches it
    // Sanity: what is timed below must be a restore, not the command running again.
    rmSync(join(dir, out), { recursive: true, force: true });
    const check = timed(cmd, dir, { ...cache, TASKVAULT_QUIET: '' });
    if (!/\bhit\b/.test(check.stderr)) throw new Error(`restore bench: not a hit: ${check.stderr}`);
    return {
      prep: () => rmSync(join(dir, out), { recursive: true, force: true }),
      run: () => timed(cmd, dir, cache).ms,
    };
  };
  const copyOf = (src, out) => ({
    prep: () => rmSync(join(dir, out), { recursive: true, force: true }),
    run: () => timed(['cp', '-r', src, join(dir, out)], dir).ms,
  });
  const t = alternate(
    [
      { name: 'taskvault restore', ...restoreOf(tree, 'out') },
      { name: 'taskvault restore, one small file', ...restoreOf(empty, 'out-small') },
      { name: 'cp -r', ...copyOf(tree, 'cp-out') },
      { name: 'cp -r, one small file', ...copyOf(empty, 'cp-out-small') },
    ],
    rounds,
  );
  rmSync(dir, { recursive: true, force: true });
  return {
    taskvault: rates(bytes, t['taskvault restore'], t['taskvault restore, one small file']),
    cp: rates(bytes, t['cp -r'], t['cp -r, one small file']),
  };
}

function peakRss(bigFile) {
  if (!TIME) return undefined;
  const dir = join(work, 'rss');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'seed.txt'), 'rss bench\n');
  const cmd = tv(
    'run',
    '--inputs',
    'seed.txt',
    '--outputs',
    'big.bin',
    '--max-entry-size',
    '100GB',
    '--',
    'cp',
    bigFile,
    'big.bin',
  );
  const rss = (argv) => {
    const r = timed([TIME, '-v', ...argv], dir, {
      TASKVAULT_CACHE_DIR: join(dir, 'cache'),
      TASKVAULT_QUIET: '',
    });
    const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]);
    return { mb: kb / 1024, ms: r.ms, out: r.stderr };
  };
  const miss = rss(cmd);
  if (!/miss/.test(miss.out) || /not cached/.test(miss.out))
    throw new Error(`2 GB file not cached: ${miss.out}`);
  rmSync(join(dir, 'big.bin'));
  const hit = rss(cmd);
  if (!/hit/.test(hit.out)) throw new Error(`2 GB file not restored: ${hit.out}`);
  rmSync(dir, { recursive: true, force: true });
  return { miss, hit };
}

/** The markdown table a bench/<name>.mjs script prints (run in its own process), if it exists. */
function sideTable(name, args = []) {
  const script = join(REPO, 'bench', `${name}.mjs`);
  if (!existsSync(script)) return undefined;
  log(`running bench/${name}.mjs`);
  const r = spawnSync(process.execPath, [script, ...args], {
    env: process.env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) return `bench/${name}.mjs exited ${r.status}\n`;
  return r.stdout;
}

// ---------------------------------------------------------------- report

const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const fmtX = (x) => `${x.toFixed(2)}×`;

function main() {
  if (!existsSync(CLI)) throw new Error('dist/cli.cjs is missing: run `npm run build` first');
  if (!existsSync(TURBO_SHIM) || !existsSync(join(REPO, 'node_modules', 'wireit'))) {
    throw new Error('turbo and wireit are devDependencies: run `npm install` first');
  }
  const started = Date.now();
  const rows = [];
  const verdicts = [];
  const target = (name, value, ok, goal) => verdicts.push({ name, value, ok, goal });

  const small = hitBench('pkg-small', SIZES.small, SIZES.rounds);
  const large = hitBench('pkg-large', SIZES.large, Math.max(3, Math.ceil(SIZES.rounds / 2)));
  for (const [label, n, t] of [
    ['Hit', SIZES.small, small],
    ['Hit', SIZES.large, large],
  ]) {
    rows.push([
      `${label}, ${n.toLocaleString('en-US')} input files`,
      fmtMs(t.taskvault),
      fmtMs(t.turbo),
      fmtMs(t['turbo (native binary)']),
      fmtMs(t.wireit),
      fmtMs(t['node -e 0']),
    ]);
  }
  target(
    `Hit, ${SIZES.small} files: TaskVault / turbo`,
    fmtX(small.taskvault / small.turbo),
    small.taskvault <= small.turbo,
    '≤ 1.0×',
  );
  target(
    `Hit, ${SIZES.large} files: TaskVault / turbo`,
    fmtX(large.taskvault / large.turbo),
    large.taskvault <= 0.5 * large.turbo,
    '≤ 0.5×',
  );

  log('miss overhead');
  const miss = missBench(join(work, 'pkg-small'), SIZES.rounds);
  const overhead = miss['taskvault miss'] - miss['bare command'];
  const allowed = 0.1 * miss['bare command'] + 100;
  const floor = miss['execa alone'] - miss['bare command'];
  // Node reads NODE_EXTRA_CA_CERTS before it runs any JavaScript (nodejs/node#40524): where it is
  // set, every Node process (TaskVault's and the command's) starts that much later. The same
  // misses without it show what TaskVault costs where it is not set; the target is judged as the
  // machine is.
  const missNoCa = process.env.NODE_EXTRA_CA_CERTS
    ? missBench(join(work, 'pkg-small'), SIZES.rounds, { NODE_EXTRA_CA_CERTS: undefined })
    : undefined;

  log(`generating the ${(SIZES.treeFiles * SIZES.treeFileBytes) / MB} MB tree`);
  const tree = makeTree(join(work, 'tree'), SIZES.treeFiles, SIZES.treeFileBytes);
  const treeBytes = SIZES.treeFiles * SIZES.treeFileBytes;
  log('cold fingerprint');
  const fp = fingerprintBench(tree, treeBytes, SIZES.bigRounds);
  log('restore');
  const rs = restoreBench(tree, treeBytes, SIZES.bigRounds);
  rmSync(tree, { recursive: true, force: true });

  log(`generating the ${SIZES.bigBytes / MB} MB file`);
  const big = join(work, 'big.bin');
  makeBigFile(big, SIZES.bigBytes);
  log('peak RSS');
  const rss = peakRss(big);
  rmSync(big, { force: true });

  // Throughput targets are judged on marginal rates (see rates()); end to end is shown beside them.
  const fpTv = fp.taskvault;
  const fpB3 = fp.b3sum;
  if (fpB3)
    target(
      'Cold fingerprint: TaskVault / b3sum throughput (marginal; end to end in brackets)',
      `${fmtX(fpTv.marginalMbps / fpB3.marginalMbps)} (${fmtX(fpTv.mbps / fpB3.mbps)})`,
      fpTv.marginalMbps >= 0.8 * fpB3.marginalMbps,
      '≥ 0.8×',
    );
  else target('Cold fingerprint vs b3sum', 'b3sum not installed', false, '≥ 0.8×');
  const rsTv = rs.taskvault;
  const rsCp = rs.cp;
  target(
    'Restore: TaskVault / cp -r throughput (marginal; end to end in brackets)',
    `${fmtX(rsTv.marginalMbps / rsCp.marginalMbps)} (${fmtX(rsTv.mbps / rsCp.mbps)})`,
    rsTv.marginalMbps >= 0.9 * rsCp.marginalMbps,
    '≥ 0.9×',
  );
  if (rss) {
    const peak = Math.max(rss.miss.mb, rss.hit.mb);
    target(
      `Peak RSS caching + restoring a ${SIZES.bigBytes / MB} MB file`,
      `${peak.toFixed(0)} MB`,
      peak < 150,
      '< 150 MB',
    );
  }
  target(
    'Miss overhead vs the bare command',
    `+${fmtMs(overhead)} (allowed +${fmtMs(allowed)})`,
    overhead <= allowed,
    '≤ 10% + 100 ms',
  );

  const facts = [
    `- Date: ${new Date().toISOString()}`,
    `- CPU: ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length} (nproc ${execFileSync('nproc', { encoding: 'utf8' }).trim()})`,
    `- OS: ${execFileSync('uname', ['-srm'], { encoding: 'utf8' }).trim()}; filesystem of ${tmpdir()}: ${fsType(tmpdir())}`,
    `- Node ${process.version}; turbo ${version(TURBO_NATIVE, ['--version'])}; wireit ${JSON.parse(readFileSync(join(REPO, 'node_modules', 'wireit', 'package.json'), 'utf8')).version}; ${B3SUM ? version(B3SUM, ['--version']) : 'b3sum not installed'}`,
    `- Mode: ${QUICK ? 'BENCH_QUICK=1 (smoke run: small fixtures, few rounds)' : 'full'}; medians of ${SIZES.rounds} alternating rounds (hits of the larger package and the 1 GB / 2 GB cases: fewer)`,
    `- Load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  ];

  const md = [];
  md.push('# TaskVault benchmark results', '', ...facts, '', '## Targets', '');
  md.push('| Target | Measured | Goal | Met |', '|---|---|---|---|');
  for (const v of verdicts) md.push(`| ${v.name} | ${v.value} | ${v.goal} | ${v.ok ? 'yes' : '**no**'} |`);
  md.push('', '## Hits (outputs removed before every run, so each hit restores)', '');
  md.push(
    '| Case | TaskVault | turbo | turbo (native binary) | wireit (npm run) | `node -e 0` |',
    '|---|---|---|---|---|---|',
  );
  for (const r of rows) md.push(`| ${r.join(' | ')} |`);
  md.push('', '## Throughput and overhead', '');
  md.push(
    'Throughput: end to end is bytes over the whole process; marginal is bytes over the time they add to the same command run on no data (in brackets, measured in the same rounds).',
    '',
  );
  md.push('| Case | TaskVault | Peer | Ratio |', '|---|---|---|---|');
  const rateCell = (r) =>
    `${fmtMs(r.ms)} (${fmtMs(r.baseMs)}): ${r.mbps.toFixed(0)} MB/s end to end, ${r.marginalMbps.toFixed(0)} MB/s marginal`;
  const ratioCell = (a, b) =>
    `${fmtX(a.mbps / b.mbps)} end to end, ${fmtX(a.marginalMbps / b.marginalMbps)} marginal`;
  md.push(
    `| Cold fingerprint, ${treeBytes / MB} MB in ${SIZES.treeFiles} files | ${rateCell(fpTv)} | ${fpB3 ? `b3sum ${rateCell(fpB3)}` : 'b3sum not installed'} | ${fpB3 ? ratioCell(fpTv, fpB3) : '–'} |`,
  );
  md.push(
    `| Restore, ${treeBytes / MB} MB in ${SIZES.treeFiles} files | ${rateCell(rsTv)} | cp -r ${rateCell(rsCp)} | ${ratioCell(rsTv, rsCp)} |`,
  );
  md.push(
    `| Miss, ${SIZES.small} input files (one changed) | ${fmtMs(miss['taskvault miss'])} | bare command ${fmtMs(miss['bare command'])} | +${fmtMs(overhead)} |`,
    `| Same command under Node + execa alone (bench/execa-floor.mjs) | | ${fmtMs(miss['execa alone'])} | +${fmtMs(floor)}: the floor of any execa wrapper, leaving TaskVault ${fmtMs(allowed - floor)} of the allowance |`,
    ...(missNoCa
      ? [
          `| Miss as above, NODE_EXTRA_CA_CERTS unset (set on this machine: \`node -e 0\` ${fmtMs(miss['node -e 0'])} with it, ${fmtMs(missNoCa['node -e 0'])} without) | ${fmtMs(missNoCa['taskvault miss'])} | bare command ${fmtMs(missNoCa['bare command'])} | +${fmtMs(missNoCa['taskvault miss'] - missNoCa['bare command'])} (allowed +${fmtMs(0.1 * missNoCa['bare command'] + 100)}); Node + execa alone +${fmtMs(missNoCa['execa alone'] - missNoCa['bare command'])} |`,
        ]
      : []),
  );
  if (rss) {
    md.push(
      `| Peak RSS, caching a ${SIZES.bigBytes / MB} MB file (miss) | ${rss.miss.mb.toFixed(0)} MB (${fmtMs(rss.miss.ms)}) | | |`,
      `| Peak RSS, restoring it (hit) | ${rss.hit.mb.toFixed(0)} MB (${fmtMs(rss.hit.ms)}) | | |`,
    );
  }
  const stat = sideTable('stat');
  if (stat) md.push('', '## stat() of the inputs (bench/stat.mjs)', '', stat.trim());
  const evict = sideTable('evict');
  if (evict) md.push('', '## Eviction (bench/evict.mjs)', '', evict.trim());
  // Index scale, many small outputs, many inputs (issue 23); BENCH_SCALE=0 leaves them out.
  const scale = process.env.BENCH_SCALE === '0' ? undefined : sideTable('scale');
  if (scale) md.push('', scale.trim());
  md.push('', `Whole run: ${((Date.now() - started) / 1000).toFixed(0)} s.`, '');
  const text = md.join('\n');
  process.stdout.write(`${text}\n`);
  const out = join(REPO, 'bench', QUICK ? 'results-quick.md' : 'results.md');
  writeFileSync(out, text);
  log(`wrote ${out}`);
}

function version(bin, args) {
  try {
    return execFileSync(bin, args, { encoding: 'utf8', env }).trim().split('\n')[0];
  } catch {
    return '?';
  }
}

function fsType(dir) {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

try {
  main();
} catch (e) {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}

/**
 * `taskvault daemon start|stop|status|run` and every way a daemon can be unusable: killed in the
 * middle of a question, stopped (hung), of another build, reachable by others, or turned off.
 * In each case the run falls back to the walk and its result is right (support/daemon.ts checks
 * every run's output against the tree).
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tryLock } from '../../src/store/lock.js';
import {
  cacheOf,
  daemonSaid,
  foregroundDaemon,
  killed,
  run,
  runArgs,
  settledProject,
  untilVouched,
  wasHit,
} from '../support/daemon.js';
import { CLI, cliEnv, REPO, runCli, runProcess, tempDir } from '../support/helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('start, status, stop: one daemon per cache, owner-only socket', async () => {
  const dir = await settledProject();
  const none = await runCli(['daemon', 'status'], { cwd: dir });
  assert.is(none.code, 1);
  assert.match(none.out, /no daemon running/);

  const started = await runCli(['daemon', 'start'], { cwd: dir });
  assert.is(started.code, 0, started.err);
  assert.match(started.out, /daemon started \(pid \d+, socket .*daemon\/sock\)/);
  try {
    const again = await runCli(['daemon', 'start'], { cwd: dir });
    assert.match(again.out, /already running/);
    const daemonDir = join(cacheOf(dir), 'daemon');
    assert.is(statSync(daemonDir).mode & 0o777, 0o700);
    assert.is(statSync(join(daemonDir, 'sock')).mode & 0o777, 0o600);

    await run(dir);
    await untilVouched(dir);
    const status = await runCli(['daemon', 'status', '--json'], { cwd: dir });
    assert.is(status.code, 0, status.err);
    const s = JSON.parse(status.out) as {
      running: boolean;
      vouching: number;
      answered: { unchanged: number };
    };
    assert.ok(s.running);
    assert.is(s.vouching, 1);
    assert.ok(s.answered.unchanged >= 1);
    const text = await runCli(['daemon', 'status'], { cwd: dir });
    assert.match(text.out, /vouching for 1 of 1 input sets/);
  } finally {
    const stopped = await runCli(['daemon', 'stop'], { cwd: dir });
    assert.match(stopped.out, /daemon stopped \(pid \d+\)/);
  }
  assert.not.ok(existsSync(join(cacheOf(dir), 'daemon/sock')), 'socket left behind');
  assert.not.ok(existsSync(join(cacheOf(dir), 'daemon/pid')), 'pid file left behind');
  assert.match((await runCli(['daemon', 'stop'], { cwd: dir })).out, /no daemon running/);
});

test("a dead daemon's pid file is taken over, but only by the starter holding the claim", async () => {
  const dir = await settledProject();
  const daemonDir = join(cacheOf(dir), 'daemon');
  const pidFile = join(daemonDir, 'pid');
  mkdirSync(daemonDir, { recursive: true, mode: 0o700 });
  const dead = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => dead.once('exit', r));
  writeFileSync(pidFile, JSON.stringify({ pid: dead.pid, build: 'x', socket: 'x', startedAt: 1 }));
  const ownerOf = () => (JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number }).pid;
  // Another starter (this test) holds the claim: this one must neither take the file nor start.
  const release = tryLock(daemonDir, 'pid.claim');
  assert.ok(release);
  try {
    const r = await runCli(['daemon', 'run'], { cwd: dir });
    assert.is.not(r.code, 0);
    assert.match(r.err, /another daemon is starting/);
    assert.is(ownerOf(), dead.pid, 'the pid file untouched');
  } finally {
    release!();
  }
  const child = await foregroundDaemon(dir);
  try {
    assert.is(ownerOf(), child.pid);
  } finally {
    await killed(child);
  }
});

test('bad daemon arguments: one line, exit 2', async () => {
  const dir = tempDir();
  const bogus = await runCli(['daemon', 'bogus'], { cwd: dir });
  assert.is(bogus.code, 2);
  assert.match(bogus.err, /unknown daemon action 'bogus'/);
  const idle = await runCli(['daemon', 'start', '--idle-timeout', 'soon'], { cwd: dir });
  assert.is(idle.code, 2);
  assert.match(idle.err, /--idle-timeout must be a number of minutes/);
  assert.not.match(bogus.err + idle.err, /at .*\.(ts|js|cjs):\d+/);
});

test('a socket or directory others could reach is never asked', async () => {
  const dir = await settledProject();
  await run(dir);
  const daemon = await foregroundDaemon(dir);
  const daemonDir = join(cacheOf(dir), 'daemon');
  try {
    await untilVouched(dir);
    chmodSync(daemonDir, 0o755);
    const open = await run(dir);
    assert.is(daemonSaid(open), 'no daemon');
    assert.ok(wasHit(open), 'the walk still finds the hit');
    chmodSync(daemonDir, 0o700);
    await untilVouched(dir);
    if (process.getuid?.() === 0) {
      // Root can hand the directory to another user: then it is not ours to trust.
      const { chownSync } = await import('node:fs');
      chownSync(daemonDir, 65534, 65534);
      assert.is(daemonSaid(await run(dir)), 'no daemon');
      chownSync(daemonDir, 0, 0);
    }
  } finally {
    chmodSync(daemonDir, 0o700);
    await killed(daemon);
  }
});

test('a daemon killed in the middle of a question, or hung: the run walks and is right', async () => {
  const dir = await settledProject();
  await run(dir);
  const daemon = await foregroundDaemon(dir);
  try {
    await untilVouched(dir);
    // Hung: no answer within the time limit.
    daemon.kill('SIGSTOP');
    const hung = await run(dir, { TASKVAULT_DAEMON_TIMEOUT_MS: '300' });
    assert.is(daemonSaid(hung), 'no answer in time');
    assert.ok(wasHit(hung));
    // Killed while a run waits for its answer, with an edit the daemon never saw.
    writeFileSync(join(dir, 'src/a.txt'), 'edited while the daemon was stopped');
    const waiting = runCli(runArgs(), {
      cwd: dir,
      env: { TASKVAULT_TRACE: '1', TASKVAULT_DAEMON_TIMEOUT_MS: '30000' },
    });
    await sleep(1500);
    await killed(daemon, 'SIGKILL');
    const r = await waiting;
    assert.is(r.code, 0, r.err);
    assert.not.ok(wasHit(r), r.err);
    assert.is(daemonSaid(r), 'no answer in time');
    assert.is(readFileSync(join(dir, 'out/o.txt'), 'utf8').includes('edited while'), true);
    // Its socket and pid file are left behind: runs are unaffected, and a new daemon takes over.
    assert.ok(wasHit(await run(dir)));
    const next = await runCli(['daemon', 'start'], { cwd: dir });
    assert.match(next.out, /daemon started/, next.err);
    await untilVouched(dir);
  } finally {
    daemon.kill('SIGCONT');
    await killed(daemon, 'SIGKILL');
    await runCli(['daemon', 'stop'], { cwd: dir });
  }
});

test('a daemon of another build is not believed, and start replaces it', async () => {
  // An older release: the same dist/ beside a package.json of another version.
  const old = tempDir('tv-old-');
  cpSync(join(REPO, 'dist'), join(old, 'dist'), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  writeFileSync(join(old, 'package.json'), JSON.stringify({ ...pkg, version: '0.0.1-old' }));
  symlinkSync(join(REPO, 'node_modules'), join(old, 'node_modules'));

  const dir = await settledProject();
  await run(dir);
  const daemon = await foregroundDaemon(dir, { cli: join(old, 'dist/cli.cjs') });
  try {
    const r = await run(dir);
    assert.match(String(daemonSaid(r)), /daemon of another build \(0\.0\.1-old\+p1\)/);
    assert.ok(wasHit(r), 'the walk still finds the hit');
    writeFileSync(join(dir, 'src/a.txt'), 'changed under an old daemon');
    assert.not.ok(wasHit(await run(dir)));
    const status = await runCli(['daemon', 'status'], { cwd: dir });
    assert.match(status.out, /not this CLI's/);
    const started = await runCli(['daemon', 'start'], { cwd: dir });
    assert.match(started.out, /daemon started/, started.err);
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
    await untilVouched(dir);
  } finally {
    await killed(daemon);
    await runCli(['daemon', 'stop'], { cwd: dir });
  }
});

test('a vouched hit loads no module a miss needs, nor any a hit without the daemon does not', async () => {
  const dir = await settledProject();
  const preload = join(tempDir(), 'builtins.cjs');
  writeFileSync(
    preload,
    "process.on('exit', () => require('fs').writeFileSync(process.env.TV_BUILTINS, process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)).join('\\n')));\n",
  );
  const hit = async (log: string) => {
    const r = await runProcess(process.execPath, ['-r', preload, CLI, ...runArgs()], {
      cwd: dir,
      env: { TV_BUILTINS: join(dir, log), TASKVAULT_DAEMON_TIMEOUT_MS: '5000' },
    });
    assert.is(r.code, 0, r.err);
    assert.match(r.err, /hit/);
    return readFileSync(join(dir, log), 'utf8').split('\n');
  };
  await run(dir);
  // node:net included: Node loads it anyway for a stdout or stderr that is a pipe or a terminal.
  const alone = await hit('alone.log');
  const daemon = await foregroundDaemon(dir);
  try {
    await untilVouched(dir);
    const before = JSON.parse((await runCli(['daemon', 'status', '--json'], { cwd: dir })).out);
    const vouched = await hit('vouched.log');
    const after = JSON.parse((await runCli(['daemon', 'status', '--json'], { cwd: dir })).out);
    assert.is(after.answered.unchanged, before.answered.unchanged + 1, 'that hit was not vouched for');
    assert.equal(
      vouched.filter((m) => !alone.includes(m)),
      [],
    );
  } finally {
    await killed(daemon);
  }
});

test('TASKVAULT_DAEMON=0 never asks; =auto starts one that exits when idle', async () => {
  const dir = await settledProject();
  await run(dir);
  const daemon = await foregroundDaemon(dir);
  try {
    await untilVouched(dir);
    const off = await run(dir, { TASKVAULT_DAEMON: '0' });
    assert.is(daemonSaid(off), undefined);
    assert.ok(wasHit(off));
  } finally {
    await killed(daemon);
  }

  const auto = await run(dir, { TASKVAULT_DAEMON: 'auto' });
  assert.is(daemonSaid(auto), 'no daemon');
  let status = { running: false };
  for (let i = 0; i < 100 && !status.running; i++) {
    await sleep(100);
    status = JSON.parse((await runCli(['daemon', 'status', '--json'], { cwd: dir })).out);
  }
  assert.ok(status.running, 'auto did not start a daemon');
  await untilVouched(dir, { TASKVAULT_DAEMON: 'auto' });
  await runCli(['daemon', 'stop'], { cwd: dir });

  // --idle-timeout: it exits by itself and leaves nothing behind.
  const child = spawn(process.execPath, [CLI, 'daemon', 'run', '--idle-timeout', '0.02'], {
    cwd: dir,
    env: cliEnv(),
    stdio: 'ignore',
  });
  const code = await new Promise((r) => child.once('exit', r));
  assert.is(code, 0);
  assert.not.ok(existsSync(join(cacheOf(dir), 'daemon/sock')));
  assert.match(readFileSync(join(cacheOf(dir), 'daemon/log'), 'utf8'), /idle: stopping/);
});

test.run();

/**
 * A 1 GiB stdout goes through TaskVault with bounded memory, on the miss (tee + capture) and on the
 * hit (verified replay). RSS of the taskvault process is sampled from /proc while it runs.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, cliEnv, tempDir, writeTree } from '../support/helpers.js';

const BYTES = Number(process.env.TV_BIG_STDOUT_BYTES) || 1024 * 1024 * 1024;
/** Generous for Node's own heap and buffers, far below the size of the stream. */
const RSS_LIMIT = 256 * 1024 * 1024;

function rssOf(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function runBig(dir: string) {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'run',
      '--inputs',
      'src/**',
      // Over the default 100 MiB per-entry limit, which would otherwise (rightly) skip caching it.
      '--max-entry-size',
      '2GB',
      '--',
      `yes 'TaskVault streams this line 0123456789' | head -c ${BYTES}`,
    ],
    { cwd: dir, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(child.pid!));
  }, 100);
  const hash = createHash('sha256');
  let bytes = 0;
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    bytes += d.byteLength;
    hash.update(d);
  });
  child.stderr.on('data', (d: Buffer) => (err += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearTimeout(kill);
  clearInterval(sampler);
  return { code, bytes, sha: hash.digest('hex'), peak, err };
}

test(`${BYTES} bytes of stdout: streamed with bounded memory on the miss and replayed identically on the hit`, async () => {
  const dir = writeTree(tempDir('tv-big-'), { 'src/in.txt': 'x' });
  const miss = await runBig(dir);
  assert.is(miss.code, 0, miss.err);
  assert.is(miss.bytes, BYTES);
  assert.match(miss.err, /\bmiss\b.*cached/);
  const hit = await runBig(dir);
  assert.is(hit.code, 0, hit.err);
  assert.match(hit.err, /\bhit\b/, hit.err + miss.err);
  assert.is(hit.bytes, BYTES);
  assert.is(hit.sha, miss.sha, 'the hit replays the same bytes');
  const mb = (n: number) => `${Math.round(n / 1048576)} MB`;
  console.log(`big stdout: ${mb(BYTES)} streamed; peak RSS miss ${mb(miss.peak)}, hit ${mb(hit.peak)}`);
  assert.ok(miss.peak > 0 && miss.peak < RSS_LIMIT, `miss peak RSS ${mb(miss.peak)}`);
  assert.ok(hit.peak > 0 && hit.peak < RSS_LIMIT, `hit peak RSS ${mb(hit.peak)}`);
});

test.run();

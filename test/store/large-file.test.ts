/**
 * A 1 GB input and a 1 GB output through `cache save` / `cache get` (and the SDK's stream path) with
 * bounded memory: peak RSS of the process, as the kernel reports it, stays far below the data size.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdtempSync,
  openSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, REPO, runProcess, tempDir } from '../support/helpers.js';

const GB = 1024 * 1024 * 1024;
const MB = 1024 * 1024;
/** Node itself takes ~50 MB; a process that held the data would need over 1000. */
const RSS_LIMIT_KB = 250 * 1024;

/** 1 GB made of a repeated random 1 MB block: quick to write, not compressible by accident. */
function makeFile(path: string): void {
  const block = randomBytes(MB);
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < GB / MB; i++) {
      block.writeUInt32LE(i, 0); // every block differs a little
      writeSync(fd, block);
    }
  } finally {
    closeSync(fd);
  }
}

async function sha1(path: string): Promise<string> {
  const h = createHash('sha1');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MB })) h.update(chunk as Buffer);
  return h.digest('hex');
}

const TIME = '/usr/bin/time';

/** Runs node with `args` and returns its exit code, output and peak RSS in kB. */
async function measured(args: string[], cwd: string) {
  if (existsSync(TIME)) {
    const r = await runProcess(TIME, ['-v', process.execPath, ...args], { cwd, timeoutMs: 120_000 });
    const peak = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.err)?.[1]);
    return { ...r, peakKb: peak };
  }
  // No GNU time: a wrapper polls the child's high-water mark (VmHWM) until it exits.
  const wrapper = `
    import { spawn } from 'node:child_process';
    import { readFileSync } from 'node:fs';
    const child = spawn(process.execPath, ${JSON.stringify(args)}, { stdio: 'inherit' });
    let peak = 0;
    const poll = setInterval(() => {
      try { peak = Math.max(peak, Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/' + child.pid + '/status', 'utf8'))[1])); } catch {}
    }, 20);
    child.on('exit', (code) => { clearInterval(poll); console.error('Maximum resident set size (kbytes): ' + peak); process.exitCode = code; });`;
  const r = await runProcess(process.execPath, ['--input-type=module', '-e', wrapper], {
    cwd,
    timeoutMs: 120_000,
  });
  return { ...r, peakKb: Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.err)?.[1]) };
}

/**
 * tmpfs when it has room: the test is about the process's memory, not the disk, and ~4 GB of disk
 * writes would take most of the time budget. tmpfs pages are not part of any process's RSS.
 */
function bigTempDir(): string {
  try {
    const s = statfsSync('/dev/shm');
    if (s.bavail * s.bsize > 6 * GB) {
      const d = mkdtempSync('/dev/shm/tv-large-');
      process.on('exit', () => rmSync(d, { recursive: true, force: true }));
      return d;
    }
  } catch {
    // no /dev/shm
  }
  return tempDir('tv-large-');
}

test('1 GB input and 1 GB output: save and get stream with bounded memory', async () => {
  const dir = bigTempDir();
  // The default policy refuses results over 100 MiB; this project allows big ones (as ml_training would).
  writeFileSync(
    join(dir, 'taskvault.config.json'),
    JSON.stringify({ policies: { default: { maxSizeBytes: '2GB' } } }),
  );
  makeFile(join(dir, 'dataset.bin'));
  makeFile(join(dir, 'checkpoint.bin'));

  const save = await measured([CLI, 'cache', 'save', 'train', 'dataset.bin', 'checkpoint.bin'], dir);
  assert.is(save.code, 0, save.err);
  assert.match(save.out, /^✓ Cached train \(hash: [0-9a-f]{8}\.\.\., size: 1073741824 bytes\)\n$/);
  assert.ok(save.peakKb > 0 && save.peakKb < RSS_LIMIT_KB, `save peak RSS ${save.peakKb} kB`);

  const get = await measured([CLI, 'cache', 'get', 'train', 'dataset.bin', 'restored.bin'], dir);
  assert.is(get.code, 0, get.err);
  assert.is(get.out, '✓ Cache hit for train (size: 1073741824 bytes)\n');
  assert.ok(get.peakKb > 0 && get.peakKb < RSS_LIMIT_KB, `get peak RSS ${get.peakKb} kB`);
  assert.is(statSync(join(dir, 'restored.bin')).size, GB);
  assert.is(await sha1(join(dir, 'restored.bin')), await sha1(join(dir, 'checkpoint.bin')));
  console.log(
    `  peak RSS: save ${Math.round(save.peakKb / 1024)} MB, get ${Math.round(get.peakKb / 1024)} MB`,
  );
  rmSync(join(dir, 'restored.bin'));

  // The SDK with a file input and a stream output takes the same bounded path.
  const sdk = pathToFileURL(join(REPO, 'dist', 'index.js')).href;
  const program = `
    import { createReadStream } from 'node:fs';
    import { Client } from ${JSON.stringify(sdk)};
    const tv = new Client();
    const key = await tv.cacheResult('train-sdk', Client.file('dataset.bin'), createReadStream('checkpoint.bin'));
    const r = await tv.getCachedResult('train-sdk', createReadStream('dataset.bin'), { toFile: 'sdk.bin' });
    console.log(key.length, r.hit, r.size);
    await tv.close();`;
  const viaSdk = await measured(['--input-type=module', '-e', program], dir);
  assert.is(viaSdk.code, 0, viaSdk.err);
  assert.is(viaSdk.out, `64 true ${GB}\n`);
  assert.ok(viaSdk.peakKb > 0 && viaSdk.peakKb < RSS_LIMIT_KB, `SDK peak RSS ${viaSdk.peakKb} kB`);
  assert.is(statSync(join(dir, 'sdk.bin')).size, GB);
  assert.is(await sha1(join(dir, 'sdk.bin')), await sha1(join(dir, 'checkpoint.bin')));
  console.log(`  peak RSS: SDK save+get ${Math.round(viaSdk.peakKb / 1024)} MB`);
  rmSync(dir, { recursive: true, force: true });
});

test.run();

/**
 * `taskvault ui` in a real browser (Debian chromium through playwright-core): a cache filled by
 * real CLI runs (a remote hit from nginx, a local hit, a miss, an eviction) shows the numbers of
 * `taskvault stats --json`, draws its charts, says why the miss missed, and shows a new run
 * without a reload.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { launchChromium } from '../support/browser.js';
import { REPO, runCli, tempDir } from '../support/helpers.js';
import { project, runGen } from '../support/remote-project.js';
import { nginxFor } from '../support/servers.js';
import { startUi, type UiServer } from '../support/ui-server.js';

const test = suite('taskvault ui dashboard');
const ng = nginxFor(test);

interface Stats {
  entries: number;
  totalBytes: number;
  limitBytes: number;
  hits: number;
  remoteHits: number;
  misses: number;
  savedMs: number;
}

let dir = '';
let ui: UiServer | undefined;
let browser: BrowserContext | undefined;
let page: Page;
const GEN_PRICE = 3.2;

/**
 * The little of the page's DOM that predicates run in it use. They are functions, not strings:
 * the page's Content-Security-Policy (no eval) stays on, and the test's own types have no DOM.
 */
interface InPage {
  document: {
    querySelector(s: string): { getAttribute(n: string): string | null; textContent: string | null } | null;
    querySelectorAll(s: string): { length: number };
  };
}

const stats = async (): Promise<Stats> =>
  JSON.parse((await runCli(['stats', '--json'], { cwd: dir })).out) as Stats;
const shown = (p: Page, name: string): Promise<string | null> =>
  p.locator(`[data-stat=${name}]`).first().getAttribute('data-value');

test.before(async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/dash` };
  // Another machine fills the team cache.
  assert.is((await runGen(project(), env)).code, 0);
  // Ours: gen entries are ~0.8 MB and blob's 1 MB; the second gen entry passes the 2.2 MB limit,
  // and eviction takes the least recently used entry (blob's), which brings usage under 90 %.
  dir = project({
    maxSizeGb: 0.0022,
    lowWaterMark: 0.9,
    cost: { currency: 'EUR', perHour: { default: 0.4, gen: GEN_PRICE } },
  });
  const config = JSON.parse(readFileSync(join(dir, 'taskvault.config.json'), 'utf8'));
  config.tasks.blob = {
    command: ['node', '-e', "require('fs').writeFileSync('blob.bin', require('crypto').randomBytes(1e6))"],
    inputs: ['gen.mjs'],
    outputs: ['blob.bin'],
  };
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify(config));
  assert.match((await runCli(['run', 'blob'], { cwd: dir, env })).err, /taskvault: miss /);
  const remote = await runGen(dir, env);
  assert.match(remote.err, /hit \(remote\)/);
  assert.match((await runGen(dir, env)).err, /taskvault: hit /);
  writeFileSync(join(dir, 'src/input.txt'), 'a different input\n');
  const miss = await runGen(dir, env);
  assert.match(miss.err, /taskvault: miss /);
  assert.match(miss.err, /evicted 1 entry/);
  ui = await startUi(dir);
  browser = await launchChromium();
  page = await browser.newPage();
});

test.after(async () => {
  await browser?.close();
  await ui?.stop();
});

test('the dashboard shows the numbers of taskvault stats --json', async () => {
  const s = await stats();
  assert.equal(
    { hits: s.hits, remoteHits: s.remoteHits, misses: s.misses, entries: s.entries },
    { hits: 2, remoteHits: 1, misses: 2, entries: 2 },
  );
  await page.goto(`${ui!.url}/`);
  await page.waitForSelector('body[data-ready]', { timeout: 10_000 });
  for (const name of ['entries', 'totalBytes', 'hits', 'remoteHits', 'misses', 'savedMs'] as const)
    assert.is(Number(await shown(page, name)), s[name], name);
  assert.is(Number(await shown(page, 'hitRate')), s.hits / (s.hits + s.misses));
  // Cost: the time saved by gen's hits at gen's price per hour.
  const cost = Number(await shown(page, 'cost'));
  assert.ok(Math.abs(cost - (s.savedMs / 3_600_000) * GEN_PRICE) < 1e-9, `cost ${cost}`);
  assert.match((await page.locator('#savings').textContent()) ?? '', /Saved €/);
});

test('every chart draws on its canvas', async () => {
  // Evaluated in the page (as text: the test's own types have no DOM).
  const painted = (await page.evaluate(`[...document.querySelectorAll('.chart canvas')].map((c) => {
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return { w: c.width, h: c.height, painted: n };
  })`)) as Array<{ w: number; h: number; painted: number }>;
  assert.is(painted.length, 4);
  for (const c of painted) {
    assert.ok(c.w > 200 && c.h > 100, JSON.stringify(c));
    assert.ok(c.painted > 500, `a chart is (nearly) empty: ${JSON.stringify(c)}`);
  }
});

test("a task's recent runs say why the miss missed (the explain diff)", async () => {
  await page.click('#top-misses tr[data-task=gen]');
  const reason = page.locator('#runs tr[data-event=MISS] .reason').first();
  await reason.waitFor({ timeout: 5_000 });
  assert.match((await reason.textContent()) ?? '', /input changed +src\/input\.txt/);
  assert.ok((await page.locator('#runs tr[data-event=HIT]').count()) >= 2);
  assert.match((await page.locator('#runs').textContent()) ?? '', /HIT \(remote\)/);
});

test('entries table: search, and an entry with its provenance', async () => {
  const row = page.locator('#entries tr[data-key]');
  assert.is(await row.count(), 2);
  const key = (await row.first().getAttribute('data-key'))!;
  await page.fill('#search', 'no-such-entry');
  await page.waitForFunction(
    () => (globalThis as unknown as InPage).document.querySelectorAll('#entries tr[data-key]').length === 0,
  );
  await page.fill('#search', key.slice(0, 8));
  await page.waitForFunction(
    () => (globalThis as unknown as InPage).document.querySelectorAll('#entries tr[data-key]').length === 1,
  );
  await row.first().click();
  await page.waitForSelector('#entry-panel:not([hidden])');
  assert.is(await page.locator('dd[data-field=key]').textContent(), key);
  assert.is(await page.locator('dd[data-field=origin]').textContent(), 'local');
  assert.ok(((await page.locator('dd[data-field=host]').textContent()) ?? '').length > 0);
  await page.fill('#search', '');
});

test('a new run shows up within 2 s, without a reload', async () => {
  await page.evaluate('window.notReloaded = true');
  const before = Number(await shown(page, 'hits'));
  assert.match((await runGen(dir, {})).err, /taskvault: hit /);
  const started = Date.now();
  await page.waitForFunction(
    (n) =>
      Number(
        (globalThis as unknown as InPage).document
          .querySelector('[data-stat=hits]')
          ?.getAttribute('data-value'),
      ) === n,
    before + 1,
    { timeout: 2_000, polling: 50 },
  );
  const tookMs = Date.now() - started;
  assert.ok(await page.evaluate('window.notReloaded === true'));
  const s = await stats();
  assert.is(s.hits, before + 1);
  assert.is(Number(await shown(page, 'savedMs')), s.savedMs);
  assert.ok(tookMs <= 2_000, `${tookMs} ms`);
});

test('a screenshot of the dashboard is not blank', async () => {
  await page.selectOption('#range', '24h');
  await page.waitForFunction(() =>
    (globalThis as unknown as InPage).document.querySelector('#savings')?.textContent?.includes('24 hours'),
  );
  const path = join(tempDir('tv-shot-'), 'dashboard.png');
  await page.screenshot({ path, fullPage: true });
  const png = readFileSync(path);
  assert.is(png.subarray(1, 4).toString(), 'PNG');
  // Decoded by the browser itself: a blank page has a handful of colours, the dashboard hundreds.
  const colours = (await page.evaluate(`(async () => {
    const img = new Image();
    img.src = 'data:image/png;base64,${png.toString('base64')}';
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    let ink = 0;
    for (let i = 0; i < d.length; i += 4) {
      seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      if (d[i] < 200) ink++;
    }
    return { distinct: seen.size, inkShare: ink / (d.length / 4), w: c.width, h: c.height };
  })()`)) as { distinct: number; inkShare: number };
  assert.ok(colours.distinct > 100, JSON.stringify(colours));
  assert.ok(colours.inkShare > 0.02, JSON.stringify(colours));
  // The README's picture is made here: TASKVAULT_SCREENSHOT=1 npm test -- test/ui/dashboard
  if (process.env.TASKVAULT_SCREENSHOT) copyFileSync(path, join(REPO, 'docs', 'dashboard.png'));
});

test.run();

/**
 * The dashboard's entries table in a real browser (Debian chromium through playwright-core): its
 * column headers sort on the server, both ways, in the order `taskvault ls --json` gives, and the
 * task filter keeps one task's entries.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { launchChromium } from '../support/browser.js';
import { runCli } from '../support/helpers.js';
import { project, runGen } from '../support/remote-project.js';
import { startUi, type UiServer } from '../support/ui-server.js';

const test = suite('taskvault ui entries table');
let dir = '';
let ui: UiServer | undefined;
let browser: BrowserContext | undefined;
let page: Page;
/** `taskvault ls --json`: newest first. */
let listed: Array<{ key: string; task: string; createdAt: number }> = [];

/** The keys of the table's rows, top to bottom, once there are `n` of them. */
async function rowKeys(n: number): Promise<string[]> {
  const rows = page.locator('#entries tr[data-key]');
  await page.waitForFunction(
    (want) =>
      (
        globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }
      ).document.querySelectorAll('#entries tr[data-key]').length === want,
    n,
    { timeout: 5_000 },
  );
  return Promise.all(
    Array.from({ length: n }, (_, i) => rows.nth(i).getAttribute('data-key') as Promise<string>),
  );
}

test.before(async () => {
  dir = project();
  const config = JSON.parse(readFileSync(join(dir, 'taskvault.config.json'), 'utf8'));
  config.tasks.blob = {
    command: ['node', '-e', "require('fs').writeFileSync('blob.bin', 'b'.repeat(5000))"],
    inputs: ['gen.mjs'],
    outputs: ['blob.bin'],
  };
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify(config));
  assert.is((await runGen(dir, {})).code, 0);
  assert.is((await runCli(['run', 'blob'], { cwd: dir })).code, 0);
  writeFileSync(join(dir, 'src/input.txt'), 'a second input\n');
  assert.is((await runGen(dir, {})).code, 0);
  listed = JSON.parse((await runCli(['ls', '--json'], { cwd: dir })).out);
  assert.equal(
    listed.map((e) => e.task),
    ['gen', 'blob', 'gen'],
  );
  ui = await startUi(dir);
  browser = await launchChromium();
  page = await browser.newPage();
  await page.goto(`${ui.url}/`);
  await page.waitForSelector('body[data-ready]', { timeout: 10_000 });
});

test.after(async () => {
  await browser?.close();
  await ui?.stop();
});

test('the created column sorts newest first, then oldest first', async () => {
  const newestFirst = listed.map((e) => e.key);
  await page.click('#entries th:has-text("created")');
  await page.waitForSelector('#entries th:has-text("created ▼")');
  assert.equal(await rowKeys(3), newestFirst);
  await page.click('#entries th:has-text("created")');
  await page.waitForSelector('#entries th:has-text("created ▲")');
  assert.equal(await rowKeys(3), [...newestFirst].reverse());
});

test('the size column puts the largest entry first', async () => {
  await page.click('#entries th:has-text("size")');
  await page.waitForSelector('#entries th:has-text("size ▼")');
  const keys = await rowKeys(3);
  // gen's entries hold ~800 kB, blob's 5 kB.
  assert.is(keys[2], listed.find((e) => e.task === 'blob')!.key);
});

test('the task filter keeps one task', async () => {
  await page.selectOption('#task-filter', 'blob');
  assert.equal(await rowKeys(1), [listed.find((e) => e.task === 'blob')!.key]);
  assert.match((await page.locator('#entry-count').textContent()) ?? '', /\(1 matching\)/);
  await page.selectOption('#task-filter', 'gen');
  assert.equal(new Set(await rowKeys(2)), new Set(listed.filter((e) => e.task === 'gen').map((e) => e.key)));
  await page.selectOption('#task-filter', '');
  assert.is((await rowKeys(3)).length, 3);
});

test.run();

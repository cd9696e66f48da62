/**
 * `taskvault ui --open`: the system's opener (a stand-in script of the same name first on PATH,
 * which records what it was given) gets the dashboard's URL, and that URL serves the dashboard,
 * token included; a missing or failing opener is one line and the dashboard still serves.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openerFor } from '../../src/util/open-url.js';
import { tempDir } from '../support/helpers.js';
import { project, runGen } from '../support/remote-project.js';
import { startUi } from '../support/ui-server.js';

const test = suite('taskvault ui --open');
const OPENER = openerFor(process.platform).command;
let dir = '';

/** A directory holding a stand-in opener that appends its arguments to `record` and exits `code`. */
function standIn(record: string, code = 0): string {
  const bin = tempDir('tv-opener-');
  const script = join(bin, OPENER);
  writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${record}'\nexit ${code}\n`);
  chmodSync(script, 0o755);
  return bin;
}

async function until<T>(what: string, get: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const opened = (record: string) =>
  until('the opener to run', () =>
    existsSync(record) ? readFileSync(record, 'utf8').trim().split('\n') : undefined,
  );

/** The lines the server wrote after its "dashboard on" line. */
const after = (stderr: string) => stderr.trim().split('\n').slice(1);

test.before(async () => {
  dir = project();
  assert.is((await runGen(dir, {})).code, 0);
});

test('the opener is given the dashboard URL, and that URL serves the dashboard', async () => {
  const record = join(tempDir(), 'opened.txt');
  const bin = standIn(record);
  const ui = await startUi(dir, ['--open'], { PATH: `${bin}${delimiter}${process.env.PATH}` });
  try {
    const urls = await opened(record);
    assert.equal(urls, [`${ui.url}/`]);
    const page = await fetch(urls[0]!);
    assert.is(page.status, 200);
    assert.match(await page.text(), /<title>TaskVault dashboard<\/title>/);
    assert.is((await fetch(`${ui.url}/api/overview`)).status, 200);
    assert.equal(after(ui.stderr()), []);
  } finally {
    await ui.stop();
  }
});

test('with a token, the URL given to the opener carries it and is let in', async () => {
  const record = join(tempDir(), 'opened.txt');
  const bin = standIn(record);
  const ui = await startUi(dir, ['--open', '--token', 'open-s3cret'], {
    PATH: `${bin}${delimiter}${process.env.PATH}`,
  });
  try {
    const [url] = await opened(record);
    assert.is(url, `${ui.url}/?token=open-s3cret`);
    assert.is((await fetch(`${ui.url}/`)).status, 401);
    const page = await fetch(url!);
    assert.is(page.status, 200);
    const cookie = page.headers.get('set-cookie')!.split(';')[0]!;
    assert.is((await fetch(`${ui.url}/api/overview`, { headers: { cookie } })).status, 200);
    // The token is not printed: the terminal shows a placeholder.
    assert.not.match(ui.stderr(), /open-s3cret/);
  } finally {
    await ui.stop();
  }
});

test('no opener on PATH: one line saying so and where to go; the dashboard still serves', async () => {
  const ui = await startUi(dir, ['--open'], { PATH: tempDir('tv-empty-path-') });
  try {
    const lines = await until('the warning', () =>
      after(ui.stderr()).length ? after(ui.stderr()) : undefined,
    );
    await new Promise((r) => setTimeout(r, 300)); // a second line would have come by now
    assert.is(after(ui.stderr()).length, 1, ui.stderr());
    assert.match(
      lines[0]!,
      new RegExp(`could not open a browser \\(${OPENER} is not installed\\): open ${ui.url}/ yourself`),
    );
    assert.is((await fetch(`${ui.url}/`)).status, 200);
  } finally {
    await ui.stop();
  }
});

test('an opener that fails: one line with its exit code; the dashboard still serves', async () => {
  const record = join(tempDir(), 'opened.txt');
  const bin = standIn(record, 3);
  const ui = await startUi(dir, ['--open'], { PATH: `${bin}${delimiter}${process.env.PATH}` });
  try {
    const lines = await until('the warning', () =>
      after(ui.stderr()).length ? after(ui.stderr()) : undefined,
    );
    assert.match(lines[0]!, new RegExp(`${OPENER} exited with code 3\\): open ${ui.url}/ yourself`));
    assert.is(lines.length, 1);
    assert.is((await fetch(`${ui.url}/`)).status, 200);
  } finally {
    await ui.stop();
  }
});

test('the opener of each platform', () => {
  assert.is(openerFor('darwin').command, 'open');
  assert.equal(openerFor('darwin').args('http://127.0.0.1:9999/'), ['http://127.0.0.1:9999/']);
  assert.is(openerFor('linux').command, 'xdg-open');
  assert.is(openerFor('freebsd').command, 'xdg-open');
  assert.is(openerFor('win32').command, 'rundll32');
});

test.run();

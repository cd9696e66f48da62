/**
 * The team cache reaches the runner through each entry point that builds it (remote/tier.ts): here
 * the SDK's run(), from the BUILT package, against a real nginx, trading entries with the CLI.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { REPO } from '../support/helpers.js';
import { markerOf, project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { nginxFor } from '../support/servers.js';

type Sdk = typeof import('../../src/index.js');
const { Client }: Sdk = await import(pathToFileURL(join(REPO, 'dist', 'index.js')).href);

const test = suite('remote: the SDK uses the team cache');
const ng = nginxFor(test);

/** Runs the `gen` task through the SDK in `dir`, with gen.mjs's run marker set for it. */
async function sdkRun(dir: string) {
  const said: string[] = [];
  const before = process.env.RAN_MARKER;
  process.env.RAN_MARKER = markerOf(dir);
  try {
    const outcome = await new Client({ cwd: dir, onWarning: (m) => said.push(m) }).run({ task: 'gen' });
    return { outcome, said };
  } finally {
    if (before === undefined) delete process.env.RAN_MARKER;
    else process.env.RAN_MARKER = before;
  }
}

test('run() pulls what the CLI pushed, and pushes what the CLI then pulls', async () => {
  const remote = { remote: { url: `${ng().url}/sdk` } };
  const a = project(remote);
  const pushed = await runGen(a, {});
  assert.is(pushed.code, 0, pushed.err);
  assert.equal(warnings(pushed), []);

  // Another machine, through the SDK: a remote hit, the command never runs.
  const b = project(remote);
  const pulled = await sdkRun(b);
  assert.equal(pulled.said, []);
  assert.is(pulled.outcome.kind, 'hit');
  assert.is(pulled.outcome.kind === 'hit' && pulled.outcome.origin, 'remote');
  assert.is(timesRan(b), 0);

  // A new input: the SDK runs the command, stores the result and pushes it...
  const c = project(remote);
  writeFileSync(join(c, 'src/input.txt'), 'a new input, only on this machine\n');
  const ran = await sdkRun(c);
  assert.equal(ran.said, []);
  assert.is(ran.outcome.kind === 'miss' && ran.outcome.stored, true);
  assert.is(timesRan(c), 1);

  // ...so the CLI on a fourth machine with the same input pulls it.
  const d = project(remote);
  writeFileSync(join(d, 'src/input.txt'), 'a new input, only on this machine\n');
  const hit = await runGen(d, {});
  assert.is(hit.code, 0, hit.err);
  assert.match(hit.err, /taskvault: hit \(remote\)/);
  assert.is(timesRan(d), 0);
});

test.run();

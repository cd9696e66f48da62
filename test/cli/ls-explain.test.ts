/** `taskvault ls` and `taskvault explain` through the built CLI. */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Store } from '../../src/store/store.js';
import { runCli, tempDir, writeTree } from '../support/helpers.js';

/** A project with a configured task whose argv, inputs, env and outputs are all declared. */
function project(): string {
  const dir = tempDir('tv-explain-');
  writeTree(dir, {
    'taskvault.config.json': JSON.stringify({
      tasks: {
        bundle: {
          command: ['sh', '-c', 'cat src/*.txt > out.txt; echo "$MODE" >> out.txt; echo bundled', 'bundle'],
          inputs: ['src/**'],
          outputs: ['out.txt'],
          env: ['MODE'],
        },
      },
    }),
    'src/a.txt': 'alpha\n',
    'src/b.txt': 'beta\n',
  });
  return dir;
}

const explain = (dir: string, args: string[], env: Record<string, string> = { MODE: 'dev' }) =>
  runCli(['explain', ...args], { cwd: dir, env });

test('explain before any run: the fingerprint and "no earlier entry"; creates nothing', async () => {
  const dir = project();
  const r = await explain(dir, ['bundle']);
  assert.is(r.code, 0, r.err);
  const lines = r.out.split('\n');
  assert.match(lines[0]!, /^bundle {2}key [0-9a-f]{12}$/);
  assert.ok(lines.includes('  env        MODE="dev"'), r.out);
  assert.ok(lines.includes('  inputs     2 files'), r.out);
  assert.ok(
    lines.some((l) => /^ {4}[0-9a-f]{8} {3}src\/a\.txt$/.test(l)),
    r.out,
  );
  assert.match(r.out, /would miss: no earlier entry of this task is in the cache/);
  assert.not.ok(existsSync(join(dir, '.taskvault')), 'explain made no cache');
  assert.not.ok(existsSync(join(dir, 'out.txt')), 'explain ran nothing');
});

test('explain says exactly which inputs, env vars and argv changed since the last entry', async () => {
  const dir = project();
  const run = await runCli(['run', 'bundle'], { cwd: dir, env: { MODE: 'dev' } });
  assert.is(run.code, 0, run.err);
  rmSync(join(dir, 'out.txt'));

  const hit = await explain(dir, ['bundle']);
  assert.match(
    hit.out,
    /would hit: entry [0-9a-f]{12}, created .* ago by .* with taskvault \d+\.\d+\.\d+, ran \S+, \d+ B\n {2}restores 1 file, exit code 0; 0 hits so far\n$/,
  );
  assert.not.ok(existsSync(join(dir, 'out.txt')), 'explain restored nothing');
  const runKey = JSON.parse((await explain(dir, ['bundle', '--json'])).out).key;

  writeFileSync(join(dir, 'src/a.txt'), 'ALPHA\n');
  rmSync(join(dir, 'src/b.txt'));
  writeFileSync(join(dir, 'src/c.txt'), 'gamma\n');
  const miss = await explain(dir, ['bundle', '--', '--verbose'], { MODE: 'prod' });
  assert.is(miss.code, 0, miss.err);
  const tail = miss.out.slice(miss.out.indexOf('would miss'));
  const diffLines = tail.trimEnd().split('\n').slice(1);
  assert.match(diffLines[0]!, /^ {2}input changed {4}src\/a\.txt \([0-9a-f]{8} → [0-9a-f]{8}\)$/);
  assert.equal(diffLines.slice(1), [
    '  input removed    src/b.txt',
    '  input added      src/c.txt',
    '  env changed      MODE: "dev" → "prod"',
    '  command changed  sh -c "cat src/*.txt > out.txt; echo \\"$MODE\\" >> out.txt; echo bundled" bundle → sh -c "cat src/*.txt > out.txt; echo \\"$MODE\\" >> out.txt; echo bundled" bundle --verbose',
  ]);
  assert.match(
    tail,
    new RegExp(
      `^would miss: 5 differences from the most recent entry of this task \\(entry ${runKey.slice(0, 12)}, created `,
    ),
  );

  const json = JSON.parse(
    (await explain(dir, ['bundle', '--json', '--', '--verbose'], { MODE: 'prod' })).out,
  );
  assert.is(json.status, 'miss');
  assert.is(json.previous.key, runKey);
  assert.equal(
    json.previous.changes.map((c: { kind: string }) => c.kind),
    ['input-changed', 'input-removed', 'input-added', 'env', 'argv'],
  );
  assert.is(
    json.previous.entry.provenance.version,
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version,
  );
  assert.ok(json.previous.entry.provenance.host);
});

test('explain takes run-style flags and -- <cmd> for anonymous tasks', async () => {
  const dir = project();
  const args = ['--inputs', 'src/**', '--outputs', 'n.txt', '--', 'sh', '-c', 'cat src/a.txt > n.txt'];
  assert.is((await runCli(['run', ...args], { cwd: dir })).code, 0);
  assert.match((await explain(dir, args)).out, /would hit/);
  writeFileSync(join(dir, 'src/a.txt'), 'changed\n');
  const r = await explain(dir, args);
  assert.match(
    r.out,
    /would miss: 1 difference from the most recent entry of this task .*\n {2}input changed {4}src\/a\.txt/,
  );
  assert.is((await explain(dir, ['--inputs'])).code, 2);
  const unknown = await explain(dir, ['nosuchtask']);
  assert.is(unknown.code, 2);
  assert.match(unknown.err, /unknown task 'nosuchtask'.*known tasks: bundle/);
});

test('explain says when the entry it would use has expired', async () => {
  const dir = project();
  const cfg = JSON.parse(readFileSync(join(dir, 'taskvault.config.json'), 'utf8'));
  cfg.policies = { bundle: { ttlSeconds: '1ms' } };
  writeFileSync(join(dir, 'taskvault.config.json'), JSON.stringify(cfg));
  assert.is((await runCli(['run', 'bundle'], { cwd: dir, env: { MODE: 'dev' } })).code, 0);
  const r = await explain(dir, ['bundle']);
  assert.match(r.out, /would miss: the entry for this exact state expired \(entry [0-9a-f]{12}/);
});

test('explain when the most recent entry of the task is gone from the cache', async () => {
  const dir = project();
  assert.is((await runCli(['run', 'bundle'], { cwd: dir, env: { MODE: 'dev' } })).code, 0);
  const key = JSON.parse((await explain(dir, ['bundle', '--json'])).out).key as string;
  const store = Store.open(join(dir, '.taskvault/cache'));
  assert.ok(store.ok);
  if (!store.ok) return;
  await store.value.remove(key);
  await store.value.close();
  const r = await explain(dir, ['bundle']);
  assert.match(
    r.out,
    new RegExp(
      `would miss: the most recent entry of this task \\(${key.slice(0, 12)}\\) is no longer in the cache`,
    ),
  );
});

test('ls: task, kind, key prefix, size, age, last hit, hits; --json with provenance', async () => {
  const dir = project();
  const empty = await runCli(['ls'], { cwd: dir });
  assert.is(empty.out, 'No entries in the cache.\n');
  assert.is((await runCli(['ls', '--json'], { cwd: dir })).out, '[]\n');

  assert.is((await runCli(['run', 'bundle'], { cwd: dir, env: { MODE: 'dev' } })).code, 0);
  for (let i = 0; i < 3; i++)
    assert.is((await runCli(['run', 'bundle'], { cwd: dir, env: { MODE: 'dev' } })).code, 0);
  writeTree(dir, { 'in.csv': 'a\n1\n', 'res.json': '{"n":1}\n' });
  assert.is((await runCli(['cache', 'save', 'agg', 'in.csv', 'res.json'], { cwd: dir })).code, 0);
  assert.is((await runCli(['run', '--inputs', 'src/**', '--', 'true'], { cwd: dir })).code, 0);

  const table = await runCli(['ls'], { cwd: dir });
  assert.is(table.code, 0, table.err);
  const lines = table.out.trimEnd().split('\n');
  assert.match(lines[0]!, /^TASK +KIND +KEY +SIZE +AGE +LAST HIT +HITS +TOOK$/);
  assert.is(lines.length, 4);
  const cells = (l: string) => l.split(/ {2,}/);
  assert.equal(cells(lines[1]!).slice(0, 2), ['true', 'run']);
  assert.equal(cells(lines[2]!).slice(0, 2), ['agg', 'result']);
  assert.equal(cells(lines[3]!).slice(0, 2), ['bundle', 'run']);
  assert.match(lines[3]!, /^bundle +run +[0-9a-f]{12} +\d+ B +\S+ ago +\S+ ago +3 +\S+$/);
  assert.match(lines[2]!, / never +0 +0ms$/);
  const header = lines[0]!;
  for (const l of lines.slice(1))
    assert.is(l.indexOf(l.match(/[0-9a-f]{12}/)![0]), header.indexOf('KEY'), 'aligned');

  const rows = JSON.parse((await runCli(['ls', '--json'], { cwd: dir })).out);
  const bundle = rows.find((r: { task: string }) => r.task === 'bundle');
  assert.is(bundle.hits, 3);
  assert.is(bundle.kind, 'run');
  assert.is(bundle.files, 1);
  assert.ok(bundle.lastHit >= bundle.createdAt);
  assert.type(bundle.provenance.user, 'string');
  assert.type(bundle.provenance.host, 'string');
  assert.is(rows.find((r: { task: string }) => r.task === 'agg').lastHit, undefined);
});

test('explain takes run\'s policy flags (--ttl decides "expired"); unknown options are named as typed', async () => {
  const dir = writeTree(tempDir(), { 'in.txt': 'x' });
  const hourAgo = String(Date.now() - 3_600_000);
  const ran = await runCli(['run', '--', 'echo', 'ttl'], { cwd: dir, env: { TASKVAULT_NOW_MS: hourAgo } });
  assert.is(ran.code, 0, ran.err);
  const fresh = await runCli(['explain', '--ttl', '2h', '--max-entry-size', '5MB', '--', 'echo', 'ttl'], {
    cwd: dir,
  });
  assert.is(fresh.code, 0, fresh.err);
  assert.match(fresh.out, /\nwould hit: /);
  const stale = await runCli(['explain', '--ttl', '30m', '--', 'echo', 'ttl'], { cwd: dir });
  assert.is(stale.code, 0, stale.err);
  assert.match(stale.out, /\nwould miss: the entry for this exact state expired/);
  const unknown = await runCli(['ls', '--max-entry-size', '5MB'], { cwd: dir });
  assert.is(unknown.code, 2);
  assert.match(unknown.err, /^taskvault: error: unknown option '--max-entry-size'/);
});

test.run();

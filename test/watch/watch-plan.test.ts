/** The watch loop's pure parts: which paths are watched and matter, how events fold, how changes print. */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeChanges } from '../../src/cli/watch.js';
import type { TaskSpec } from '../../src/config/resolve.js';
import { ChangeSet } from '../../src/watch/changes.js';
import { watchPlan } from '../../src/watch/plan.js';
import { taskSpec, tempDir, writeTree } from '../support/helpers.js';

const spec = (root: string, inputs: string[] | undefined, outputs: string[] = []): TaskSpec =>
  taskSpec(root, { inputs, outputs });

test('watchPlan: inputs matter; outputs, the cache, node_modules and other files do not', () => {
  const root = writeTree(tempDir(), { 'package.json': '{}', 'taskvault.config.ts': '', 'src/a.ts': '' });
  const settings = {
    cacheDir: join(root, '.taskvault/cache'),
    configPath: join(root, 'taskvault.config.ts'),
  };
  const plan = watchPlan(settings, spec(root, ['src/**', 'package.json', '!src/**/*.snap'], ['src/gen/**']));
  assert.equal(
    plan.roots.sort(),
    [join(root, 'package.json'), join(root, 'src'), settings.configPath].sort(),
  );
  assert.is(plan.relevance(join(root, 'src/a.ts')), 'input');
  assert.is(plan.relevance(join(root, 'src/deep/.hidden')), 'input');
  assert.is(plan.relevance(join(root, 'package.json')), 'input');
  assert.is(plan.relevance(settings.configPath), 'config');
  assert.is(plan.relevance(join(root, 'src/gen/out.js')), undefined); // an output
  assert.is(plan.relevance(join(root, 'src/x.snap')), undefined); // negated
  assert.is(plan.relevance(join(root, 'src/node_modules/m/i.js')), undefined);
  assert.is(plan.relevance(join(root, 'README.md')), undefined);
  assert.not.ok(plan.prune(join(root, 'src/deep')));
  assert.ok(plan.prune(join(root, 'docs')));
  assert.ok(plan.prune(join(root, 'src/node_modules')));
  assert.ok(plan.prune(join(root, '.taskvault/cache/blobs')));
});

test('watchPlan: default inputs watch the working directory; a missing base is watched from its parent', () => {
  const root = tempDir();
  const settings = { cacheDir: join(root, '.taskvault/cache') };
  const all = watchPlan(settings, spec(root, undefined, ['dist/**']));
  assert.equal(all.roots, [root]);
  assert.is(all.relevance(join(root, 'any/file.txt')), 'input');
  assert.is(all.relevance(join(root, 'dist/x.js')), undefined);
  assert.is(all.relevance(join(root, '.taskvault/cache/index/data.mdb')), undefined);
  assert.ok(all.prune(join(root, '.git')));

  const missing = watchPlan(settings, spec(root, ['lib/**/*.ts']));
  assert.equal(missing.roots, [root]);
  assert.not.ok(missing.prune(join(root, 'lib'))); // created later: must be seen
  assert.ok(missing.prune(join(root, 'other')));
  assert.is(missing.relevance(join(root, 'lib/a.ts')), 'input');
  assert.is(missing.relevance(join(root, 'lib/a.js')), undefined);
  assert.is.not(missing.signature, all.signature);
});

test('watchPlan: absolute input globs, inside and outside the root, are watched like relative ones', () => {
  const root = writeTree(tempDir(), { 'src/a.ts': '' });
  const other = writeTree(tempDir(), { 'o.txt': '' });
  const settings = { cacheDir: join(root, '.taskvault/cache') };
  const plan = watchPlan(settings, spec(root, [join(root, 'src/**'), join(other, '*.txt')]));
  assert.equal(plan.roots.sort(), [join(root, 'src'), other].sort());
  assert.is(plan.relevance(join(root, 'src/a.ts')), 'input');
  assert.is(plan.relevance(join(other, 'o.txt')), 'input');
  assert.is(plan.relevance(join(other, 'o.md')), undefined);
  assert.is(plan.relevance(join(root, 'README.md')), undefined);
  assert.not.ok(plan.prune(join(other, 'o.txt')));
});

test('ChangeSet folds an atomic save into one change and drops temp files', () => {
  const c = new ChangeSet();
  c.record('add', '/p/.a.ts.tmp');
  c.record('change', '/p/.a.ts.tmp');
  c.record('unlink', '/p/a.ts');
  c.record('unlink', '/p/.a.ts.tmp');
  c.record('add', '/p/a.ts');
  c.record('add', '/p/b.ts');
  c.record('change', '/p/b.ts');
  assert.equal(c.take(), [
    { path: '/p/a.ts', kind: 'change' },
    { path: '/p/b.ts', kind: 'add' },
  ]);
  assert.is(c.size, 0);
  c.record('unlink', '/p/a.ts');
  c.putBack([
    { path: '/p/a.ts', kind: 'change' },
    { path: '/p/c.ts', kind: 'add' },
  ]);
  assert.equal(c.take(), [
    { path: '/p/a.ts', kind: 'unlink' },
    { path: '/p/c.ts', kind: 'add' },
  ]);
});

test('describeChanges lists a few paths, cuts long ones, counts the rest', () => {
  const long = `/p/${'d/'.repeat(40)}file.ts`;
  const text = describeChanges(
    [
      { path: '/p/a.ts', kind: 'add' },
      { path: long, kind: 'change' },
      { path: '/p/c.ts', kind: 'unlink' },
      { path: '/p/d.ts', kind: 'change' },
      { path: '/p/e.ts', kind: 'change' },
    ],
    '/p',
  );
  assert.match(text, /^added a\.ts, changed \.\.\.(d\/)+file\.ts, removed c\.ts, \+2 more$/);
  assert.ok(text.length < 120);
  assert.is(describeChanges([], '/p'), 'no net change');
});

test.run();

/**
 * README.md and docs/*.md point at things that exist: every relative link reaches a file (and its
 * heading, for `#anchor`s), every repository path they name in backticks exists, the quick start's
 * npm scripts exist, and the README stays a short entry point.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REPO } from '../support/helpers.js';

const DOCS = ['README.md', ...readdirSync(join(REPO, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith('.md'),
);
const text = (file: string) => readFileSync(join(REPO, file), 'utf8');

/** Markdown with its fenced code blocks blanked, so links and paths in examples are not read. */
const prose = (file: string) => text(file).replace(/^```[\s\S]*?^```/gm, '');

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

const anchorsOf = (file: string) =>
  new Set([...text(file).matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));

test('every relative link reaches an existing file and heading', () => {
  let links = 0;
  for (const file of DOCS) {
    for (const [, target] of prose(file).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue; // https: and the like
      links++;
      const [path, anchor] = target!.split('#') as [string, string | undefined];
      const dest = path === '' ? file : relative(REPO, join(REPO, dirname(file), path));
      assert.ok(existsSync(join(REPO, dest)), `${file}: link to ${target}: ${dest} does not exist`);
      if (anchor !== undefined)
        assert.ok(anchorsOf(dest).has(anchor), `${file}: link to ${target}: no such heading in ${dest}`);
    }
  }
  assert.ok(links > 40, `only ${links} links found`);
});

test('every repository path the docs name exists', () => {
  for (const file of DOCS) {
    for (const [, path] of prose(file).matchAll(/`((?:src|test|bench|scripts|fixtures)\/[\w./-]+)`/g)) {
      if (/[*<]/.test(path!)) continue; // a pattern, not a path
      assert.ok(existsSync(join(REPO, path!)), `${file} names ${path}, which does not exist`);
    }
  }
});

test("the README's quick start uses npm scripts that exist, and the README stays short", () => {
  const readme = text('README.md');
  const scripts = JSON.parse(text('package.json')).scripts as Record<string, string>;
  assert.match(readme, 'npm install && npm run demo');
  assert.match(readme, '\nnpm test ');
  assert.ok(scripts.demo && scripts.test, 'package.json lacks the demo or test script');
  const lines = readme.split('\n').length;
  assert.ok(lines <= 400, `README.md has ${lines} lines; move detail into docs/`);
  for (const doc of DOCS.filter((f) => f.startsWith('docs/')))
    assert.ok(readme.includes(`](${doc})`), `README.md does not link ${doc}`);
});

test.run();

import { existsSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import picomatch from 'picomatch';
import type { Settings, TaskSpec } from '../config/resolve.js';
import { excludedFromInputs } from '../fingerprint/fingerprint.js';
import { inputGlobs } from '../fingerprint/inputs.js';
import { isInside, toPosix } from '../util/paths.js';

/** What a file event is about: an input of the task, the config file, or nothing we care for. */
export type Relevance = 'input' | 'config' | undefined;

/**
 * Which paths a watcher should look at for one task, and which of its events matter. chokidar 4
 * has no glob support, so it watches the globs' base directories and the events are matched here
 * with the same semantics fast-glob (micromatch → picomatch) uses when the fingerprint expands them.
 */
export interface WatchPlan {
  /** Absolute paths handed to chokidar: each glob's base (or its nearest existing ancestor) and the config. */
  roots: string[];
  /** Paths chokidar should not even descend into (outside every base, node_modules, .git, the cache). */
  prune(abs: string): boolean;
  relevance(abs: string): Relevance;
  /** The globs as the user wrote them, for the "waiting for changes" line. */
  globs: string[];
  /** Equal plans watch the same roots with the same rules: no need to rebuild the watcher. */
  signature: string;
}

const ALWAYS_PRUNED = ['node_modules', '.git', '.taskvault'];

export function watchPlan(settings: Pick<Settings, 'cacheDir' | 'configPath'>, spec: TaskSpec): WatchPlan {
  const exclude = excludedFromInputs(spec, settings.cacheDir);
  const { positive, ignore } = inputGlobs(spec.inputs, exclude, spec.cwd);
  const isInput = picomatch(positive, { dot: true });
  const isIgnored = picomatch(ignore.length ? ignore : ['\0'], { dot: true });
  const bases = [...new Set(positive.map((g) => resolve(spec.cwd, picomatch.scan(g).base)))];
  // A directory the user's globs name on purpose (e.g. 'node_modules/x/**') is watched after all.
  const pruned = ALWAYS_PRUNED.filter((d) => !positive.some((g) => g.includes(d)));
  const configPath = settings.configPath;

  const roots = dedupe(bases.map(nearestExisting));
  if (configPath && !roots.some((r) => isInside(r, configPath))) roots.push(configPath);

  return {
    roots,
    prune(abs) {
      const p = resolve(abs);
      if (p === configPath) return false;
      if (isInside(settings.cacheDir, p)) return true;
      // Only the bases themselves, what is below them, and the directories leading to them.
      if (!bases.some((b) => isInside(b, p) || isInside(p, b))) return true;
      const rel = toPosix(relative(spec.cwd, p)).split('/');
      return rel.some((seg) => pruned.includes(seg));
    },
    relevance(abs) {
      const p = resolve(abs);
      if (p === configPath) return 'config';
      if (isInside(settings.cacheDir, p)) return undefined;
      const rel = toPosix(relative(spec.cwd, p));
      return isInput(rel) && !isIgnored(rel) ? 'input' : undefined;
    },
    globs: spec.inputs ?? ['**/*'],
    signature: JSON.stringify([roots, positive, ignore, spec.cwd, settings.cacheDir, configPath]),
  };
}

/** A base that does not exist yet (src/ before it is created) is watched from its nearest ancestor. */
function nearestExisting(p: string): string {
  let d = p;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

function dedupe(paths: string[]): string[] {
  const sorted = [...new Set(paths)].sort((a, b) => a.length - b.length);
  return sorted.filter((p, i) => !sorted.slice(0, i).some((q) => isInside(q, p)));
}

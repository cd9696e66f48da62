import type { TaskSpec } from '../config/resolve.js';
import { hashBytes } from '../fingerprint/hash.js';
import { type Failure, failure } from '../util/result.js';

/**
 * Runs in progress above this process, so that a task whose command ends up running the same task
 * again (an npm script `"build": "taskvault run build"` and a task `build: { command: 'npm run
 * build' }`) stops with one error instead of spawning itself until the machine gives out.
 */
const VAR = 'TASKVAULT_ACTIVE_RUNS';

/** A named task is the same task anywhere in its project; an anonymous one is its argv in its cwd. */
function runId(spec: TaskSpec): string {
  const what = spec.name
    ? `task\0${spec.root}\0${spec.name}`
    : `argv\0${spec.cwd}\0${spec.command.join('\0')}`;
  return hashBytes('blake3', what).slice(0, 16);
}

/**
 * Fails when `spec` is already running above us; otherwise marks it as running for the command's
 * children (they inherit process.env).
 */
export function enterRun(spec: TaskSpec, label: string): Failure | undefined {
  const id = runId(spec);
  const active = (process.env[VAR] ?? '').split(',').filter(Boolean);
  if (active.includes(id)) {
    return failure(
      'config',
      `${spec.name ? `task '${label}'` : `'${label}'`} runs itself: its command starts 'taskvault run ${spec.name || '-- ...'}' again`,
      spec.name
        ? `the task's command must not be the npm script or make target that calls 'taskvault run ${spec.name}'`
        : 'do not wrap a command that calls taskvault run with the same command',
    );
  }
  process.env[VAR] = [...active, id].join(',');
  return undefined;
}

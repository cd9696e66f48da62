import { hostname, userInfo } from 'node:os';
import { gitBranch, gitHead } from '../../util/git-head.js';
import { appendEvent, newEventId, type TeamEvent } from './buffer.js';

/** What a run's outcome says, as far as the team index cares (the runner's RunOutcome fits it). */
export type RecordedOutcome =
  | {
      kind: 'hit';
      key: string;
      exitCode: number;
      restoreMs: number;
      savedMs: number;
      origin: 'local' | 'remote';
    }
  | { kind: 'miss'; key: string; exitCode: number; durationMs: number; stored: boolean; bytes: number }
  | { kind: 'uncached'; exitCode: number; durationMs: number }
  | { kind: 'failed' }
  | { kind: 'dry-run' };

const truthy = (v: string | undefined): boolean => v !== undefined && v !== '' && v !== '0' && v !== 'false';

/**
 * The branch a run belongs to: TASKVAULT_TEAM_BRANCH if set, else the one checked out, else what
 * the CI says (its checkouts are often a detached HEAD); null when none is known.
 */
function branchOf(root: string, env: NodeJS.ProcessEnv): string | null {
  return (
    env.TASKVAULT_TEAM_BRANCH ||
    gitBranch(root) ||
    env.GITHUB_HEAD_REF ||
    env.CI_COMMIT_REF_NAME ||
    (env.GITHUB_REF_TYPE === 'branch' ? env.GITHUB_REF_NAME : undefined) ||
    null
  );
}

function userName(env: NodeJS.ProcessEnv): string {
  try {
    return userInfo().username;
  } catch {
    return env.USER ?? env.USERNAME ?? 'unknown'; // no passwd entry (some containers)
  }
}

/** The event for one finished run; undefined for what is not a run (a dry run). */
export function teamEventOf(
  outcome: RecordedOutcome,
  o: { task: string; via: string; root: string; at: number; env?: NodeJS.ProcessEnv },
): TeamEvent | undefined {
  if (outcome.kind === 'dry-run') return undefined;
  const env = o.env ?? process.env;
  const base = {
    id: newEventId(),
    at: new Date(o.at).toISOString(),
    task: o.task,
    via: o.via,
    // CI runners' hostnames are often random container ids: a node may name itself.
    host: env.TASKVAULT_TEAM_HOST || hostname(),
    user: env.TASKVAULT_TEAM_USER || userName(env),
    ci: truthy(env.CI),
    commit: gitHead(o.root) ?? null,
    branch: branchOf(o.root, env),
  };
  switch (outcome.kind) {
    case 'hit':
      return {
        ...base,
        key: outcome.key,
        outcome: 'hit',
        source: outcome.origin,
        durationMs: outcome.restoreMs,
        savedMs: outcome.savedMs,
        exitCode: outcome.exitCode,
        stored: null,
      };
    case 'miss':
      return {
        ...base,
        key: outcome.key,
        outcome: 'miss',
        source: 'local',
        durationMs: outcome.durationMs,
        savedMs: 0,
        exitCode: outcome.exitCode,
        stored: outcome.stored ? outcome.bytes : null,
      };
    default:
      return {
        ...base,
        key: '',
        outcome: 'error',
        source: 'local',
        durationMs: outcome.kind === 'uncached' ? outcome.durationMs : 0,
        savedMs: 0,
        exitCode: outcome.kind === 'uncached' ? outcome.exitCode : null,
        stored: null,
      };
  }
}

/** Appends the run's event to the local buffer; false when it could not be (a read-only cache dir). */
export function recordTeamEvent(teamDir: string, event: TeamEvent): boolean {
  try {
    appendEvent(teamDir, event);
    return true;
  } catch {
    // The cache dir is read-only or full: the run itself is unaffected; the event is lost.
    return false;
  }
}

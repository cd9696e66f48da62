import type { Policy, Settings, TaskSpec } from '../config/resolve.js';
import type { StdinMode } from '../config/types.js';
import type { Fingerprint, Fingerprinted } from '../fingerprint/fingerprint.js';
import type { ResidentAnswer } from '../fingerprint/resident.js';
import type { CheckedBlobs } from '../store/blobs.js';
import type { Entry } from '../store/entry.js';
import type { Store } from '../store/store.js';
import type { Reporter } from '../util/reporter.js';
import type { Failure } from '../util/result.js';
import type { ReplayTarget } from './replay.js';

/*
 * What the runner takes and gives: shared by its own modules, the entry points (cli, sdk, watch)
 * and, through the RemoteTier interface, whatever remote cache they plug in.
 */

export type { Reporter };

/**
 * A cache above the local one, owned here and implemented elsewhere (remote/tier.ts): the entry
 * point builds it and passes it in, so the runner never imports remote code. Neither method
 * throws: a remote that fails is a warning and a local miss (or an entry not uploaded).
 */
export interface RemoteTier {
  /**
   * After a local miss: the remote's entry for `key`, checked against this run's fingerprint, its
   * blobs downloaded and verified, committed to `store`. undefined: none usable (a warning says
   * why, when there is a why).
   */
  pull(request: RemotePull): Promise<RemoteHit | undefined>;
  /** After a local commit: uploads the entry's blobs the remote lacks, then the entry. */
  push(entry: Entry, via: { store: Store; reporter: Reporter }): Promise<void>;
}

export interface RemotePull {
  store: Store;
  key: string;
  /** This run's fingerprint: the key was derived from it, so a true entry agrees with it. */
  fingerprint: Fingerprint;
  /** The label under which the entry is remembered as the task's newest (taskKeyLabel). */
  label: string;
  policy: Policy;
  reporter: Reporter;
  now: number;
}

/**
 * A pulled entry, now in the local store, how long the download took, and the blobs the pull
 * checked byte for byte as it wrote them (the restore need not hash those again).
 */
export interface RemoteHit {
  entry: Entry;
  ms: number;
  checked?: CheckedBlobs;
}

export interface RunOptions {
  /** Run even on a hit, and store the result. */
  force?: boolean;
  /** Fingerprint and look up only. */
  dryRun?: boolean;
  /** Where audit lines say the event came from. */
  source?: string;
  reporter: Reporter;
  /** The team cache, when one is configured (remote/tier.ts remoteTier). */
  remote?: RemoteTier | undefined;
  /** Where a hit's logs are replayed (default: this process's stdout/stderr). */
  replayTo?: ReplayTarget;
  now?: () => number;
  /** Aborting stops the command (SIGTERM); the run is then interrupted and never cached. */
  signal?: AbortSignal;
  /**
   * Fingerprint the inputs again after the command and do not store if they changed meanwhile:
   * the outputs may then not match the key. On by default (never serve wrong bytes); the second
   * pass mostly only stats the inputs again.
   */
  recheckInputs?: boolean;
  /** Told what a running `taskvault daemon` answered, when one was asked (fingerprint/resident.ts). */
  onDaemonAnswer?: (answer: ResidentAnswer) => void;
  /**
   * Read the process's stdin into the key as this says (runner/stdin.ts); only `run` from the CLI
   * sets it. Unset: stdin is inherited and not keyed (the SDK, watch).
   */
  stdin?: StdinMode;
}

export type RunOutcome =
  | {
      kind: 'hit';
      key: string;
      exitCode: number;
      files: number;
      bytes: number;
      restoreMs: number;
      savedMs: number;
      origin: 'local' | 'remote';
    }
  | {
      kind: 'miss';
      key: string;
      exitCode: number;
      /** The signal that killed the command (exitCode is then 128 + its number); never stored. */
      signal?: NodeJS.Signals;
      durationMs: number;
      stored: boolean;
      notStored?: string;
      /** A warning has already said why it was not stored (the summary need not repeat it). */
      warned?: boolean;
      files: number;
      bytes: number;
    }
  | {
      kind: 'uncached';
      exitCode: number;
      /** The signal that killed the command (exitCode is then 128 + its number). */
      signal?: NodeJS.Signals;
      durationMs: number;
      reason: string;
      warned?: boolean;
    }
  | { kind: 'dry-run'; key: string; hit: boolean; fingerprint: Fingerprint; entry?: Entry }
  | { kind: 'failed'; failure: Failure };

export type HitOutcome = Extract<RunOutcome, { kind: 'hit' }>;

/** One run past its fingerprint: what every step of the lookup (lookup.ts) needs. */
export interface RunContext {
  settings: Settings;
  spec: TaskSpec;
  fp: Fingerprinted;
  key: string;
  /** The label under which the newest entry of a task is remembered (taskKeyLabel). */
  label: string;
  /** The task and short key, for audit lines. */
  logFields: Record<string, string>;
  /** Where audit lines say the event came from. */
  source: string;
  now: () => number;
  o: RunOptions;
}

/** The label under which the newest entry of a task is remembered (for `explain`). */
export const taskKeyLabel = (spec: Pick<TaskSpec, 'name' | 'command'>): string =>
  spec.name || `argv:${spec.command.join(' ')}`;

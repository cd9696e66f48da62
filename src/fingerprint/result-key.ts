import type { HashAlgorithm } from '../config/types.js';
import { FINGERPRINT_SCHEMA, type Fingerprint, keyOf } from './fingerprint.js';

/** The single "input path" of a stored result: its content counts, never where it was read from. */
export const RESULT_INPUT = '<input>';

/**
 * The fingerprint of a `cache save` / SDK result: task + input content hash + algorithm (+ the
 * config's salt, which invalidates everything when bumped). argv is empty, which no `run` fingerprint
 * ever is, so the two kinds of keys cannot collide.
 */
export function resultFingerprint(
  algorithm: HashAlgorithm,
  task: string,
  inputHash: string,
  salt: string,
): Fingerprint {
  return {
    schema: FINGERPRINT_SCHEMA,
    algorithm,
    task,
    argv: [],
    shell: false,
    cwd: '',
    env: {},
    inputs: [[RESULT_INPUT, inputHash, false]],
    outputs: [],
    salt,
  };
}

export const resultKey = (algorithm: HashAlgorithm, task: string, inputHash: string, salt: string): string =>
  keyOf(resultFingerprint(algorithm, task, inputHash, salt));

/** The label under which the newest result of a task is remembered (kept apart from `run` tasks). */
export const resultLabel = (task: string): string => `result:${task}`;

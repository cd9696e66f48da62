import type { HashAlgorithm } from '../config/types.js';
import { FINGERPRINT_SCHEMA, type Fingerprint } from './fingerprint.js';
import { hashBytes } from './hash.js';

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

/**
 * keyOf(resultFingerprint(...)), with the canonical JSON written out: its shape is fixed, and the
 * general walk (sorting keys at every level) was a tenth of a save through the Python SDK.
 * test/fingerprint/result-key.test.ts holds the two to the same text.
 */
export const resultKey = (algorithm: HashAlgorithm, task: string, inputHash: string, salt: string): string =>
  hashBytes(algorithm, resultFingerprintJson(algorithm, task, inputHash, salt));

/** canonicalJson(resultFingerprint(...)): keys in sorted order, strings as JSON.stringify writes them. */
export const resultFingerprintJson = (
  algorithm: HashAlgorithm,
  task: string,
  inputHash: string,
  salt: string,
): string =>
  `{"algorithm":${JSON.stringify(algorithm)},"argv":[],"cwd":"","env":{},` +
  `"inputs":[[${JSON.stringify(RESULT_INPUT)},${JSON.stringify(inputHash)},false]],"outputs":[],` +
  `"salt":${JSON.stringify(salt)},"schema":${FINGERPRINT_SCHEMA},"shell":false,"task":${JSON.stringify(task)}}`;

/** The label under which the newest result of a task is remembered (kept apart from `run` tasks). */
export const resultLabel = (task: string): string => `result:${task}`;

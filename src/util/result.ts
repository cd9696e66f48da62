/** Expected failures travel as values; only bugs throw. */
export type Result<T, E = Failure> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const err = <E>(error: E): { ok: false; error: E } => ({ ok: false, error });

/**
 * Why TaskVault itself could not do what was asked. The CLI prints `message` (and `hint`) as one
 * line and exits with the code for `reason`; see EXIT_CODES.
 */
export interface Failure {
  reason: FailureReason;
  message: string;
  hint?: string;
}

export type FailureReason =
  | 'usage' // bad flags, missing command
  | 'config' // taskvault.config.* cannot be loaded or is invalid
  | 'unknown-task'
  | 'input' // a file or glob given by the user is unusable
  | 'cache' // the cache cannot be opened or used (the command still runs where there is one)
  | 'miss' // `cache get` found nothing
  | 'internal';

/**
 * Exit codes for TaskVault's own failures. A wrapped command's exit code always passes through
 * unchanged; these only appear when no command ran. 2 follows the CLI convention for usage errors;
 * the others are sysexits.h codes, chosen to stay clear of the codes build tools commonly use.
 */
export const EXIT_CODES: Record<FailureReason, number> = {
  usage: 2,
  'unknown-task': 2,
  miss: 1,
  input: 66, // EX_NOINPUT
  config: 78, // EX_CONFIG
  cache: 74, // EX_IOERR
  internal: 70, // EX_SOFTWARE
};

export const failure = (reason: FailureReason, message: string, hint?: string): Failure =>
  hint === undefined ? { reason, message } : { reason, message, hint };

/** Thrown only to unwind from deep inside a command to the CLI boundary with an expected failure. */
export class FailureError extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

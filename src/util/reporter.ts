/**
 * Where a run's warnings and notes go: the CLI prints them on stderr, the SDK hands warnings to its
 * `onWarning`. Here, below the runner and the remote tier, so that both can take one.
 */
export interface Reporter {
  warn(message: string): void;
  info(message: string): void;
}

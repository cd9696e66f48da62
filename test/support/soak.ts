/** Shared by the soak suites: how many rounds to run, and one line of figures per suite. */

/**
 * SOAK_ROUNDS, when set, replaces every suite's small CI count (e.g. `SOAK_ROUNDS=1000 node
 * scripts/run-tests.mjs test/soak`); a suite may scale it (`scale`) where a round is much dearer.
 */
export function soakRounds(ciRounds: number, scale = 1): number {
  const n = Number(process.env.SOAK_ROUNDS);
  return Number.isInteger(n) && n > 0 ? Math.max(1, Math.round(n * scale)) : ciRounds;
}

/** One summary line, greppable across Node versions: `soak <name> node vX: k=v ...`. */
export function soakReport(name: string, figures: Record<string, number | string>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${v}`);
  console.log(`soak ${name} node ${process.version}: ${parts.join(' ')}`);
}

export const randomInt = (max: number) => Math.floor(Math.random() * max);

const started = Date.now();
/**
 * SOAK_MINUTES, when set, bounds a long run by hand: loops stop once it has passed and report the
 * rounds they did.
 */
export function soakTimeUp(): boolean {
  const min = Number(process.env.SOAK_MINUTES);
  return min > 0 && Date.now() - started > min * 60_000;
}

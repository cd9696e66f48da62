import type { CostConfig } from '../config/types.js';

/** Prices per hour of a task's command (config `cost`); tasks without one use `default`, else 0. */
export interface Prices {
  currency: string;
  perHour: Record<string, number>;
}

export const prices = (cost: CostConfig | undefined): Prices => ({
  currency: cost?.currency?.toUpperCase() ?? 'USD',
  perHour: cost?.perHour ?? {},
});

/** What `savedMs` of a task's command would have cost. */
export function costOf(p: Prices, task: string, savedMs: number): number {
  const rate = Object.hasOwn(p.perHour, task) ? p.perHour[task]! : (p.perHour.default ?? 0);
  return (savedMs / 3_600_000) * rate;
}

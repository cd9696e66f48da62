import type { TeamConfig } from './types.js';

/** The team index as configured: the config file's `team` block with the environment on top. */
export interface TeamSettings {
  /** A postgres:// connection URL. */
  database: string;
}

/**
 * TASKVAULT_TEAM_DATABASE overrides the config's database; set to '' it turns the team index off
 * (e.g. on a laptop offline). Kept free of imports so that resolving settings never loads pg.
 */
export function resolveTeam(
  config: TeamConfig | undefined,
  env: NodeJS.ProcessEnv,
): TeamSettings | undefined {
  const database = env.TASKVAULT_TEAM_DATABASE ?? config?.database;
  return database ? { database } : undefined;
}

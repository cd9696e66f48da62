import type { Client } from 'pg';
import type { TeamSettings } from '../../config/team.js';
import { importModule } from '../../util/import-module.js';

/** How long a flush or a query may take before it is given up (a locked table, a dead host). */
export interface TeamTimeouts {
  connectMs: number;
  statementMs: number;
}

export const DEFAULT_TIMEOUTS: TeamTimeouts = { connectMs: 5_000, statementMs: 15_000 };

/** A connected client. pg is loaded here, only by what talks to the database (never on a hit). */
export async function connectTeam(team: TeamSettings, t: TeamTimeouts = DEFAULT_TIMEOUTS): Promise<Client> {
  const pg = (await importModule('pg')) as typeof import('pg') & { default?: typeof import('pg') };
  const { Client } = pg.default ?? pg;
  const client = new Client({
    connectionString: team.database,
    connectionTimeoutMillis: t.connectMs,
    statement_timeout: t.statementMs,
    lock_timeout: t.statementMs,
    query_timeout: t.statementMs + 1_000,
    application_name: 'taskvault',
  });
  // A connection that drops later is reported by the query that was using it.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => {});
    throw e;
  }
  return client;
}

/** One line for what went wrong talking to the database, without the password. */
export function dbErrorText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: string } | undefined)?.code;
  return (code && /^[0-9A-Z]{5}$/.test(code) ? `${message} (SQLSTATE ${code})` : message).replace(
    /postgres(ql)?:\/\/[^@\s]*@/g,
    'postgres://…@',
  );
}

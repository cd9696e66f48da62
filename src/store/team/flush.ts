import type { ClientBase } from 'pg';
import type { TeamSettings } from '../../config/team.js';
import { err, failure, ok, type Result } from '../../util/result.js';
import {
  bufferMax,
  capBatches,
  claimBatches,
  endDropEpisode,
  finishBatch,
  othersSending,
  type TeamEvent,
  touchStamp,
} from './buffer.js';
import { connectTeam, DEFAULT_TIMEOUTS, dbErrorText, type TeamTimeouts } from './connect.js';
import { migrate } from './schema.js';

/** How long a foreground flush waits for batches background flushes are sending. */
const FOREGROUND_WAIT_MS = 20_000;

/** Rows per INSERT: each column travels as one array parameter, so a statement's size is the data. */
const ROWS_PER_INSERT = 5000;

/** Each column with its type: the rows are sent as arrays and unnested on the server. */
const COLUMNS: ReadonlyArray<[name: string, type: string, of: (e: TeamEvent) => unknown]> = [
  ['id', 'text', (e) => e.id],
  ['at', 'timestamptz', (e) => e.at],
  ['task', 'text', (e) => e.task],
  ['key', 'text', (e) => e.key],
  ['outcome', 'text', (e) => e.outcome],
  ['source', 'text', (e) => e.source],
  ['via', 'text', (e) => e.via],
  ['duration_ms', 'bigint', (e) => Math.round(e.durationMs)],
  ['saved_ms', 'bigint', (e) => Math.round(e.savedMs)],
  ['exit_code', 'integer', (e) => e.exitCode],
  ['host', 'text', (e) => e.host],
  ['user_name', 'text', (e) => e.user],
  ['ci', 'boolean', (e) => e.ci],
  ['git_commit', 'text', (e) => e.commit],
  ['stored', 'bigint', (e) => e.stored],
  ['branch', 'text', (e) => e.branch ?? null],
];

const INSERT = `INSERT INTO taskvault_events (${COLUMNS.map(([n]) => n).join(',')})
  SELECT * FROM unnest(${COLUMNS.map(([, t], i) => `$${i + 1}::${t}[]`).join(',')})
  ON CONFLICT (id) DO NOTHING`;

/**
 * Inserts events in one transaction, many rows per statement: one array parameter per column
 * (unnest) rather than one parameter per value, which PostgreSQL parses and binds far faster.
 * A resent event is skipped.
 */
export async function insertEvents(db: ClientBase, events: TeamEvent[]): Promise<void> {
  await db.query('BEGIN');
  try {
    for (let i = 0; i < events.length; i += ROWS_PER_INSERT) {
      const chunk = events.slice(i, i + ROWS_PER_INSERT);
      await db.query(
        INSERT,
        COLUMNS.map(([, , of]) => chunk.map(of)),
      );
    }
    await db.query('COMMIT');
  } catch (e) {
    await db.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

export interface FlushResult {
  sent: number;
  /** Events the database will never take (this role may not insert): dropped, not retried. */
  dropped: number;
}

/**
 * Sends every buffered event of `teamDir` to the team index. A batch that fails to send stays on
 * disk for the next flush, except when the role lacks INSERT rights (a read-only laptop), where
 * retrying can never succeed and the batch is dropped. `foreground` (`taskvault team flush`, which
 * reports them all): first let batches other live flushers hold finish, and connect even with
 * nothing to send.
 */
export async function flushTeam(
  teamDir: string,
  team: TeamSettings,
  o: { timeouts?: TeamTimeouts; maxBuffered?: number; foreground?: boolean } = {},
): Promise<Result<FlushResult>> {
  const deadline = Date.now() + (o.foreground ? FOREGROUND_WAIT_MS : 0);
  const waitForOthers = async () => {
    while (othersSending(teamDir) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  };
  await waitForOthers();
  touchStamp(teamDir);
  const batches = claimBatches(teamDir);
  // A background flush may have claimed the buffer between the wait and the claim: let it finish,
  // then take what it could not send.
  if (othersSending(teamDir) > 0) {
    await waitForOthers();
    batches.push(...claimBatches(teamDir));
  }
  // Before trying the database: a database down for days must not let the buffer fill the disk.
  capBatches(teamDir, batches, o.maxBuffered ?? bufferMax(process.env));
  const total = batches.reduce((n, b) => n + b.events.length, 0);
  // A foreground flush connects even with nothing to send: it is how the owner creates or migrates
  // the schema (docs/team-index.md) and how anyone checks the database is reachable.
  if (total === 0 && !o.foreground) {
    for (const b of batches) finishBatch(b);
    return ok({ sent: 0, dropped: 0 });
  }
  let db: ClientBase & { end(): Promise<void> };
  try {
    db = await connectTeam(team, o.timeouts ?? DEFAULT_TIMEOUTS);
  } catch (e) {
    return err(failure('cache', `team index unreachable: ${dbErrorText(e)}`, 'events stay buffered'));
  }
  let sent = 0;
  let dropped = 0;
  try {
    try {
      await migrate(db);
    } catch (e) {
      return err(failure('cache', `team index schema not ready: ${dbErrorText(e)}`, migrateHint));
    }
    for (const b of batches) {
      try {
        await insertEvents(db, b.events);
        sent += b.events.length;
      } catch (e) {
        if ((e as { code?: string }).code !== '42501')
          return err(failure('cache', `team index write failed: ${dbErrorText(e)}`, 'events stay buffered'));
        dropped += b.events.length;
        finishBatch(b);
        return err(
          failure(
            'cache',
            `team index is read-only for this role: ${dropped} event(s) dropped`,
            'give the role INSERT rights (docs/team-index.md) or record nothing here',
          ),
        );
      }
      finishBatch(b);
    }
    endDropEpisode(teamDir);
  } finally {
    await db.end().catch(() => {});
  }
  return ok({ sent, dropped });
}

const migrateHint = 'run `taskvault team flush` once with a role that may create tables (docs/team-index.md)';

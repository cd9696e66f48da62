import type { ClientBase } from 'pg';

/*
 * The team index's tables, as numbered migrations applied in order on first use. The version
 * applied last is the highest row of taskvault_schema. Each migration runs in one transaction
 * under an advisory lock, so two machines starting at once migrate once.
 */

export const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE taskvault_events (
        id text PRIMARY KEY,
        at timestamptz NOT NULL,
        task text NOT NULL,
        key text NOT NULL,
        outcome text NOT NULL CHECK (outcome IN ('hit', 'miss', 'error')),
        source text NOT NULL CHECK (source IN ('local', 'remote')),
        via text NOT NULL,
        duration_ms bigint NOT NULL,
        saved_ms bigint NOT NULL,
        exit_code integer,
        host text NOT NULL,
        user_name text NOT NULL
      );
      CREATE INDEX taskvault_events_at ON taskvault_events (at);
      CREATE INDEX taskvault_events_task_at ON taskvault_events (task, at);`,
  },
  {
    // Who and where: CI flag and commit on events; the entries table, kept current by a trigger so
    // that writers need INSERT rights only.
    version: 2,
    sql: `
      ALTER TABLE taskvault_events ADD COLUMN ci boolean NOT NULL DEFAULT false;
      ALTER TABLE taskvault_events ADD COLUMN git_commit text;
      ALTER TABLE taskvault_events ADD COLUMN stored bigint;
      CREATE INDEX taskvault_events_key ON taskvault_events (key);
      CREATE TABLE taskvault_entries (
        key text PRIMARY KEY,
        size bigint NOT NULL,
        created timestamptz NOT NULL,
        last_hit timestamptz,
        hits bigint NOT NULL DEFAULT 0,
        producer text NOT NULL
      );
      CREATE FUNCTION taskvault_track_entries() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
      BEGIN
        INSERT INTO taskvault_entries (key, size, created, producer)
          SELECT DISTINCT ON (key) key, stored, at, user_name || '@' || host
          FROM new_events WHERE stored IS NOT NULL AND key <> '' ORDER BY key, at
          ON CONFLICT (key) DO NOTHING;
        UPDATE taskvault_entries e SET last_hit = GREATEST(e.last_hit, h.last_hit), hits = e.hits + h.n
          FROM (SELECT key, max(at) AS last_hit, count(*) AS n FROM new_events
                WHERE outcome = 'hit' GROUP BY key) h
          WHERE e.key = h.key;
        RETURN NULL;
      END $$;
      CREATE TRIGGER taskvault_events_track AFTER INSERT ON taskvault_events
        REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION taskvault_track_entries();`,
  },
  {
    // The git branch of each run, for the team dashboard's per-branch view; older events have none.
    version: 3,
    sql: `
      ALTER TABLE taskvault_events ADD COLUMN branch text;
      CREATE INDEX taskvault_events_branch_at ON taskvault_events (branch, at);`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The version the database is at: 0 for none yet. */
export async function schemaVersion(db: ClientBase): Promise<number> {
  const exists = await db.query<{ t: string | null }>("SELECT to_regclass('taskvault_schema')::text AS t");
  if (!exists.rows[0]?.t) return 0;
  const r = await db.query<{ v: number | null }>('SELECT max(version) AS v FROM taskvault_schema');
  return r.rows[0]?.v ?? 0;
}

/**
 * Brings the schema to `target` (default: the newest). Needs the rights to create tables; a
 * database already at the target is only read, so a writer or read-only role works once the owner
 * (or any first run with DDL rights) has migrated it.
 */
export async function migrate(db: ClientBase, target = SCHEMA_VERSION): Promise<number> {
  if ((await schemaVersion(db)) >= target) return target;
  await db.query('BEGIN');
  try {
    // One migrator at a time, across every machine sharing the database.
    await db.query('SELECT pg_advisory_xact_lock(74617376)');
    await db.query(
      'CREATE TABLE IF NOT EXISTS taskvault_schema (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())',
    );
    const at = await schemaVersion(db);
    for (const m of MIGRATIONS) {
      if (m.version <= at || m.version > target) continue;
      await db.query(m.sql);
      await db.query('INSERT INTO taskvault_schema (version) VALUES ($1)', [m.version]);
    }
    await db.query('COMMIT');
  } catch (e) {
    await db.query('ROLLBACK').catch(() => {});
    throw e;
  }
  return target;
}

/**
 * The PostgreSQL store's schema, as numbered migrations. A database is at the
 * version of the last migration applied; each one runs in its own transaction
 * with its row in `schema_migrations`, so a database is at one version or the
 * next. Migrations are applied when a detector opens the store (or by
 * `egress-witness detector migrate`) under a session advisory lock, so
 * replicas starting at once migrate once; a database at a newer version than
 * this detector knows is refused.
 *
 * Times are milliseconds since the epoch (BIGINT, read back as numbers); JSON
 * values are kept as the text they were written as (key order and bytes as
 * given), as in the SQLite store.
 */
import type { PoolClient } from 'pg';

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'the detector store: telemetry, CloudTrail files and events, pending, decisions, findings, GuardDuty, occurrences, outbox',
    sql: `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('max_span_ms', '0');
CREATE TABLE batches (gateway_id TEXT NOT NULL, batch_id TEXT NOT NULL, sequence BIGINT NOT NULL, received_ms BIGINT NOT NULL, records INTEGER NOT NULL,
  PRIMARY KEY (gateway_id, batch_id));
CREATE INDEX batches_received ON batches (received_ms);
CREATE TABLE observations (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, gateway_id TEXT NOT NULL, access_key_id TEXT, service TEXT, region TEXT, host TEXT NOT NULL,
  client_ip TEXT NOT NULL, network TEXT, mode TEXT NOT NULL, action TEXT, first_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL, count INTEGER NOT NULL,
  capture TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE INDEX observations_by_key ON observations (access_key_id, first_ms) WHERE access_key_id IS NOT NULL;
CREATE INDEX observations_by_endpoint ON observations (gateway_id, service, COALESCE(region, ''), first_ms) WHERE service IS NOT NULL;
CREATE INDEX observations_gateway ON observations (gateway_id, first_ms);
CREATE INDEX observations_last ON observations (last_ms);
CREATE TABLE heartbeats (gateway_id TEXT NOT NULL, time_ms BIGINT NOT NULL);
CREATE INDEX heartbeats_gateway ON heartbeats (gateway_id, time_ms);
CREATE INDEX heartbeats_time ON heartbeats (time_ms);
CREATE TABLE cloudtrail_files (path TEXT PRIMARY KEY, size BIGINT NOT NULL, mtime_ms BIGINT NOT NULL, processed_ms BIGINT NOT NULL, records INTEGER NOT NULL,
  invalid INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, done BOOLEAN NOT NULL DEFAULT TRUE, failure TEXT);
CREATE TABLE events (event_id TEXT PRIMARY KEY, access_key_id TEXT, source_ip TEXT NOT NULL, event_time_ms BIGINT NOT NULL, vpc_endpoint_id TEXT,
  origin TEXT, fingerprint TEXT, seen_ms BIGINT, summary TEXT);
CREATE INDEX events_key ON events (access_key_id, event_time_ms);
CREATE INDEX events_time ON events (event_time_ms);
CREATE TABLE event_conflicts (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id TEXT NOT NULL, detected_ms BIGINT NOT NULL, resolution TEXT NOT NULL,
  kept TEXT NOT NULL, dropped TEXT NOT NULL, dropped_fingerprint TEXT NOT NULL, superseded_decision TEXT, UNIQUE (event_id, dropped_fingerprint));
CREATE INDEX event_conflicts_time ON event_conflicts (detected_ms);
CREATE TABLE pending (event_id TEXT PRIMARY KEY, event_time_ms BIGINT NOT NULL, due_ms BIGINT NOT NULL, raw TEXT NOT NULL);
CREATE INDEX pending_due ON pending (due_ms);
CREATE TABLE decisions (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind TEXT NOT NULL, subject_id TEXT NOT NULL, time_ms BIGINT NOT NULL, decided_ms BIGINT NOT NULL,
  disposition TEXT NOT NULL, rule TEXT NOT NULL, access_key_id TEXT, source_ip TEXT, gateway_id TEXT, detail TEXT NOT NULL,
  UNIQUE (kind, subject_id));
CREATE INDEX decisions_time ON decisions (decided_ms);
CREATE INDEX decisions_key ON decisions (access_key_id, time_ms);
CREATE TABLE findings (id TEXT PRIMARY KEY, finding TEXT NOT NULL, updated_ms BIGINT NOT NULL);
CREATE TABLE guardduty_archived (finding_id TEXT PRIMARY KEY, archived_ms BIGINT NOT NULL);
CREATE TABLE finding_occurrences (event_id TEXT PRIMARY KEY, finding_id TEXT NOT NULL, event_time_ms BIGINT NOT NULL,
  event TEXT NOT NULL, checked_ms BIGINT NOT NULL, resolved BOOLEAN NOT NULL DEFAULT FALSE);
CREATE INDEX finding_occurrences_recheck ON finding_occurrences (resolved, checked_ms);
CREATE INDEX finding_occurrences_finding ON finding_occurrences (finding_id);
CREATE TABLE outbox (sink TEXT NOT NULL, item_id TEXT NOT NULL, version INTEGER NOT NULL, enqueued_ms BIGINT NOT NULL,
  next_ms BIGINT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, failed BOOLEAN NOT NULL DEFAULT FALSE, last_error TEXT,
  PRIMARY KEY (sink, item_id));
CREATE INDEX outbox_due ON outbox (sink, failed, next_ms);
`,
  },
];

/** The schema version this detector writes. */
export const POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]!.version;

/** Advisory lock class of the detector (the second key is the schema's name, hashed): one migration at a time per schema. */
const MIGRATION_LOCK_CLASS = 0x45570001;

export interface MigrationResult {
  /** The version found before (0: an empty schema). */
  from: number;
  /** The version now. */
  to: number;
  applied: number[];
}

/**
 * Brings the schema the connection's search_path selects to this detector's version, under an
 * advisory lock held for the session; refuses a version it does not know.
 */
export async function migrate(client: PoolClient, now: () => number = Date.now): Promise<MigrationResult> {
  const schema = (await client.query<{ s: string | null }>('SELECT current_schema() AS s')).rows[0]?.s ?? null;
  if (schema === null)
    throw new Error('no schema to create tables in: the search_path names no existing schema (create it, or fix options=-c search_path)');
  await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_ms BIGINT NOT NULL)',
    );
    const found = (await client.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations')).rows[0]?.v ?? 0;
    if (found > POSTGRES_SCHEMA_VERSION)
      throw new Error(
        `store schema version ${found} in schema "${schema}" is newer than this detector knows (${POSTGRES_SCHEMA_VERSION}): ` +
          'run the detector version that wrote it, or a newer one',
      );
    const applied: number[] = [];
    for (const m of POSTGRES_MIGRATIONS) {
      if (m.version <= found) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, description, applied_ms) VALUES ($1, $2, $3)', [
          m.version,
          m.description,
          now(),
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`store schema migration ${m.version} (${m.description}) failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(m.version);
    }
    return { from: found, to: Math.max(found, POSTGRES_SCHEMA_VERSION), applied };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
  }
}

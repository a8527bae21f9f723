/**
 * The detector store on PostgreSQL (node-postgres), for several detectors on
 * one database. It implements DetectorStore directly: operations outside a
 * transaction run on the pool at once (each is atomic on its own: a
 * multi-statement one such as ingestBatch takes a connection and runs between
 * BEGIN and COMMIT); `withTransaction` takes a connection for the callback
 * and runs it between BEGIN and COMMIT or ROLLBACK. Within one detector,
 * transactions run one at a time, as with SQLite; across detectors the
 * database keeps them apart (READ COMMITTED, unique constraints for every
 * "once": a batch, an event, a decision, an archive mark).
 *
 *   op ──────────────▶ pool.query ─────────────────────────────────────────▶ autocommit
 *   ingestBatch ─────▶ pool.connect ─▶ BEGIN ─▶ INSERT batches ON CONFLICT DO NOTHING
 *                                        ├─ conflict (another detector or a retry had it) ─▶ duplicate
 *                                        └─ observations, heartbeats (unnest arrays) ─▶ COMMIT
 *   withTransaction ─▶ lock ─▶ pool.connect ─▶ BEGIN ─▶ await fn(tx) ─┬─ resolves ─▶ COMMIT
 *                                                                      └─ rejects ──▶ ROLLBACK
 *
 * Evidence for a batch of decisions is three queries whatever the batch's
 * size (keys, endpoints, liveness: each joins an unnest of the needs), read
 * into a MemoryEvidence as the SQLite store does.
 */
import pg from 'pg';
import type { TelemetryBatch } from '../../protocol/telemetry.js';
import { MemoryEvidence } from '../correlate/memory-evidence.js';
import { ATTESTING_OUTCOMES, type EvidenceNeeds, type EvidenceView, type Sighting } from '../correlate/types.js';
import type { CloudTrailUse } from '../guardduty/decide.js';
import type { EventOrigin } from '../correlate/event-identity.js';
import { AsyncLock, runCommitHooks } from './serial-store.js';
import { postgresTarget, type PostgresStoreConfig, type PostgresTarget } from './postgres-connection.js';
import { migrate, type MigrationResult } from './postgres-schema.js';
import { DECISION_COLUMNS, decisionValues } from './decision-row.js';
import { EVENT_COLUMNS, EVENT_REPLACE_SET, eventValues } from './event-row.js';
import { OUTBOX_CHANNEL, PostgresLeaderLock, type PostgresLeaderLockOptions } from './postgres-leader.js';
import type {
  DecidedEvent,
  DeliveryBacklog,
  DetectorStore,
  EventConflict,
  FindingOccurrence,
  IngestResult,
  KeptEvent,
  PendingEvent,
  QueuedDelivery,
  StoredDecision,
  StoredEvent,
  StoreOps,
  StoreTx,
} from './store.js';
import {
  OBSERVATION_VALUE_COLUMNS,
  observationValues,
  spanMs,
  toSighting,
  type ObservationRow as StoredObservationRow,
} from './observation-row.js';

/** Rows that attest, by the current outcomes (`attests` in correlate/types.ts, in SQL). */
const ATTESTING = `o.outcome IN (${[...ATTESTING_OUTCOMES].map((o) => `'${o}'`).join(', ')})`;
/** The longest observation span stored: span queries use the first_ms indexes (first_ms ≥ from − span). */
const MAX_SPAN = `(SELECT value::bigint FROM meta WHERE key = 'max_span_ms')`;
/** Advisory lock class of one finding's read, merge and write in a transaction (migrations 0x45570001, leader 0x45570002). */
const FINDING_LOCK_CLASS = 0x45570003;
/** Needs per evidence query: a larger batch takes a few more queries, never one per event. */
const NEEDS_PER_QUERY = 5_000;

export interface PostgresStoreOptions {
  /** Each statement's kind and how long it took (ms), for the query latency histogram. */
  onQuery?: (kind: string, ms: number) => void;
  /** An idle pooled connection failed (the server restarted, the network dropped): the pool replaces it. */
  onIdleError?: (err: Error) => void;
  now?: () => number;
  /** The process's environment: PGSSLMODE, and PGHOST for the default TLS mode (node-postgres reads the other PG* variables itself). */
  env?: Readonly<Record<string, string | undefined>>;
}

interface Exec {
  query<R extends pg.QueryResultRow>(kind: string, text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  /** Runs `fn` atomically: in its own transaction, or as part of the open one. */
  atomic<T>(fn: (e: Exec) => Promise<T>): Promise<T>;
}

/** An observation row with its id (a sighting read by two needs is added once). */
interface ObservationRow extends StoredObservationRow {
  id: number;
}

const OBSERVATION_COLUMNS =
  'o.id, o.gateway_id, o.access_key_id, o.service, o.region, o.host, o.client_ip, o.network, o.mode, o.capture, o.outcome, o.action, o.first_ms, o.last_ms, o.count';

const json = (v: unknown): string => JSON.stringify(v);
const parse = <T>(text: string): T => JSON.parse(text) as T;

/** Rows of values (at least one, all as long as the first) as one array per column (parameters for `unnest`). */
function columns(rows: readonly unknown[][]): unknown[][] {
  const width = rows[0]!.length;
  const out = Array.from({ length: width }, () => new Array<unknown>(rows.length));
  for (let r = 0; r < rows.length; r++) for (let c = 0; c < width; c++) out[c]![r] = rows[r]![c];
  return out;
}

function chunks<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/** Named (prepared per connection) statements: one name per text. */
const statementNames = new Map<string, string>();
function statementName(kind: string, text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `ew_${kind}_${statementNames.size}`;
    statementNames.set(text, name);
  }
  return name;
}

/**
 * Every number the store keeps is a whole count or time in milliseconds (BIGINT); a fractional one (a
 * retry time with jitter) is rounded to the millisecond instead of refused by the server.
 */
function wholeNumbers(v: unknown): unknown {
  if (typeof v === 'number') return Number.isInteger(v) || !Number.isFinite(v) ? v : Math.round(v);
  return Array.isArray(v) ? v.map(wholeNumbers) : v;
}

function timedQuery<R extends pg.QueryResultRow>(
  client: pg.Pool | pg.PoolClient,
  onQuery: ((kind: string, ms: number) => void) | undefined,
  kind: string,
  text: string,
  values: unknown[] | undefined,
): Promise<pg.QueryResult<R>> {
  const started = performance.now();
  const q = client.query<R>({ name: statementName(kind, text), text, values: values?.map(wholeNumbers) });
  if (onQuery === undefined) return q;
  return q.finally(() => onQuery(kind, performance.now() - started));
}

/** An events row's kept copy. */
function keptFromRow(row: { origin: string | null; fingerprint: string | null; summary: string | null }): KeptEvent {
  return {
    origin: row.origin === 'pushed' || row.origin === 'trail' ? row.origin : null,
    fingerprint: row.fingerprint,
    summary: row.summary === null ? null : parse<Record<string, unknown>>(row.summary),
  };
}

/** The store's operations over one executor: the pool, or a transaction's connection. */
class PostgresOperations implements StoreOps {
  constructor(protected readonly exec: Exec) {}

  async evidenceSnapshot(needs: EvidenceNeeds): Promise<EvidenceView> {
    const ev = new MemoryEvidence();
    const seenKey = new Set<number>();
    for (const part of chunks(needs.keys, NEEDS_PER_QUERY)) {
      const r = await this.exec.query<ObservationRow>(
        'evidence_keys',
        `SELECT ${OBSERVATION_COLUMNS} FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS n(k, f, t)
         JOIN observations o ON o.access_key_id = n.k AND o.first_ms >= n.f - ${MAX_SPAN} AND o.first_ms <= n.t AND o.last_ms >= n.f
         WHERE ${ATTESTING} ORDER BY o.first_ms, o.id`,
        [part.map((k) => k.accessKeyId), part.map((k) => k.fromMs), part.map((k) => k.toMs)],
      );
      for (const row of r.rows) {
        if (seenKey.has(row.id)) continue;
        seenKey.add(row.id);
        ev.addKeySighting(toSighting(row));
      }
    }
    const seenEndpoint = new Set<number>();
    for (const part of chunks(needs.endpoints, NEEDS_PER_QUERY)) {
      const r = await this.exec.query<ObservationRow>(
        'evidence_endpoints',
        `SELECT ${OBSERVATION_COLUMNS} FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS n(g, s, r, f, t)
         JOIN observations o ON o.gateway_id = n.g AND o.service = n.s AND COALESCE(o.region, '') = COALESCE(n.r, '')
           AND (o.region IS NULL) = (n.r IS NULL) AND o.first_ms >= n.f - ${MAX_SPAN} AND o.first_ms <= n.t AND o.last_ms >= n.f
         WHERE ${ATTESTING} ORDER BY o.first_ms, o.id`,
        [
          part.map((e) => e.gatewayId),
          part.map((e) => e.service),
          part.map((e) => e.region),
          part.map((e) => e.fromMs),
          part.map((e) => e.toMs),
        ],
      );
      for (const row of r.rows) {
        if (seenEndpoint.has(row.id)) continue;
        seenEndpoint.add(row.id);
        ev.addEndpointSighting(toSighting(row));
      }
    }
    for (const part of chunks(needs.liveness, NEEDS_PER_QUERY)) {
      // Liveness by the second, as the SQLite store reads it (memory-evidence.ts joins gaps under a second).
      const r = await this.exec.query<{ g: string; a: number; b: number }>(
        'evidence_liveness',
        `WITH n AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS n(g, f, t))
         SELECT n.g, MIN(h.time_ms) AS a, MAX(h.time_ms) AS b FROM n JOIN heartbeats h ON h.gateway_id = n.g AND h.time_ms BETWEEN n.f AND n.t
           GROUP BY n.g, h.time_ms / 1000
         UNION ALL
         SELECT n.g, MIN(o.first_ms) AS a, MAX(o.last_ms) AS b FROM n JOIN observations o ON o.gateway_id = n.g
           AND o.first_ms >= n.f - ${MAX_SPAN} AND o.first_ms <= n.t AND o.last_ms >= n.f
           GROUP BY n.g, o.first_ms / 1000
         ORDER BY a`,
        [part.map((l) => l.gatewayId), part.map((l) => l.fromMs), part.map((l) => l.toMs)],
      );
      for (const row of r.rows) ev.addLiveness(row.g, row.a, row.b);
    }
    return ev;
  }

  async keySightings(accessKeyId: string, fromMs: number, toMs: number): Promise<Sighting[]> {
    const snap = await this.evidenceSnapshot({ keys: [{ accessKeyId, fromMs, toMs }], endpoints: [], liveness: [] });
    return snap.keySightings(accessKeyId, fromMs, toMs);
  }

  async endpointSightings(gatewayId: string, service: string, region: string | null, fromMs: number, toMs: number): Promise<Sighting[]> {
    const snap = await this.evidenceSnapshot({ keys: [], endpoints: [{ gatewayId, service, region, fromMs, toMs }], liveness: [] });
    return snap.endpointSightings(gatewayId, service, region, fromMs, toMs);
  }

  async heartbeatNear(gatewayId: string, fromMs: number, toMs: number): Promise<boolean> {
    const snap = await this.evidenceSnapshot({ keys: [], endpoints: [], liveness: [{ gatewayId, fromMs, toMs }] });
    return snap.heartbeatNear(gatewayId, fromMs, toMs);
  }

  ingestBatch(gatewayId: string, batch: TelemetryBatch, receivedMs: number): Promise<IngestResult> {
    return this.exec.atomic(async (e) => {
      // The unique key decides: a second detector inserting the same batch waits for the first's commit, then finds it.
      const inserted = await e.query(
        'ingest_batch',
        'INSERT INTO batches (gateway_id, batch_id, sequence, received_ms, records) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gateway_id, batch_id) DO NOTHING',
        [gatewayId, batch.batchId, batch.sequence, receivedMs, batch.records.length],
      );
      if (inserted.rowCount === 0) return { kind: 'duplicate' };
      const beats: number[] = [];
      const cols: unknown[][] = Array.from({ length: 13 }, () => []);
      let span = 0;
      for (const r of batch.records) {
        if (r.type === 'heartbeat') {
          beats.push(Date.parse(r.time));
          continue;
        }
        const row = observationValues(r);
        span = Math.max(span, spanMs(row));
        row.forEach((v, i) => cols[i]!.push(v));
      }
      if (beats.length > 0)
        await e.query('ingest_heartbeats', 'INSERT INTO heartbeats (gateway_id, time_ms) SELECT $1, t FROM unnest($2::bigint[]) AS t', [
          gatewayId,
          beats,
        ]);
      if (cols[0]!.length > 0) {
        await e.query(
          'ingest_observations',
          `INSERT INTO observations (gateway_id, ${OBSERVATION_VALUE_COLUMNS})
           SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
             $10::bigint[], $11::bigint[], $12::int[], $13::text[], $14::text[])`,
          [gatewayId, ...cols],
        );
        if (span > 0)
          await e.query(
            'ingest_span',
            `UPDATE meta SET value = GREATEST(value::bigint, $1::bigint)::text WHERE key = 'max_span_ms' AND value::bigint < $1::bigint`,
            [span],
          );
      }
      return { kind: 'stored', records: batch.records.length };
    });
  }

  async lastHeartbeatMs(gatewayId: string, notAfterMs = Number.MAX_SAFE_INTEGER): Promise<number | null> {
    const r = await this.exec.query<{ t: number | null }>(
      'last_heartbeat',
      'SELECT MAX(time_ms) AS t FROM heartbeats WHERE gateway_id = $1 AND time_ms <= $2',
      [gatewayId, notAfterMs],
    );
    return r.rows[0]?.t ?? null;
  }

  async fileProcessed(path: string, size: number, mtimeMs: number): Promise<boolean> {
    const r = await this.exec.query<{ size: number; mtime_ms: number; done: boolean }>(
      'file_get',
      'SELECT size, mtime_ms, done FROM cloudtrail_files WHERE path = $1',
      [path],
    );
    const row = r.rows[0];
    return row !== undefined && row.done && row.size === size && row.mtime_ms === Math.floor(mtimeMs);
  }

  async fileAttempt(path: string, size: number, mtimeMs: number, nowMs: number): Promise<number> {
    const r = await this.exec.query<{ attempts: number }>(
      'file_attempt',
      `INSERT INTO cloudtrail_files AS f (path, size, mtime_ms, processed_ms, records, invalid, attempts, done) VALUES ($1, $2, $3, $4, 0, 0, 1, FALSE)
       ON CONFLICT (path) DO UPDATE SET attempts = CASE WHEN f.size = excluded.size AND f.mtime_ms = excluded.mtime_ms THEN f.attempts + 1 ELSE 1 END,
         size = excluded.size, mtime_ms = excluded.mtime_ms, processed_ms = excluded.processed_ms, done = FALSE, failure = NULL
       RETURNING attempts`,
      [path, size, Math.floor(mtimeMs), nowMs],
    );
    return r.rows[0]!.attempts;
  }

  async markFileProcessed(
    path: string,
    size: number,
    mtimeMs: number,
    records: number,
    invalid: number,
    nowMs: number,
    failure: string | null = null,
  ): Promise<void> {
    await this.exec.query(
      'file_put',
      `INSERT INTO cloudtrail_files (path, size, mtime_ms, processed_ms, records, invalid, done, failure) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7)
       ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, processed_ms = excluded.processed_ms,
         records = excluded.records, invalid = excluded.invalid, done = TRUE, failure = excluded.failure`,
      [path, size, Math.floor(mtimeMs), nowMs, records, invalid, failure],
    );
  }

  async recordEvent(e: StoredEvent): Promise<boolean> {
    const r = await this.exec.query(
      'event_put',
      `INSERT INTO events (${EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING`,
      eventValues(e),
    );
    return (r.rowCount ?? 0) > 0;
  }

  async keptCopy(eventId: string): Promise<KeptEvent | null> {
    const r = await this.exec.query<{ origin: string | null; fingerprint: string | null; summary: string | null }>(
      'event_kept',
      'SELECT origin, fingerprint, summary FROM events WHERE event_id = $1',
      [eventId],
    );
    const row = r.rows[0];
    return row === undefined ? null : keptFromRow(row);
  }

  async keptCopies(eventIds: readonly string[]): Promise<(KeptEvent | null)[]> {
    if (eventIds.length === 0) return [];
    const r = await this.exec.query<{ event_id: string; origin: string | null; fingerprint: string | null; summary: string | null }>(
      'event_kept_many',
      'SELECT event_id, origin, fingerprint, summary FROM events WHERE event_id = ANY($1::text[])',
      [[...new Set(eventIds)]],
    );
    const byId = new Map(r.rows.map((row) => [row.event_id, row]));
    return eventIds.map((id) => {
      const row = byId.get(id);
      return row === undefined ? null : keptFromRow(row);
    });
  }

  async replaceEvent(e: StoredEvent): Promise<void> {
    await this.exec.query(
      'event_replace',
      `INSERT INTO events (${EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (event_id) DO UPDATE SET ${EVENT_REPLACE_SET}`,
      eventValues(e),
    );
  }

  async vouchForEvent(eventId: string, origin: EventOrigin, fingerprint: string, summary: Record<string, unknown>): Promise<void> {
    await this.exec.query('event_vouch', 'UPDATE events SET origin = $1, fingerprint = $2, summary = $3 WHERE event_id = $4', [
      origin,
      fingerprint,
      json(summary),
      eventId,
    ]);
  }

  async recordEventConflict(c: EventConflict, droppedFingerprint: string): Promise<boolean> {
    const r = await this.exec.query(
      'conflict_put',
      `INSERT INTO event_conflicts (event_id, detected_ms, resolution, kept, dropped, dropped_fingerprint, superseded_decision)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id, dropped_fingerprint) DO NOTHING`,
      [
        c.eventId,
        c.detectedMs,
        c.resolution,
        json(c.kept),
        json(c.dropped),
        droppedFingerprint,
        c.supersededDecision === null ? null : json(c.supersededDecision),
      ],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async listEventConflicts(filter: { sinceMs: number; limit: number }): Promise<EventConflict[]> {
    const r = await this.exec.query<{
      event_id: string;
      detected_ms: number;
      resolution: EventConflict['resolution'];
      kept: string;
      dropped: string;
      superseded_decision: string | null;
    }>(
      'conflicts_since',
      'SELECT event_id, detected_ms, resolution, kept, dropped, superseded_decision FROM event_conflicts WHERE detected_ms >= $1 ORDER BY detected_ms DESC, id DESC LIMIT $2',
      [filter.sinceMs, filter.limit],
    );
    return r.rows.map((row) => ({
      eventId: row.event_id,
      detectedMs: row.detected_ms,
      resolution: row.resolution,
      kept: parse<Record<string, unknown>>(row.kept),
      dropped: parse<Record<string, unknown>>(row.dropped),
      supersededDecision: row.superseded_decision === null ? null : parse<{ disposition: string; rule: string }>(row.superseded_decision),
    }));
  }

  async cloudTrailUses(accessKeyId: string, fromMs: number, toMs: number): Promise<CloudTrailUse[]> {
    const r = await this.exec.query<{ event_id: string; source_ip: string; event_time_ms: number; vpc_endpoint_id: string | null }>(
      'event_uses',
      `SELECT event_id, source_ip, event_time_ms, vpc_endpoint_id FROM events WHERE access_key_id = $1 AND event_time_ms BETWEEN $2 AND $3
       ORDER BY event_time_ms, event_id LIMIT 1000`,
      [accessKeyId, fromMs, toMs],
    );
    return r.rows.map((row) => ({
      eventId: row.event_id,
      eventTime: new Date(row.event_time_ms).toISOString(),
      sourceIPAddress: row.source_ip,
      vpcEndpointId: row.vpc_endpoint_id,
    }));
  }

  async addPending(p: PendingEvent): Promise<void> {
    await this.exec.query(
      'pending_put',
      `INSERT INTO pending (event_id, event_time_ms, due_ms, raw) VALUES ($1, $2, $3, $4)
       ON CONFLICT (event_id) DO UPDATE SET event_time_ms = excluded.event_time_ms, due_ms = excluded.due_ms, raw = excluded.raw`,
      [p.eventId, p.eventTimeMs, p.dueMs, json(p.raw)],
    );
  }

  async duePending(nowMs: number, limit: number): Promise<PendingEvent[]> {
    const r = await this.exec.query<{ event_id: string; event_time_ms: number; due_ms: number; raw: string }>(
      'pending_due',
      // In a transaction the rows are claimed until it ends: another detector's sweep skips them.
      'SELECT event_id, event_time_ms, due_ms, raw FROM pending WHERE due_ms <= $1 ORDER BY due_ms, event_id LIMIT $2 FOR UPDATE SKIP LOCKED',
      [nowMs, limit],
    );
    return r.rows.map((row) => ({
      eventId: row.event_id,
      eventTimeMs: row.event_time_ms,
      dueMs: row.due_ms,
      raw: parse<unknown>(row.raw),
    }));
  }

  async removePending(eventId: string): Promise<void> {
    await this.exec.query('pending_del', 'DELETE FROM pending WHERE event_id = $1', [eventId]);
  }

  async pendingCount(): Promise<number> {
    return (await this.exec.query<{ n: number }>('pending_count', 'SELECT COUNT(*) AS n FROM pending')).rows[0]!.n;
  }

  async saveDecision(d: StoredDecision): Promise<boolean> {
    const r = await this.exec.query(
      'decision_put',
      `INSERT INTO decisions (${DECISION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (kind, subject_id) DO NOTHING`,
      decisionValues(d),
    );
    return (r.rowCount ?? 0) > 0;
  }

  /**
   * Two statements whatever the number of items: the events, then the decisions, each inserted
   * from arrays in the items' order (a column an array), conflicts skipped. A decision was stored
   * when its (kind, subject) came back from the insert and no item before it named the same.
   */
  async recordDecided(items: readonly DecidedEvent[]): Promise<boolean[]> {
    if (items.length === 0) return [];
    const events = items.map((i) => eventValues(i.event));
    await this.exec.query(
      'event_put_many',
      `INSERT INTO events (${EVENT_COLUMNS})
       SELECT e, k, s, t, v, o, f, n, m FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
         $7::text[], $8::bigint[], $9::text[]) WITH ORDINALITY AS u(e, k, s, t, v, o, f, n, m, ord)
       ORDER BY ord ON CONFLICT (event_id) DO NOTHING`,
      columns(events),
    );
    const decisions = items.map((i) => decisionValues(i.decision));
    const r = await this.exec.query<{ kind: string; subject_id: string }>(
      'decision_put_many',
      `INSERT INTO decisions (${DECISION_COLUMNS})
       SELECT k, s, t, d, p, r, a, i, g, x FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
         $7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS u(k, s, t, d, p, r, a, i, g, x, ord)
       ORDER BY ord ON CONFLICT (kind, subject_id) DO NOTHING RETURNING kind, subject_id`,
      columns(decisions),
    );
    const inserted = new Set(r.rows.map((row) => `${row.kind}\n${row.subject_id}`));
    // Taken out when first matched: a later item for the same subject was not the one stored.
    return items.map(({ decision: d }) => inserted.delete(`${d.kind}\n${d.subjectId}`));
  }

  async decisionOf(kind: StoredDecision['kind'], subjectId: string): Promise<string | null> {
    const r = await this.exec.query<{ disposition: string }>(
      'decision_of',
      'SELECT disposition FROM decisions WHERE kind = $1 AND subject_id = $2',
      [kind, subjectId],
    );
    return r.rows[0]?.disposition ?? null;
  }

  async takeDecision(kind: StoredDecision['kind'], subjectId: string): Promise<{ disposition: string; rule: string } | null> {
    const r = await this.exec.query<{ disposition: string; rule: string }>(
      'decision_take',
      'DELETE FROM decisions WHERE kind = $1 AND subject_id = $2 RETURNING disposition, rule',
      [kind, subjectId],
    );
    const row = r.rows[0];
    return row === undefined ? null : { disposition: row.disposition, rule: row.rule };
  }

  async findingsForKey(accessKeyId: string, fromMs: number, toMs: number): Promise<number> {
    const r = await this.exec.query<{ n: number }>(
      'findings_for_key',
      "SELECT COUNT(*) AS n FROM decisions WHERE kind = 'cloudtrail' AND disposition = 'finding' AND access_key_id = $1 AND time_ms BETWEEN $2 AND $3",
      [accessKeyId, fromMs, toMs],
    );
    return r.rows[0]!.n;
  }

  async listDecisions(filter: { sinceMs: number; disposition: string | null; limit: number }): Promise<StoredDecision[]> {
    const r = await this.exec.query<{
      kind: StoredDecision['kind'];
      subject_id: string;
      time_ms: number;
      decided_ms: number;
      disposition: string;
      rule: string;
      access_key_id: string | null;
      source_ip: string | null;
      gateway_id: string | null;
      detail: string;
    }>(
      'decisions_since',
      `SELECT kind, subject_id, time_ms, decided_ms, disposition, rule, access_key_id, source_ip, gateway_id, detail FROM decisions
       WHERE decided_ms >= $1 AND ($2::text IS NULL OR disposition = $2::text) ORDER BY decided_ms DESC, id DESC LIMIT $3`,
      [filter.sinceMs, filter.disposition, filter.limit],
    );
    return r.rows.map((row) => ({
      kind: row.kind,
      subjectId: row.subject_id,
      timeMs: row.time_ms,
      decidedMs: row.decided_ms,
      disposition: row.disposition,
      rule: row.rule,
      accessKeyId: row.access_key_id,
      sourceIp: row.source_ip,
      gatewayId: row.gateway_id,
      detail: parse<unknown>(row.detail),
    }));
  }

  async getFinding(id: string): Promise<unknown> {
    const r = await this.exec.query<{ finding: string }>('finding_get', 'SELECT finding FROM findings WHERE id = $1', [id]);
    const row = r.rows[0];
    return row === undefined ? null : parse<unknown>(row.finding);
  }

  async putFinding(id: string, finding: unknown, nowMs: number): Promise<void> {
    await this.exec.query(
      'finding_put',
      'INSERT INTO findings (id, finding, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET finding = excluded.finding, updated_ms = excluded.updated_ms',
      [id, json(finding), nowMs],
    );
  }

  async guardDutyArchived(findingId: string): Promise<boolean> {
    const r = await this.exec.query('gd_archived_get', 'SELECT 1 FROM guardduty_archived WHERE finding_id = $1', [findingId]);
    return r.rows.length > 0;
  }

  async markGuardDutyArchived(findingIds: readonly string[], nowMs: number): Promise<void> {
    await this.exec.query(
      'gd_archived_put',
      'INSERT INTO guardduty_archived (finding_id, archived_ms) SELECT id, $2 FROM unnest($1::text[]) AS id ON CONFLICT (finding_id) DO NOTHING',
      [[...findingIds], nowMs],
    );
  }

  /**
   * The outbox, one row per (sink, item): enqueueing again bumps the version and makes the row due
   * at once, so an item updated while undelivered is sent once, in its latest state (as in SQLite).
   */
  async enqueueDelivery(sink: string, itemId: string, nowMs: number): Promise<void> {
    // The NOTIFY is sent when the transaction commits: the leader's delivery (postgres-leader.ts) wakes then.
    await this.exec.query(
      'outbox_enqueue',
      `WITH q AS (INSERT INTO outbox AS o (sink, item_id, version, enqueued_ms, next_ms) VALUES ($1, $2, 1, $3, $3)
       ON CONFLICT (sink, item_id) DO UPDATE SET version = o.version + 1, next_ms = excluded.next_ms,
         enqueued_ms = CASE WHEN o.failed THEN excluded.enqueued_ms ELSE o.enqueued_ms END,
         attempts = CASE WHEN o.failed THEN 0 ELSE o.attempts END, failed = FALSE, last_error = NULL
       RETURNING sink)
       SELECT pg_notify('${OUTBOX_CHANNEL}', current_schema() || ' ' || q.sink) FROM q`,
      [sink, itemId, nowMs],
    );
  }

  async dueDeliveries(sink: string, nowMs: number, limit: number): Promise<QueuedDelivery[]> {
    const r = await this.exec.query<{ item_id: string; version: number; attempts: number; enqueued_ms: number }>(
      'outbox_due',
      'SELECT item_id, version, attempts, enqueued_ms FROM outbox WHERE sink = $1 AND NOT failed AND next_ms <= $2 ORDER BY next_ms, enqueued_ms, item_id LIMIT $3',
      [sink, nowMs, limit],
    );
    return r.rows.map((row) => ({ itemId: row.item_id, version: row.version, attempts: row.attempts, enqueuedMs: row.enqueued_ms }));
  }

  async ackDelivery(sink: string, itemId: string, version: number): Promise<void> {
    await this.exec.atomic(async (e) => {
      const r = await e.query('outbox_ack', 'DELETE FROM outbox WHERE sink = $1 AND item_id = $2 AND version = $3', [
        sink,
        itemId,
        version,
      ]);
      // A newer version queued meanwhile stays, with a clean slate: the sink just took this item.
      if (r.rowCount === 0)
        await e.query('outbox_reset', 'UPDATE outbox SET attempts = 0 WHERE sink = $1 AND item_id = $2', [sink, itemId]);
    });
  }

  async retryDelivery(sink: string, itemId: string, version: number, attempts: number, nextMs: number, error: string): Promise<void> {
    await this.exec.query(
      'outbox_retry',
      'UPDATE outbox SET attempts = $1, next_ms = $2, last_error = $3 WHERE sink = $4 AND item_id = $5 AND version = $6',
      [attempts, nextMs, error, sink, itemId, version],
    );
  }

  async failDelivery(sink: string, itemId: string, version: number, attempts: number, error: string): Promise<void> {
    await this.exec.query(
      'outbox_fail',
      'UPDATE outbox SET failed = TRUE, attempts = $1, last_error = $2 WHERE sink = $3 AND item_id = $4 AND version = $5',
      [attempts, error, sink, itemId, version],
    );
  }

  async nextDeliveryMs(sink: string): Promise<number | null> {
    const r = await this.exec.query<{ t: number | null }>(
      'outbox_next',
      'SELECT MIN(next_ms) AS t FROM outbox WHERE sink = $1 AND NOT failed',
      [sink],
    );
    return r.rows[0]?.t ?? null;
  }

  async deliveryBacklog(sink: string): Promise<DeliveryBacklog> {
    const r = await this.exec.query<{ pending: number; failed: number; oldest: number | null }>(
      'outbox_backlog',
      `SELECT COUNT(*) FILTER (WHERE NOT failed)::int AS pending, COUNT(*) FILTER (WHERE failed)::int AS failed,
         MIN(enqueued_ms) FILTER (WHERE NOT failed) AS oldest FROM outbox WHERE sink = $1`,
      [sink],
    );
    const row = r.rows[0]!;
    return { pending: row.pending, failed: row.failed, oldestPendingMs: row.oldest };
  }

  async addFindingOccurrence(o: FindingOccurrence, nowMs: number): Promise<void> {
    await this.exec.query(
      'occurrence_put',
      `INSERT INTO finding_occurrences (event_id, finding_id, event_time_ms, event, checked_ms) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (event_id) DO NOTHING`,
      [o.eventId, o.findingId, o.eventTimeMs, json(o.event), nowMs],
    );
  }

  async occurrencesToRecheck(sinceMs: number, limit: number): Promise<FindingOccurrence[]> {
    const r = await this.exec.query<{ event_id: string; finding_id: string; event_time_ms: number; event: string }>(
      'occurrences_due',
      `SELECT event_id, finding_id, event_time_ms, event FROM finding_occurrences WHERE NOT resolved AND event_time_ms >= $1
       ORDER BY checked_ms, event_id LIMIT $2`,
      [sinceMs, limit],
    );
    return r.rows.map((row) => ({
      eventId: row.event_id,
      findingId: row.finding_id,
      eventTimeMs: row.event_time_ms,
      event: parse<unknown>(row.event),
    }));
  }

  async markOccurrenceChecked(eventId: string, nowMs: number, resolved: boolean): Promise<void> {
    await this.exec.query('occurrence_checked', 'UPDATE finding_occurrences SET checked_ms = $1, resolved = $2 WHERE event_id = $3', [
      nowMs,
      resolved,
      eventId,
    ]);
  }

  async occurrenceCounts(findingId: string): Promise<{ stored: number; unresolved: number }> {
    const r = await this.exec.query<{ stored: number; unresolved: number }>(
      'occurrence_counts',
      'SELECT COUNT(*)::int AS stored, (COUNT(*) FILTER (WHERE NOT resolved))::int AS unresolved FROM finding_occurrences WHERE finding_id = $1',
      [findingId],
    );
    return r.rows[0]!;
  }

  prune(olderThanMs: number): Promise<{ observations: number; heartbeats: number; events: number }> {
    return this.exec.atomic(async (e) => {
      // Occurrences older than the evidence can no longer be re-verified: their findings are final.
      await e.query('prune_occurrences', 'DELETE FROM finding_occurrences WHERE event_time_ms < $1', [olderThanMs]);
      const observations = await e.query('prune_observations', 'DELETE FROM observations WHERE last_ms < $1', [olderThanMs]);
      const heartbeats = await e.query('prune_heartbeats', 'DELETE FROM heartbeats WHERE time_ms < $1', [olderThanMs]);
      // Kept for the retention after it arrived too: a pushed copy dated long ago must outlive the trail's delivery of the real one.
      const events = await e.query('prune_events', 'DELETE FROM events WHERE event_time_ms < $1 AND COALESCE(seen_ms, 0) < $1', [
        olderThanMs,
      ]);
      await e.query('prune_batches', 'DELETE FROM batches WHERE received_ms < $1', [olderThanMs]);
      return { observations: observations.rowCount ?? 0, heartbeats: heartbeats.rowCount ?? 0, events: events.rowCount ?? 0 };
    });
  }

  async sizeBytes(): Promise<number> {
    const r = await this.exec.query<{ n: number }>(
      'size_bytes',
      `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
       WHERE s.nspname = current_schema() AND c.relkind = 'r'`,
    );
    return r.rows[0]!.n;
  }
}

/**
 * A transaction's handle: the operations on its connection, and savepoints (SAVEPOINT, then RELEASE
 * when the part resolves, or ROLLBACK TO and RELEASE when it rejects: the transaction goes on).
 */
class PostgresTransaction extends PostgresOperations implements StoreTx {
  /** Savepoints open, innermost last. */
  private depth = 0;
  /** What runs once the transaction has committed. */
  readonly commitHooks: (() => void)[] = [];
  /**
   * A part that failed because it met another detector's transaction (a deadlock, a serialization
   * failure): the transaction rolls back whole when its callback ends, even if the callback went on,
   * so that its caller decides again (in smaller transactions) instead of counting the part failed.
   */
  doomedBy: Error | null = null;

  constructor(
    exec: Exec,
    private readonly command: (text: string) => Promise<void>,
    private readonly open: () => boolean,
  ) {
    super(exec);
  }

  /**
   * A finding is read to be merged and written back: the read takes a lock on the finding, held
   * until the transaction ends, so another detector merging the same finding waits for this
   * transaction and reads what it wrote (no lost update of the occurrences).
   */
  async lockFindings(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    // One statement, in sorted order: a transaction never holds one finding while waiting for a lower one.
    await this.exec.query(
      'finding_lock_many',
      `SELECT pg_advisory_xact_lock(${FINDING_LOCK_CLASS}, hashtext(current_schema() || ' ' || id))
       FROM (SELECT DISTINCT id FROM unnest($1::text[]) AS id ORDER BY id) AS sorted`,
      [[...ids].sort()],
    );
  }

  override async getFinding(id: string): Promise<unknown> {
    await this.exec.query('finding_lock', `SELECT pg_advisory_xact_lock(${FINDING_LOCK_CLASS}, hashtext(current_schema() || ' ' || $1))`, [
      id,
    ]);
    return super.getFinding(id);
  }

  async savepoint<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const depth = ++this.depth;
    const name = `ew_part_${depth}`;
    const hooks = this.commitHooks.length;
    const ended = () => {
      // Another savepoint begun beside this one and still open would be ended in its place.
      if (this.depth !== depth) throw new Error('savepoints of one transaction must run one at a time');
      this.depth--;
    };
    try {
      await this.command(`SAVEPOINT ${name}`);
    } catch (err) {
      this.depth--;
      throw err;
    }
    let result: T;
    try {
      result = await fn(this);
    } catch (err) {
      ended();
      this.commitHooks.length = hooks;
      await this.command(`ROLLBACK TO SAVEPOINT ${name}`);
      await this.command(`RELEASE SAVEPOINT ${name}`);
      if (metAnotherTransaction(err)) this.doomedBy ??= err as Error;
      throw err;
    }
    ended();
    await this.command(`RELEASE SAVEPOINT ${name}`);
    return result;
  }

  afterCommit(fn: () => void): void {
    if (!this.open()) throw new Error('store transaction already ended: afterCommit must run in a transaction of its own');
    this.commitHooks.push(fn);
  }
}

/** PostgreSQL as a DetectorStore: open it with `PostgresStore.open` (connects and migrates first). */
export class PostgresStore extends PostgresOperations implements DetectorStore {
  readonly shared = true;
  private readonly lock = new AsyncLock();
  private closed = false;

  private constructor(
    readonly pool: pg.Pool,
    readonly target: PostgresTarget,
    readonly migration: MigrationResult,
    private readonly o: PostgresStoreOptions,
  ) {
    super(poolExec(pool, o.onQuery));
  }

  /** Connects, applies the migrations this detector has (under an advisory lock), and answers the store. */
  static async open(config: PostgresStoreConfig, o: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const target = await postgresTarget(config, o.env ?? {});
    const pool = new pg.Pool(target.pool);
    pool.on('error', (err) => o.onIdleError?.(err));
    try {
      const client = await connect(pool, target);
      let migration: MigrationResult;
      try {
        migration = await migrate(client, o.now);
      } catch (err) {
        throw new Error(`store.postgres ${target.describe}: ${(err as Error).message}`, { cause: err });
      } finally {
        client.release();
      }
      return new PostgresStore(pool, target, migration, o);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  /** Connections open, idle, and requests waiting for one. */
  poolStats(): { total: number; idle: number; waiting: number } {
    return { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  /** The leader lock of this schema, on a connection of its own (leader-election.ts). */
  leaderLock(o: PostgresLeaderLockOptions): PostgresLeaderLock {
    return new PostgresLeaderLock(this.target, o);
  }

  async withTransaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const { result, hooks } = await this.lock.run(async () => {
      const client = await connect(this.pool, this.target);
      let ended = false;
      const guard = <R>(what: string, run: () => Promise<R>): Promise<R> =>
        ended ? Promise.reject(new Error(`store transaction already ended: ${what} must run in a transaction of its own`)) : run();
      const exec: Exec = {
        query: (kind, text, values) => guard(kind, () => timedQuery(client, this.o.onQuery, kind, text, values)),
        atomic: (f) => f(exec),
      };
      const command = (text: string) => guard('savepoint', () => client.query(text).then(() => undefined));
      const tx = new PostgresTransaction(exec, command, () => !ended);
      return {
        result: await inTransaction(
          client,
          () => tx,
          async (t) => {
            const result = await fn(t);
            if (t.doomedBy !== null)
              throw new Error(`store transaction rolled back: a part of it met another detector's transaction (${t.doomedBy.message})`, {
                cause: t.doomedBy,
              });
            return result;
          },
          () => (ended = true),
        ),
        hooks: tx.commitHooks,
      };
    });
    runCommitHooks(hooks);
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lock.run(() => this.pool.end());
  }
}

function poolExec(pool: pg.Pool, onQuery: PostgresStoreOptions['onQuery']): Exec {
  return {
    query: (kind, text, values) => timedQuery(pool, onQuery, kind, text, values),
    atomic: async (fn) => {
      const client = await pool.connect();
      const exec: Exec = { query: (kind, text, values) => timedQuery(client, onQuery, kind, text, values), atomic: (f) => f(exec) };
      return inTransaction(
        client,
        () => exec,
        fn,
        () => undefined,
      );
    },
  };
}

/**
 * BEGIN, `fn`, then COMMIT when it resolves or ROLLBACK when it rejects; the connection goes back to
 * the pool, or is dropped when it failed itself (not a statement: the server or the network).
 */
async function inTransaction<H, T>(client: pg.PoolClient, handle: () => H, fn: (h: H) => Promise<T>, end: () => void): Promise<T> {
  try {
    await client.query('BEGIN');
  } catch (err) {
    client.release(connectionFailure(err));
    throw err;
  }
  let result: T;
  try {
    result = await fn(handle());
  } catch (err) {
    end();
    let failure: Error | undefined;
    await client.query('ROLLBACK').catch((e: unknown) => (failure = e instanceof Error ? e : new Error(String(e))));
    client.release(failure);
    throw err;
  }
  end();
  try {
    await client.query('COMMIT');
  } catch (err) {
    client.release(connectionFailure(err));
    throw err;
  }
  client.release();
  return result;
}

async function connect(pool: pg.Pool, target: PostgresTarget): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw new Error(`store.postgres ${target.describe}: cannot connect (sslmode ${target.sslmode}): ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** A deadlock or a serialization failure: two transactions met, and trying again in another shape succeeds. */
function metAnotherTransaction(err: unknown): boolean {
  return err instanceof pg.DatabaseError && (err.code === '40P01' || err.code === '40001');
}

/** An error that leaves the connection unusable (not a statement's own failure): the pool drops the connection. */
function connectionFailure(err: unknown): Error | undefined {
  if (err instanceof pg.DatabaseError) return undefined;
  return err instanceof Error ? err : new Error(String(err));
}

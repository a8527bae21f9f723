/**
 * The embedded store: one SQLite file in WAL mode (better-sqlite3, synchronous
 * and fast) behind the asynchronous DetectorStore (SerialStore queues the
 * operations and runs each transaction between an explicit BEGIN IMMEDIATE and
 * its COMMIT or ROLLBACK). Writes commit before the promise resolves;
 * `synchronous=FULL` makes a commit survive power loss, which is what "stored
 * before 2xx" promises.
 *
 *   batches ──┬─ observations (key, endpoint and gateway indexes) ─┐
 *             └─ heartbeats ───────────────────────────────────────┴─▶ EvidenceView for correlation
 *   cloudtrail_files · events (one kept copy per event ID) · event_conflicts · pending · decisions · findings · guardduty_archived
 *   finding_occurrences (re-verification) · outbox (deliveries that survive a restart)
 */
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import type { TelemetryBatch } from '../../protocol/telemetry.js';
import { MemoryEvidence } from '../correlate/memory-evidence.js';
import { ATTESTING_OUTCOMES, type EvidenceNeeds, type EvidenceView, type Sighting } from '../correlate/types.js';
import type { CloudTrailUse } from '../guardduty/decide.js';
import type { EventOrigin } from '../correlate/event-identity.js';
import { SerialStore } from './serial-store.js';
import { recordDecidedInTurn } from './store.js';
import type {
  DecidedEvent,
  DeliveryBacklog,
  TransactionalEngine,
  EventConflict,
  FindingOccurrence,
  IngestResult,
  KeptEvent,
  PendingEvent,
  QueuedDelivery,
  StoredDecision,
  StoredEvent,
} from './store.js';
import { DECISION_COLUMNS, decisionValues } from './decision-row.js';
import { EVENT_COLUMNS, EVENT_REPLACE_SET, eventValues } from './event-row.js';
import { OBSERVATION_VALUE_COLUMNS, observationValues, spanMs, toSighting, type ObservationRow } from './observation-row.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (gateway_id TEXT NOT NULL, batch_id TEXT NOT NULL, sequence INTEGER NOT NULL, received_ms INTEGER NOT NULL, records INTEGER NOT NULL,
  PRIMARY KEY (gateway_id, batch_id));
CREATE TABLE IF NOT EXISTS observations (
  id INTEGER PRIMARY KEY, gateway_id TEXT NOT NULL, access_key_id TEXT, service TEXT, region TEXT, host TEXT NOT NULL,
  client_ip TEXT NOT NULL, network TEXT, mode TEXT NOT NULL, action TEXT, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, count INTEGER NOT NULL,
  attests INTEGER NOT NULL, capture TEXT NOT NULL DEFAULT 'explicit', outcome TEXT);
CREATE INDEX IF NOT EXISTS observations_by_key ON observations (access_key_id, first_ms) WHERE access_key_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS observations_by_endpoint ON observations (gateway_id, service, region, first_ms);
CREATE INDEX IF NOT EXISTS observations_gateway ON observations (gateway_id, last_ms);
CREATE TABLE IF NOT EXISTS heartbeats (gateway_id TEXT NOT NULL, time_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS heartbeats_gateway ON heartbeats (gateway_id, time_ms);
CREATE TABLE IF NOT EXISTS cloudtrail_files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ms INTEGER NOT NULL, processed_ms INTEGER NOT NULL, records INTEGER NOT NULL, invalid INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 1, failure TEXT);
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, access_key_id TEXT, source_ip TEXT NOT NULL, event_time_ms INTEGER NOT NULL, vpc_endpoint_id TEXT,
  origin TEXT, fingerprint TEXT, seen_ms INTEGER, summary TEXT);
CREATE INDEX IF NOT EXISTS events_key ON events (access_key_id, event_time_ms);
CREATE TABLE IF NOT EXISTS event_conflicts (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, detected_ms INTEGER NOT NULL, resolution TEXT NOT NULL,
  kept TEXT NOT NULL, dropped TEXT NOT NULL, dropped_fingerprint TEXT NOT NULL, superseded_decision TEXT, UNIQUE (event_id, dropped_fingerprint));
CREATE INDEX IF NOT EXISTS event_conflicts_time ON event_conflicts (detected_ms);
CREATE TABLE IF NOT EXISTS pending (event_id TEXT PRIMARY KEY, event_time_ms INTEGER NOT NULL, due_ms INTEGER NOT NULL, raw TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pending_due ON pending (due_ms);
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject_id TEXT NOT NULL, time_ms INTEGER NOT NULL, decided_ms INTEGER NOT NULL,
  disposition TEXT NOT NULL, rule TEXT NOT NULL, access_key_id TEXT, source_ip TEXT, gateway_id TEXT, detail TEXT NOT NULL,
  UNIQUE (kind, subject_id));
CREATE INDEX IF NOT EXISTS decisions_time ON decisions (decided_ms);
CREATE INDEX IF NOT EXISTS decisions_key ON decisions (access_key_id, time_ms);
CREATE TABLE IF NOT EXISTS findings (id TEXT PRIMARY KEY, finding TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS guardduty_archived (finding_id TEXT PRIMARY KEY, archived_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS finding_occurrences (event_id TEXT PRIMARY KEY, finding_id TEXT NOT NULL, event_time_ms INTEGER NOT NULL,
  event TEXT NOT NULL, checked_ms INTEGER NOT NULL, resolved INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS finding_occurrences_recheck ON finding_occurrences (resolved, checked_ms);
CREATE INDEX IF NOT EXISTS finding_occurrences_finding ON finding_occurrences (finding_id);
CREATE TABLE IF NOT EXISTS outbox (sink TEXT NOT NULL, item_id TEXT NOT NULL, version INTEGER NOT NULL, enqueued_ms INTEGER NOT NULL,
  next_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, last_error TEXT,
  PRIMARY KEY (sink, item_id));
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sink, failed, next_ms);
`;

const SCHEMA_VERSION = '6';
/** The schema version this detector writes (and upgrades older files to). */
export const STORE_SCHEMA_VERSION = SCHEMA_VERSION;

/**
 * Upgrades of an existing file, by the version it has: each step runs in one
 * transaction with the version bump, so a file is at one version or the next.
 */
const MIGRATIONS: Readonly<Record<string, string>> = {
  // 1 → 2: CloudTrail files remember attempts (a file that keeps stopping the daemon is quarantined) and why one failed.
  '1': `ALTER TABLE cloudtrail_files ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE cloudtrail_files ADD COLUMN done INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE cloudtrail_files ADD COLUMN failure TEXT;`,
  // 2 → 3: batch ids are deduplicated per gateway (one gateway's id can no longer hide another's batch).
  '2': `CREATE TABLE batches_by_gateway (gateway_id TEXT NOT NULL, batch_id TEXT NOT NULL, sequence INTEGER NOT NULL, received_ms INTEGER NOT NULL,
          records INTEGER NOT NULL, PRIMARY KEY (gateway_id, batch_id));
        INSERT INTO batches_by_gateway (gateway_id, batch_id, sequence, received_ms, records)
          SELECT gateway_id, batch_id, sequence, received_ms, records FROM batches;
        DROP TABLE batches;
        ALTER TABLE batches_by_gateway RENAME TO batches;`,
  // 3 → 4: observations remember how the gateway captured them (explicit proxy or transparent redirect).
  '3': `ALTER TABLE observations ADD COLUMN capture TEXT NOT NULL DEFAULT 'explicit';`,
  // 4 → 5: each event remembers where its kept copy came from and what it said, so a copy from the
  // trail can supersede a pushed one (rows from before stay without: the next copy is adopted).
  '4': `ALTER TABLE events ADD COLUMN origin TEXT;
        ALTER TABLE events ADD COLUMN fingerprint TEXT;
        ALTER TABLE events ADD COLUMN seen_ms INTEGER;
        ALTER TABLE events ADD COLUMN summary TEXT;`,
  // 5 → 6: observations keep their outcome and whether one attests is decided on read (an old row
  // gets the current answer); rows from before keep only the answer given then (attests).
  '5': `ALTER TABLE observations ADD COLUMN outcome TEXT;
        DROP INDEX IF EXISTS observations_key;
        DROP INDEX IF EXISTS observations_endpoint;`,
};

/**
 * Rows that attest, by the current outcomes (`attests` in correlate/types.ts, in SQL); a row from before
 * outcomes were kept has only the answer of its time.
 */
const ATTESTING = `(outcome IN (${[...ATTESTING_OUTCOMES].map((o) => `'${o}'`).join(', ')}) OR (outcome IS NULL AND attests = 1))`;

/** Keys per evidence query (padded to a power of two, so a handful of statements serve every batch). */
const KEYS_PER_QUERY = 256;
/** Keys whose ranges start further apart than this go to separate queries (a batch spanning hours). */
const KEY_QUERY_SPREAD_MS = 3_600_000;

/** The SQLite file as a DetectorStore. */
export class SqliteStore extends SerialStore<SqliteEngine> {
  constructor(readonly path: string) {
    super(new SqliteEngine(path));
  }
}

/** The synchronous operations over one SQLite file (SqliteStore serialises them). */
export class SqliteEngine implements TransactionalEngine {
  private readonly db: Database.Database;
  /** Longest observation span stored: lets span queries use the first_ms index (first_ms ≥ from − maxSpan). */
  private maxSpanMs: number;
  private readonly stmt;
  private readonly keyQueries = new Map<number, Database.Statement>();

  constructor(readonly path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    // An existing file is upgraded first: the schema below may index columns its version lacks.
    this.migrate();
    this.db.exec(SCHEMA);
    this.maxSpanMs = (this.db.prepare('SELECT COALESCE(MAX(last_ms - first_ms), 0) AS m FROM observations').get() as { m: number }).m;
    const db = this.db;
    this.stmt = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT part'),
      release: db.prepare('RELEASE part'),
      rollbackTo: db.prepare('ROLLBACK TO part'),
      insertBatch: db.prepare(
        'INSERT INTO batches (gateway_id, batch_id, sequence, received_ms, records) VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway_id, batch_id) DO NOTHING',
      ),
      insertObservation: db.prepare(
        `INSERT INTO observations (gateway_id, ${OBSERVATION_VALUE_COLUMNS}, attests) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertHeartbeat: db.prepare('INSERT INTO heartbeats (gateway_id, time_ms) VALUES (?, ?)'),
      endpointSightings: db.prepare(
        `SELECT * FROM observations WHERE gateway_id = ? AND service = ? AND region IS ? AND first_ms >= ? AND first_ms <= ? AND last_ms >= ? AND ${ATTESTING} ORDER BY first_ms`,
      ),
      // Liveness by the second: spans starting in one second leave gaps under a second, which the
      // in-memory index joins too (memory-evidence.ts), so both answer alike.
      heartbeatSpans: db.prepare(
        'SELECT MIN(time_ms) AS a, MAX(time_ms) AS b FROM heartbeats WHERE gateway_id = ? AND time_ms BETWEEN ? AND ? GROUP BY time_ms / 1000 ORDER BY a',
      ),
      observationSpans: db.prepare(
        'SELECT MIN(first_ms) AS a, MAX(last_ms) AS b FROM observations WHERE gateway_id = ? AND last_ms >= ? AND first_ms <= ? GROUP BY first_ms / 1000 ORDER BY a',
      ),
      lastHeartbeat: db.prepare('SELECT MAX(time_ms) AS t FROM heartbeats WHERE gateway_id = ? AND time_ms <= ?'),
      fileGet: db.prepare('SELECT size, mtime_ms, done FROM cloudtrail_files WHERE path = ?'),
      filePut: db.prepare(
        'INSERT INTO cloudtrail_files (path, size, mtime_ms, processed_ms, records, invalid, done, failure) VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, processed_ms = excluded.processed_ms, records = excluded.records, invalid = excluded.invalid, done = 1, failure = excluded.failure',
      ),
      fileAttempt: db.prepare(
        'INSERT INTO cloudtrail_files (path, size, mtime_ms, processed_ms, records, invalid, attempts, done) VALUES (?, ?, ?, ?, 0, 0, 1, 0) ON CONFLICT (path) DO UPDATE SET attempts = CASE WHEN size = excluded.size AND mtime_ms = excluded.mtime_ms THEN attempts + 1 ELSE 1 END, size = excluded.size, mtime_ms = excluded.mtime_ms, processed_ms = excluded.processed_ms, done = 0, failure = NULL RETURNING attempts',
      ),
      eventPut: db.prepare(`INSERT INTO events (${EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`),
      eventReplace: db.prepare(
        `INSERT INTO events (${EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET ${EVENT_REPLACE_SET}`,
      ),
      eventKept: db.prepare('SELECT origin, fingerprint, summary FROM events WHERE event_id = ?'),
      eventVouch: db.prepare('UPDATE events SET origin = ?, fingerprint = ?, summary = ? WHERE event_id = ?'),
      conflictPut: db.prepare(
        'INSERT INTO event_conflicts (event_id, detected_ms, resolution, kept, dropped, dropped_fingerprint, superseded_decision) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, dropped_fingerprint) DO NOTHING',
      ),
      conflictsSince: db.prepare('SELECT * FROM event_conflicts WHERE detected_ms >= ? ORDER BY detected_ms DESC, id DESC LIMIT ?'),
      decisionTake: db.prepare('DELETE FROM decisions WHERE kind = ? AND subject_id = ? RETURNING disposition, rule'),
      eventUses: db.prepare(
        'SELECT event_id, source_ip, event_time_ms, vpc_endpoint_id FROM events WHERE access_key_id = ? AND event_time_ms BETWEEN ? AND ? ORDER BY event_time_ms LIMIT 1000',
      ),
      pendingPut: db.prepare(
        'INSERT INTO pending (event_id, event_time_ms, due_ms, raw) VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET event_time_ms = excluded.event_time_ms, due_ms = excluded.due_ms, raw = excluded.raw',
      ),
      pendingDue: db.prepare('SELECT event_id, event_time_ms, due_ms, raw FROM pending WHERE due_ms <= ? ORDER BY due_ms LIMIT ?'),
      pendingDel: db.prepare('DELETE FROM pending WHERE event_id = ?'),
      pendingCount: db.prepare('SELECT COUNT(*) AS n FROM pending'),
      decisionPut: db.prepare(
        `INSERT INTO decisions (${DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, subject_id) DO NOTHING`,
      ),
      decisionOf: db.prepare('SELECT disposition FROM decisions WHERE kind = ? AND subject_id = ?'),
      findingsForKey: db.prepare(
        "SELECT COUNT(*) AS n FROM decisions WHERE kind = 'cloudtrail' AND disposition = 'finding' AND access_key_id = ? AND time_ms BETWEEN ? AND ?",
      ),
      decisionsSince: db.prepare(
        'SELECT * FROM decisions WHERE decided_ms >= ? AND (? IS NULL OR disposition = ?) ORDER BY decided_ms DESC, id DESC LIMIT ?',
      ),
      findingGet: db.prepare('SELECT finding FROM findings WHERE id = ?'),
      findingPut: db.prepare(
        'INSERT INTO findings (id, finding, updated_ms) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET finding = excluded.finding, updated_ms = excluded.updated_ms',
      ),
      gdArchivedGet: db.prepare('SELECT 1 FROM guardduty_archived WHERE finding_id = ?'),
      gdArchivedPut: db.prepare(
        'INSERT INTO guardduty_archived (finding_id, archived_ms) VALUES (?, ?) ON CONFLICT (finding_id) DO NOTHING',
      ),
      ...outboxStatements(db),
      ...occurrenceStatements(db),
    };
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const version = (): string | undefined =>
      (this.db.prepare('SELECT value FROM meta WHERE key = ?').get('schema_version') as { value: string } | undefined)?.value;
    const stored = version();
    if (stored === undefined) {
      this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('schema_version', SCHEMA_VERSION);
      return;
    }
    for (let v = stored; v !== SCHEMA_VERSION; v = version() ?? '') {
      const step = MIGRATIONS[v];
      if (step === undefined)
        throw new Error(`${this.path}: store schema version ${v} is not supported by this detector (expects ${SCHEMA_VERSION})`);
      this.db.transaction(() => {
        this.db.exec(step);
        this.db.prepare('UPDATE meta SET value = ? WHERE key = ?').run(String(Number(v) + 1), 'schema_version');
      })();
    }
  }

  ingestBatch(gatewayId: string, batch: TelemetryBatch, receivedMs: number): IngestResult {
    const s = this.stmt;
    const tx = this.db.transaction((): IngestResult => {
      const inserted = s.insertBatch.run(gatewayId, batch.batchId, batch.sequence, receivedMs, batch.records.length).changes;
      if (inserted === 0) return { kind: 'duplicate' };
      for (const r of batch.records) {
        if (r.type === 'heartbeat') {
          s.insertHeartbeat.run(gatewayId, Date.parse(r.time));
          continue;
        }
        const row = observationValues(r);
        this.maxSpanMs = Math.max(this.maxSpanMs, spanMs(row));
        // attests: kept for rows read by an older detector; this one decides on read from the outcome.
        s.insertObservation.run(gatewayId, ...row, ATTESTING_OUTCOMES.has(r.outcome) ? 1 : 0);
      }
      return { kind: 'stored', records: batch.records.length };
    });
    return tx.immediate();
  }

  evidenceSnapshot(needs: EvidenceNeeds): EvidenceView {
    const ev = new MemoryEvidence();
    const span = this.maxSpanMs;
    // Keys: a few IN queries per batch, keys grouped by when they are needed.
    const keys = [...needs.keys].sort((a, b) => a.fromMs - b.fromMs);
    for (let i = 0; i < keys.length;) {
      const first = keys[i]!;
      let from = first.fromMs;
      let to = first.toMs;
      let j = i + 1;
      while (j < keys.length && j - i < KEYS_PER_QUERY && keys[j]!.fromMs - first.fromMs <= KEY_QUERY_SPREAD_MS) j++;
      const ids = keys.slice(i, j).map((k) => {
        if (k.fromMs < from) from = k.fromMs;
        if (k.toMs > to) to = k.toMs;
        return k.accessKeyId;
      });
      const size = 2 ** Math.ceil(Math.log2(ids.length));
      while (ids.length < size) ids.push(ids[0]!);
      for (const r of this.keyQuery(size).all(...ids, from - span, to, from) as ObservationRow[]) ev.addKeySighting(toSighting(r));
      i = j;
    }
    for (const e of needs.endpoints) {
      const rows = this.stmt.endpointSightings.all(e.gatewayId, e.service, e.region, e.fromMs - span, e.toMs, e.fromMs) as ObservationRow[];
      for (const r of rows) ev.addEndpointSighting(toSighting(r));
    }
    for (const l of needs.liveness) {
      for (const q of [this.stmt.heartbeatSpans, this.stmt.observationSpans]) {
        for (const r of q.all(l.gatewayId, l.fromMs, l.toMs) as { a: number; b: number }[]) ev.addLiveness(l.gatewayId, r.a, r.b);
      }
    }
    return ev;
  }

  /** Attesting sightings of `size` keys (a list padded by repeating a key) in a range. */
  private keyQuery(size: number): Database.Statement {
    let q = this.keyQueries.get(size);
    if (q === undefined) {
      q = this.db.prepare(
        `SELECT * FROM observations WHERE access_key_id IN (${Array(size).fill('?').join(', ')}) AND first_ms >= ? AND first_ms <= ? AND last_ms >= ? AND ${ATTESTING} ORDER BY first_ms`,
      );
      this.keyQueries.set(size, q);
    }
    return q;
  }

  keySightings(accessKeyId: string, fromMs: number, toMs: number): Sighting[] {
    return this.evidenceSnapshot({ keys: [{ accessKeyId, fromMs, toMs }], endpoints: [], liveness: [] }).keySightings(
      accessKeyId,
      fromMs,
      toMs,
    );
  }

  endpointSightings(gatewayId: string, service: string, region: string | null, fromMs: number, toMs: number): Sighting[] {
    return this.evidenceSnapshot({ keys: [], endpoints: [{ gatewayId, service, region, fromMs, toMs }], liveness: [] }).endpointSightings(
      gatewayId,
      service,
      region,
      fromMs,
      toMs,
    );
  }

  heartbeatNear(gatewayId: string, fromMs: number, toMs: number): boolean {
    return this.evidenceSnapshot({ keys: [], endpoints: [], liveness: [{ gatewayId, fromMs, toMs }] }).heartbeatNear(
      gatewayId,
      fromMs,
      toMs,
    );
  }

  lastHeartbeatMs(gatewayId: string, notAfterMs = Number.MAX_SAFE_INTEGER): number | null {
    return (this.stmt.lastHeartbeat.get(gatewayId, notAfterMs) as { t: number | null }).t;
  }

  fileProcessed(path: string, size: number, mtimeMs: number): boolean {
    const row = this.stmt.fileGet.get(path) as { size: number; mtime_ms: number; done: number } | undefined;
    return row !== undefined && row.done === 1 && row.size === size && row.mtime_ms === Math.floor(mtimeMs);
  }

  fileAttempt(path: string, size: number, mtimeMs: number, nowMs: number): number {
    return (this.stmt.fileAttempt.get(path, size, Math.floor(mtimeMs), nowMs) as { attempts: number }).attempts;
  }

  markFileProcessed(
    path: string,
    size: number,
    mtimeMs: number,
    records: number,
    invalid: number,
    nowMs: number,
    failure: string | null = null,
  ): void {
    this.stmt.filePut.run(path, size, Math.floor(mtimeMs), nowMs, records, invalid, failure);
  }

  recordEvent(e: StoredEvent): boolean {
    return this.stmt.eventPut.run(...eventValues(e)).changes > 0;
  }

  replaceEvent(e: StoredEvent): void {
    this.stmt.eventReplace.run(...eventValues(e));
  }

  keptCopy(eventId: string): KeptEvent | null {
    const row = this.stmt.eventKept.get(eventId) as
      { origin: string | null; fingerprint: string | null; summary: string | null } | undefined;
    if (row === undefined) return null;
    return {
      origin: row.origin === 'pushed' || row.origin === 'trail' ? row.origin : null,
      fingerprint: row.fingerprint,
      summary: row.summary === null ? null : (JSON.parse(row.summary) as Record<string, unknown>),
    };
  }

  keptCopies(eventIds: readonly string[]): (KeptEvent | null)[] {
    return eventIds.map((id) => this.keptCopy(id));
  }

  vouchForEvent(eventId: string, origin: EventOrigin, fingerprint: string, summary: Record<string, unknown>): void {
    this.stmt.eventVouch.run(origin, fingerprint, JSON.stringify(summary), eventId);
  }

  recordEventConflict(c: EventConflict, droppedFingerprint: string): boolean {
    return (
      this.stmt.conflictPut.run(
        c.eventId,
        c.detectedMs,
        c.resolution,
        JSON.stringify(c.kept),
        JSON.stringify(c.dropped),
        droppedFingerprint,
        c.supersededDecision === null ? null : JSON.stringify(c.supersededDecision),
      ).changes > 0
    );
  }

  listEventConflicts(filter: { sinceMs: number; limit: number }): EventConflict[] {
    const rows = this.stmt.conflictsSince.all(filter.sinceMs, filter.limit) as {
      event_id: string;
      detected_ms: number;
      resolution: EventConflict['resolution'];
      kept: string;
      dropped: string;
      superseded_decision: string | null;
    }[];
    return rows.map((r) => ({
      eventId: r.event_id,
      detectedMs: r.detected_ms,
      resolution: r.resolution,
      kept: JSON.parse(r.kept) as Record<string, unknown>,
      dropped: JSON.parse(r.dropped) as Record<string, unknown>,
      supersededDecision:
        r.superseded_decision === null ? null : (JSON.parse(r.superseded_decision) as { disposition: string; rule: string }),
    }));
  }

  takeDecision(kind: StoredDecision['kind'], subjectId: string): { disposition: string; rule: string } | null {
    return (this.stmt.decisionTake.get(kind, subjectId) as { disposition: string; rule: string } | undefined) ?? null;
  }

  cloudTrailUses(accessKeyId: string, fromMs: number, toMs: number): CloudTrailUse[] {
    return (
      this.stmt.eventUses.all(accessKeyId, fromMs, toMs) as {
        event_id: string;
        source_ip: string;
        event_time_ms: number;
        vpc_endpoint_id: string | null;
      }[]
    ).map((r) => ({
      eventId: r.event_id,
      eventTime: new Date(r.event_time_ms).toISOString(),
      sourceIPAddress: r.source_ip,
      vpcEndpointId: r.vpc_endpoint_id,
    }));
  }

  decisionOf(kind: StoredDecision['kind'], subjectId: string): string | null {
    return (this.stmt.decisionOf.get(kind, subjectId) as { disposition: string } | undefined)?.disposition ?? null;
  }

  findingsForKey(accessKeyId: string, fromMs: number, toMs: number): number {
    return (this.stmt.findingsForKey.get(accessKeyId, fromMs, toMs) as { n: number }).n;
  }

  begin(): void {
    this.stmt.begin.run();
  }

  commit(): void {
    this.stmt.commit.run();
  }

  rollback(): void {
    if (this.db.inTransaction) this.stmt.rollback.run();
  }

  // Savepoints of one name nest: RELEASE and ROLLBACK TO act on the innermost one.
  savepoint(): void {
    this.stmt.savepoint.run();
  }

  releaseSavepoint(): void {
    this.stmt.release.run();
  }

  rollbackToSavepoint(): void {
    this.stmt.rollbackTo.run();
    this.stmt.release.run();
  }

  addPending(p: PendingEvent): void {
    this.stmt.pendingPut.run(p.eventId, p.eventTimeMs, p.dueMs, JSON.stringify(p.raw));
  }

  duePending(nowMs: number, limit: number): PendingEvent[] {
    return (this.stmt.pendingDue.all(nowMs, limit) as { event_id: string; event_time_ms: number; due_ms: number; raw: string }[]).map(
      (r) => ({
        eventId: r.event_id,
        eventTimeMs: r.event_time_ms,
        dueMs: r.due_ms,
        raw: JSON.parse(r.raw) as unknown,
      }),
    );
  }

  removePending(eventId: string): void {
    this.stmt.pendingDel.run(eventId);
  }

  pendingCount(): number {
    return (this.stmt.pendingCount.get() as { n: number }).n;
  }

  saveDecision(d: StoredDecision): boolean {
    return this.stmt.decisionPut.run(...decisionValues(d)).changes > 0;
  }

  recordDecided(items: readonly DecidedEvent[]): boolean[] {
    return recordDecidedInTurn(this, items);
  }

  listDecisions(filter: { sinceMs: number; disposition: string | null; limit: number }): StoredDecision[] {
    const rows = this.stmt.decisionsSince.all(filter.sinceMs, filter.disposition, filter.disposition, filter.limit) as {
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
    }[];
    return rows.map((r) => ({
      kind: r.kind,
      subjectId: r.subject_id,
      timeMs: r.time_ms,
      decidedMs: r.decided_ms,
      disposition: r.disposition,
      rule: r.rule,
      accessKeyId: r.access_key_id,
      sourceIp: r.source_ip,
      gatewayId: r.gateway_id,
      detail: JSON.parse(r.detail) as unknown,
    }));
  }

  getFinding(id: string): unknown {
    const row = this.stmt.findingGet.get(id) as { finding: string } | undefined;
    return row ? (JSON.parse(row.finding) as unknown) : null;
  }

  putFinding(id: string, finding: unknown, nowMs: number): void {
    this.stmt.findingPut.run(id, JSON.stringify(finding), nowMs);
  }

  guardDutyArchived(findingId: string): boolean {
    return this.stmt.gdArchivedGet.get(findingId) !== undefined;
  }

  markGuardDutyArchived(findingIds: readonly string[], nowMs: number): void {
    const tx = this.db.transaction(() => {
      for (const id of findingIds) this.stmt.gdArchivedPut.run(id, nowMs);
    });
    tx();
  }

  enqueueDelivery(sink: string, itemId: string, nowMs: number): void {
    this.stmt.outboxEnqueue.run(sink, itemId, nowMs, nowMs);
  }

  dueDeliveries(sink: string, nowMs: number, limit: number): QueuedDelivery[] {
    return (
      this.stmt.outboxDue.all(sink, nowMs, limit) as { item_id: string; version: number; attempts: number; enqueued_ms: number }[]
    ).map((r) => ({ itemId: r.item_id, version: r.version, attempts: r.attempts, enqueuedMs: r.enqueued_ms }));
  }

  ackDelivery(sink: string, itemId: string, version: number): void {
    // A newer version queued meanwhile stays, with a clean slate: the sink just took this item.
    if (this.stmt.outboxAck.run(sink, itemId, version).changes === 0) this.stmt.outboxReset.run(sink, itemId);
  }

  retryDelivery(sink: string, itemId: string, version: number, attempts: number, nextMs: number, error: string): void {
    this.stmt.outboxRetry.run(attempts, nextMs, error, sink, itemId, version);
  }

  failDelivery(sink: string, itemId: string, version: number, attempts: number, error: string): void {
    this.stmt.outboxFail.run(attempts, error, sink, itemId, version);
  }

  nextDeliveryMs(sink: string): number | null {
    return (this.stmt.outboxNext.get(sink) as { t: number | null }).t;
  }

  deliveryBacklog(sink: string): DeliveryBacklog {
    const r = this.stmt.outboxBacklog.get(sink) as { pending: number | null; failed: number | null; oldest: number | null };
    return { pending: r.pending ?? 0, failed: r.failed ?? 0, oldestPendingMs: r.oldest };
  }

  addFindingOccurrence(o: FindingOccurrence, nowMs: number): void {
    this.stmt.occurrencePut.run(o.eventId, o.findingId, o.eventTimeMs, JSON.stringify(o.event), nowMs);
  }

  occurrencesToRecheck(sinceMs: number, limit: number): FindingOccurrence[] {
    return (
      this.stmt.occurrencesDue.all(sinceMs, limit) as { event_id: string; finding_id: string; event_time_ms: number; event: string }[]
    ).map((r) => ({ eventId: r.event_id, findingId: r.finding_id, eventTimeMs: r.event_time_ms, event: JSON.parse(r.event) as unknown }));
  }

  markOccurrenceChecked(eventId: string, nowMs: number, resolved: boolean): void {
    this.stmt.occurrenceChecked.run(nowMs, resolved ? 1 : 0, eventId);
  }

  occurrenceCounts(findingId: string): { stored: number; unresolved: number } {
    const r = this.stmt.occurrenceCounts.get(findingId) as { stored: number; unresolved: number | null };
    return { stored: r.stored, unresolved: r.unresolved ?? 0 };
  }

  prune(olderThanMs: number): { observations: number; heartbeats: number; events: number } {
    // Occurrences older than the evidence can no longer be re-verified: their findings are final.
    this.db.prepare('DELETE FROM finding_occurrences WHERE event_time_ms < ?').run(olderThanMs);
    const tx = this.db.transaction(() => ({
      observations: this.db.prepare('DELETE FROM observations WHERE last_ms < ?').run(olderThanMs).changes,
      heartbeats: this.db.prepare('DELETE FROM heartbeats WHERE time_ms < ?').run(olderThanMs).changes,
      // Kept for the retention after it arrived too: a pushed copy dated long ago must outlive the trail's delivery of the real one.
      events: this.db.prepare('DELETE FROM events WHERE event_time_ms < ? AND COALESCE(seen_ms, 0) < ?').run(olderThanMs, olderThanMs)
        .changes,
      batches: this.db.prepare('DELETE FROM batches WHERE received_ms < ?').run(olderThanMs).changes,
    }));
    const r = tx();
    return { observations: r.observations, heartbeats: r.heartbeats, events: r.events };
  }

  sizeBytes(): number {
    let total = 0;
    for (const suffix of ['', '-wal']) {
      try {
        total += statSync(this.path + suffix).size;
      } catch {
        // the WAL file comes and goes
      }
    }
    return total;
  }

  close(): void {
    this.db.close();
  }
}

/**
 * The outbox, one row per (sink, item): enqueueing again bumps the version and makes the row due
 * at once, so an item updated while undelivered is sent once, in its latest state.
 *
 *   enqueue ─▶ pending (next_ms) ─┬─ ack (same version) ─▶ deleted
 *                    ▲            ├─ retry ─▶ pending, next_ms later, attempts + 1
 *                    └─ enqueue ◀─┴─ fail ──▶ failed (parked until the item changes)
 */
function outboxStatements(db: Database.Database) {
  return {
    outboxEnqueue: db.prepare(
      `INSERT INTO outbox (sink, item_id, version, enqueued_ms, next_ms) VALUES (?, ?, 1, ?, ?)
       ON CONFLICT (sink, item_id) DO UPDATE SET version = version + 1, next_ms = excluded.next_ms,
         enqueued_ms = CASE WHEN failed = 1 THEN excluded.enqueued_ms ELSE enqueued_ms END,
         attempts = CASE WHEN failed = 1 THEN 0 ELSE attempts END, failed = 0, last_error = NULL`,
    ),
    outboxDue: db.prepare(
      'SELECT item_id, version, attempts, enqueued_ms FROM outbox WHERE sink = ? AND failed = 0 AND next_ms <= ? ORDER BY next_ms, enqueued_ms LIMIT ?',
    ),
    outboxAck: db.prepare('DELETE FROM outbox WHERE sink = ? AND item_id = ? AND version = ?'),
    outboxReset: db.prepare('UPDATE outbox SET attempts = 0 WHERE sink = ? AND item_id = ?'),
    outboxRetry: db.prepare('UPDATE outbox SET attempts = ?, next_ms = ?, last_error = ? WHERE sink = ? AND item_id = ? AND version = ?'),
    outboxFail: db.prepare('UPDATE outbox SET failed = 1, attempts = ?, last_error = ? WHERE sink = ? AND item_id = ? AND version = ?'),
    outboxNext: db.prepare('SELECT MIN(next_ms) AS t FROM outbox WHERE sink = ? AND failed = 0'),
    outboxBacklog: db.prepare(
      'SELECT SUM(failed = 0) AS pending, SUM(failed = 1) AS failed, MIN(CASE WHEN failed = 0 THEN enqueued_ms END) AS oldest FROM outbox WHERE sink = ?',
    ),
  };
}

function occurrenceStatements(db: Database.Database) {
  return {
    occurrencePut: db.prepare(
      'INSERT INTO finding_occurrences (event_id, finding_id, event_time_ms, event, checked_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING',
    ),
    occurrencesDue: db.prepare(
      'SELECT event_id, finding_id, event_time_ms, event FROM finding_occurrences WHERE resolved = 0 AND event_time_ms >= ? ORDER BY checked_ms LIMIT ?',
    ),
    occurrenceChecked: db.prepare('UPDATE finding_occurrences SET checked_ms = ?, resolved = ? WHERE event_id = ?'),
    occurrenceCounts: db.prepare(
      'SELECT COUNT(*) AS stored, SUM(resolved = 0) AS unresolved FROM finding_occurrences WHERE finding_id = ?',
    ),
  };
}

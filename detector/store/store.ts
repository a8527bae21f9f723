/**
 * What the detector keeps, behind an interface so the embedded SQLite
 * default can be replaced (PostgreSQL for several detectors behind a load
 * balancer: ingest is stateless over the store).
 *
 * Every operation answers with a promise. The embedded backends (SQLite,
 * memory) implement the synchronous `StoreEngine` and are wrapped by
 * `SerialStore` (serial-store.ts), which queues operations so a transaction
 * is never interleaved with anything else; a networked backend implements
 * `DetectorStore` directly.
 *
 * Lifecycle contract: every write method is durable when its promise
 * resolves (the ingest endpoint answers 2xx only after `ingestBatch`
 * resolved). Writes made through the handle `withTransaction` passes commit
 * together when the callback's promise resolves, and none do when it
 * rejects. Inside a transaction use only its handle: an operation on the
 * store itself waits for the transaction to end.
 *
 * Evidence is read for a batch at a time: `evidenceSnapshot(needs)` fetches
 * what the rules may read (correlate/evidence-needs.ts) in a bounded number
 * of queries and answers them synchronously, so the rules stay pure.
 */
import type { TelemetryBatch } from '../../protocol/telemetry.js';
import type { EvidenceNeeds, EvidenceView, Sighting } from '../correlate/types.js';
import type { CloudTrailUse } from '../guardduty/decide.js';
import type { EventOrigin } from '../correlate/event-identity.js';

export type IngestResult = { kind: 'stored'; records: number } | { kind: 'duplicate' };

export interface StoredDecision {
  kind: 'cloudtrail' | 'guardduty';
  subjectId: string;
  timeMs: number;
  decidedMs: number;
  disposition: string;
  rule: string;
  accessKeyId: string | null;
  sourceIp: string | null;
  gatewayId: string | null;
  detail: unknown;
}

export interface StoredEvent {
  eventId: string;
  accessKeyId: string | null;
  sourceIp: string;
  eventTimeMs: number;
  vpcEndpointId: string | null;
  origin: EventOrigin;
  fingerprint: string;
  /** When this copy arrived: the row outlives store.retention counted from here too. */
  seenMs: number;
  summary: Record<string, unknown>;
}

export interface KeptEvent {
  /** null, with the fingerprint and summary: a row an older detector wrote. */
  origin: EventOrigin | null;
  fingerprint: string | null;
  summary: Record<string, unknown> | null;
}

export interface EventConflict {
  eventId: string;
  detectedMs: number;
  /** superseded: a more trusted copy replaced the kept one and was decided; rejected: the kept copy stands. */
  resolution: 'superseded' | 'rejected';
  kept: Record<string, unknown>;
  dropped: Record<string, unknown>;
  /** The decision the dropped copy had received, when it was superseded after one. */
  supersededDecision: { disposition: string; rule: string } | null;
}

export interface PendingEvent {
  eventId: string;
  eventTimeMs: number;
  dueMs: number;
  raw: unknown;
}

/** One queued delivery in the outbox: an item (a finding id) to bring to a sink in its current state. */
export interface QueuedDelivery {
  itemId: string;
  /** Bumped by every enqueue: acknowledging or retrying an older version leaves the newer one queued. */
  version: number;
  /** Failed tries of this item so far (kept across versions, so backoff survives updates and restarts). */
  attempts: number;
  /** When the oldest change not yet delivered was queued. */
  enqueuedMs: number;
}

export interface DeliveryBacklog {
  /** Queued and still to be tried. */
  pending: number;
  /** Refused for good; tried again only when the item changes. */
  failed: number;
  oldestPendingMs: number | null;
}

/** An event new to the store and its final decision (recordDecided). */
export interface DecidedEvent {
  event: StoredEvent;
  decision: StoredDecision;
}

/** A finding's occurrence kept for re-verification: the CloudTrail event, normalised, as it was decided. */
export interface FindingOccurrence {
  eventId: string;
  findingId: string;
  eventTimeMs: number;
  event: unknown;
}

/**
 * The store's operations, synchronous: what an embedded backend implements. `StoreOps` is the same
 * list answering with promises; the documentation of each operation is here.
 */
export interface StoreEngine {
  /** The evidence a batch of decisions may read (see EvidenceNeeds), answered synchronously. */
  evidenceSnapshot(needs: EvidenceNeeds): EvidenceView;
  /** Sightings of the key overlapping [from, to] that attest (as a snapshot answers them). */
  keySightings(accessKeyId: string, fromMs: number, toMs: number): Sighting[];
  /** Sightings of one endpoint by one gateway that attest; `region` matches exactly (null = global endpoint). */
  endpointSightings(gatewayId: string, service: string, region: string | null, fromMs: number, toMs: number): Sighting[];
  /** Whether the gateway sent anything (heartbeat or observation) in [from, to]. */
  heartbeatNear(gatewayId: string, fromMs: number, toMs: number): boolean;

  ingestBatch(gatewayId: string, batch: TelemetryBatch, receivedMs: number): IngestResult;
  /** The newest heartbeat time of a gateway, not later than `notAfterMs` when given (a stored time from the future never counts as recent). */
  lastHeartbeatMs(gatewayId: string, notAfterMs?: number): number | null;

  /** CloudTrail files processed once: keyed by path, with size and mtime to notice a rewritten file. */
  fileProcessed(path: string, size: number, mtimeMs: number): boolean;
  /**
   * Records that reading this file (same size and mtime) begins, durably, and returns how many
   * times it began without finishing, this one included: a file that keeps stopping the daemon
   * can be quarantined instead of read in a loop.
   */
  fileAttempt(path: string, size: number, mtimeMs: number, nowMs: number): number;
  /** Done with the file: processed, or failed with `failure` as the reason (never read again unless rewritten). */
  markFileProcessed(
    path: string,
    size: number,
    mtimeMs: number,
    records: number,
    invalid: number,
    nowMs: number,
    failure?: string | null,
  ): void;

  /**
   * Instance-credential events seen, one kept copy per event ID (for GuardDuty's "used from
   * elsewhere" check and for judging later copies): false when the ID is kept already.
   */
  recordEvent(e: StoredEvent): boolean;
  /** The kept copy of an event ID, or null. */
  keptCopy(eventId: string): KeptEvent | null;
  /** The kept copies of these event IDs, in their order (null where none is kept): a slice's in one read. */
  keptCopies(eventIds: readonly string[]): (KeptEvent | null)[];
  /** Replaces the kept copy (a more trusted copy that differs). */
  replaceEvent(e: StoredEvent): void;
  /** A more trusted origin delivered the same content (or a row from an older version gets its identity). */
  vouchForEvent(eventId: string, origin: EventOrigin, fingerprint: string, summary: Record<string, unknown>): void;
  /** Two copies of one event ID that disagree; stored once per dropped copy. */
  recordEventConflict(c: EventConflict, droppedFingerprint: string): boolean;
  listEventConflicts(filter: { sinceMs: number; limit: number }): EventConflict[];
  cloudTrailUses(accessKeyId: string, fromMs: number, toMs: number): CloudTrailUse[];

  /** Findings that wait for late telemetry before they are final. */
  addPending(p: PendingEvent): void;
  /**
   * Pending rows due by `nowMs`, the longest due first. Through a transaction's handle the rows are
   * claimed until it ends: another detector on the same store skips them (PostgreSQL: FOR UPDATE
   * SKIP LOCKED), so two detectors never decide one row at once.
   */
  duePending(nowMs: number, limit: number): PendingEvent[];
  removePending(eventId: string): void;
  pendingCount(): number;

  saveDecision(d: StoredDecision): boolean;
  /**
   * Events new to the store, each with its final decision, written in order as recordEvent then
   * saveDecision would write them: whether each decision was stored (false: one was kept for its
   * subject already). A slice's new events in one call, where one call each was most of their cost.
   */
  recordDecided(items: readonly DecidedEvent[]): boolean[];
  /** The disposition stored for a subject, or null. */
  decisionOf(kind: StoredDecision['kind'], subjectId: string): string | null;
  /** Removes a stored decision (superseded by a more trusted copy of its event) and says what it was. */
  takeDecision(kind: StoredDecision['kind'], subjectId: string): { disposition: string; rule: string } | null;
  /** How many of the detector's own findings name this key in [from, to] (by event time). */
  findingsForKey(accessKeyId: string, fromMs: number, toMs: number): number;
  listDecisions(filter: { sinceMs: number; disposition: string | null; limit: number }): StoredDecision[];

  getFinding(id: string): unknown;
  putFinding(id: string, finding: unknown, nowMs: number): void;

  /** GuardDuty findings already archived (idempotence across restarts and retries). */
  guardDutyArchived(findingId: string): boolean;
  markGuardDutyArchived(findingIds: readonly string[], nowMs: number): void;

  /**
   * The outbox: deliveries that must survive a restart (the Security Hub export). Enqueue in the
   * transaction that changed the item, deliver after it committed; `sink` names the destination.
   */
  enqueueDelivery(sink: string, itemId: string, nowMs: number): void;
  /** Pending deliveries due by `nowMs`, the longest due first. */
  dueDeliveries(sink: string, nowMs: number, limit: number): QueuedDelivery[];
  /** Delivered: removed, unless a newer version was queued meanwhile. */
  ackDelivery(sink: string, itemId: string, version: number): void;
  /** Not delivered: tried again from `nextMs` (a newer version, queued meanwhile, stays due at once). */
  retryDelivery(sink: string, itemId: string, version: number, attempts: number, nextMs: number, error: string): void;
  /** Refused for good: kept as failed, not tried again until the item changes. */
  failDelivery(sink: string, itemId: string, version: number, attempts: number, error: string): void;
  /** The earliest time a pending delivery is due, or null when none is pending. */
  nextDeliveryMs(sink: string): number | null;
  deliveryBacklog(sink: string): DeliveryBacklog;

  /** Keeps a finding's occurrence for re-verification (once per event). */
  addFindingOccurrence(o: FindingOccurrence, nowMs: number): void;
  /** Unresolved occurrences with eventTime ≥ `sinceMs`, least recently checked first. */
  occurrencesToRecheck(sinceMs: number, limit: number): FindingOccurrence[];
  markOccurrenceChecked(eventId: string, nowMs: number, resolved: boolean): void;
  /** Occurrences of a finding kept, and how many of them are unresolved. */
  occurrenceCounts(findingId: string): { stored: number; unresolved: number };

  prune(olderThanMs: number): { observations: number; heartbeats: number; events: number };
  sizeBytes(): number;
}

/** The operations of a store, answering with promises. */
export type StoreOps = { [K in keyof StoreEngine]: (...args: Parameters<StoreEngine[K]>) => Promise<ReturnType<StoreEngine[K]>> };

/** A transaction's handle: the store's operations, all part of the transaction. */
export type StoreTx = StoreOps & {
  /**
   * Runs `fn` as a part of the transaction that can fail alone: when its promise rejects, the
   * writes made since it began are undone and the rejection is passed on, and the transaction goes
   * on; when it resolves, its writes stay, to commit with the rest. Savepoints nest; the savepoints
   * of one transaction run one at a time (await each before the next begins).
   */
  savepoint<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` once the transaction has committed (in registration order), never when it rolls back;
   * one registered inside a savepoint that is undone is dropped with it. For what must see the
   * commit, such as waking an outbox worker whose reads go through another connection. A hook that
   * throws makes `withTransaction` reject with an error that says the transaction committed.
   */
  afterCommit(fn: () => void): void;
  /**
   * Takes the locks of these findings now, in one fixed order, before the transaction reads any of
   * them to merge (PostgreSQL: advisory locks held until the transaction ends; reading a finding
   * takes its lock too). Transactions of several detectors that merge several findings then wait
   * for each other in line instead of crosswise. Embedded stores: nothing to take (one transaction
   * at a time).
   */
  lockFindings(ids: readonly string[]): Promise<void>;
};

export interface DetectorStore extends StoreOps {
  /** Other processes write this store at the same time (PostgreSQL): transactions take the locks of what they merge (lockFindings). */
  readonly shared?: boolean;
  /**
   * The evidence snapshot answers every query whatever the needs it is given (the index is in
   * memory): a batch's needs are not worked out for it.
   */
  readonly wholeEvidence?: boolean;
  /**
   * Runs `fn` atomically: every write through `tx` commits together when `fn` resolves, or none
   * does when it rejects (the rejection is passed on). Transactions run one at a time.
   */
  withTransaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The synchronous engine an embedded backend wraps (serial-store.ts): its operations and explicit transactions. */
export interface TransactionalEngine extends StoreEngine {
  begin(): void;
  commit(): void;
  rollback(): void;
  /** Marks the transaction's state (savepoints nest: each release or rollback ends the innermost one). */
  savepoint(): void;
  /** Ends the innermost savepoint, keeping its writes. */
  releaseSavepoint(): void;
  /** Ends the innermost savepoint, undoing the writes made since it began. */
  rollbackToSavepoint(): void;
  close(): void;
}

/** recordDecided for an engine that writes synchronously: each item's event recorded, then its decision saved, in order. */
export function recordDecidedInTurn(engine: Pick<StoreEngine, 'recordEvent' | 'saveDecision'>, items: readonly DecidedEvent[]): boolean[] {
  return items.map(({ event, decision }) => {
    engine.recordEvent(event);
    return engine.saveDecision(decision);
  });
}

/** Every operation of StoreEngine, by name: the wrapper builds one method per name. */
export const STORE_OPERATIONS = [
  'evidenceSnapshot',
  'keySightings',
  'endpointSightings',
  'heartbeatNear',
  'ingestBatch',
  'lastHeartbeatMs',
  'fileProcessed',
  'fileAttempt',
  'markFileProcessed',
  'recordEvent',
  'keptCopy',
  'keptCopies',
  'replaceEvent',
  'vouchForEvent',
  'recordEventConflict',
  'listEventConflicts',
  'cloudTrailUses',
  'addPending',
  'duePending',
  'removePending',
  'pendingCount',
  'saveDecision',
  'recordDecided',
  'decisionOf',
  'takeDecision',
  'findingsForKey',
  'listDecisions',
  'getFinding',
  'putFinding',
  'guardDutyArchived',
  'markGuardDutyArchived',
  'enqueueDelivery',
  'dueDeliveries',
  'ackDelivery',
  'retryDelivery',
  'failDelivery',
  'nextDeliveryMs',
  'deliveryBacklog',
  'addFindingOccurrence',
  'occurrencesToRecheck',
  'markOccurrenceChecked',
  'occurrenceCounts',
  'prune',
  'sizeBytes',
] as const satisfies readonly (keyof StoreEngine)[];

/** Compile-time check: the list names every operation. */
type Unlisted = Exclude<keyof StoreEngine, (typeof STORE_OPERATIONS)[number]>;
const everyOperationListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyOperationListed;

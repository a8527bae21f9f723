/**
 * The store in memory: the same DetectorStore contract as SQLite, for
 * `replay` (forensics run the daemon's pipeline over this store) and tests.
 * Nothing survives the process. Evidence is a MemoryEvidence (span indexes);
 * everything else is maps.
 *
 * Transactions: writes made between begin and rollback are undone (an undo
 * log), so a failing record leaves nothing half-written, as with SQLite;
 * SerialStore runs one transaction at a time, as it does for SQLite. Values
 * cross the boundary as copies (JSON, like SQLite's text columns): what a
 * caller changes afterwards is not what the store keeps.
 *
 * The evidence snapshot is the whole index: it is in memory already.
 */
import type { Heartbeat, Observation, TelemetryBatch } from '../../protocol/telemetry.js';
import { PairMap } from '../../common/collections/pair-map.js';
import { MemoryEvidence } from '../correlate/memory-evidence.js';
import type { EvidenceNeeds, EvidenceView, Sighting } from '../correlate/types.js';
import type { CloudTrailUse } from '../guardduty/decide.js';
import type { EventOrigin } from '../correlate/event-identity.js';
import { SerialStore } from './serial-store.js';
import { recordDecidedInTurn } from './store.js';
import type {
  DecidedEvent,
  DeliveryBacklog,
  TransactionalEngine,
  EventConflict,
  KeptEvent,
  StoredEvent,
  FindingOccurrence,
  IngestResult,
  PendingEvent,
  QueuedDelivery,
  StoredDecision,
} from './store.js';

interface FileRow {
  size: number;
  mtimeMs: number;
  done: boolean;
  attempts: number;
}

type EventRow = StoredEvent;

interface ConflictRow {
  conflict: EventConflict;
  detectedMs: number;
  seq: number;
}

interface DecisionRow extends Omit<StoredDecision, 'detail'> {
  seq: number;
  detail: unknown;
}

interface OutboxRow {
  itemId: string;
  version: number;
  enqueuedMs: number;
  nextMs: number;
  attempts: number;
  failed: boolean;
  lastError: string | null;
}

interface OccurrenceRow {
  eventId: string;
  findingId: string;
  eventTimeMs: number;
  event: unknown;
  checkedMs: number;
  resolved: boolean;
  seq: number;
}

const copy = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));
const same = <T>(v: T): T => v;

export interface MemoryStoreOptions {
  /**
   * false: values are kept and handed out as they are, not copied. Only for a caller that never
   * changes a value after handing it over or being handed it (the decision pipeline builds every
   * finding and decision anew): replay, where copying was most of the time spent.
   */
  copyValues?: boolean;
  /**
   * What is kept of a decision. 'full' (the default): all of it. 'without-detail': what later
   * reads of the store need (subject, times, disposition, rule, key, source, gateway) but not its
   * detail, which listDecisions then hands out as null: for replay, which prints each decision as
   * it is made and never lists them (a detail kept per record was most of what the garbage
   * collector had to carry through a replay). 'verdict': only each subject's disposition and rule,
   * shared between decisions alike, which is all that saving, decisionOf and takeDecision read;
   * findingsForKey and listDecisions then throw. For a replay without GuardDuty findings, the
   * only reader of a key's findings.
   */
  decisions?: DecisionsKept;
}

export type DecisionsKept = 'full' | 'without-detail' | 'verdict';

/** The store in memory, as a DetectorStore. */
export class MemoryStore extends SerialStore<MemoryEngine> {
  readonly wholeEvidence = true;

  constructor(o: MemoryStoreOptions = {}) {
    super(new MemoryEngine(o.copyValues ?? true, o.decisions ?? 'full'));
  }

  /** The evidence index (replay loads telemetry into it before deciding anything). */
  get evidence(): MemoryEvidence {
    return this.engine.evidence;
  }

  /** Indexes one telemetry record from an authenticated gateway; false when its times cannot be read. */
  addRecord(gatewayId: string, record: Observation | Heartbeat): boolean {
    return this.engine.addRecord(gatewayId, record);
  }
}

/** The synchronous operations over maps (MemoryStore serialises them). */
export class MemoryEngine implements TransactionalEngine {
  readonly evidence = new MemoryEvidence();
  private readonly batches = new Map<string, number>();
  private readonly heartbeats = new Map<string, number[]>();
  /** Last-seen time of every observation stored (attesting or not): what prune counts. */
  private observationEnds: number[] = [];
  private readonly files = new Map<string, FileRow>();
  private readonly events = new Map<string, EventRow>();
  /**
   * The kept events by access key (for cloudTrailUses), built from `events` when first asked for
   * and kept in step after that; null until then, and again after a rollback (rebuilt when next
   * asked). A replay that never reads a key's uses never builds it.
   */
  private eventsByKey: Map<string, EventRow[]> | null = null;
  private readonly conflicts = new Map<string, ConflictRow>();
  private readonly pending = new Map<string, PendingEvent>();
  /** Decisions by kind, then subject (a key spelt per kind: no string built per record). */
  private readonly decisions: Readonly<Record<StoredDecision['kind'], Map<string, DecisionRow>>> = {
    cloudtrail: new Map(),
    guardduty: new Map(),
  };
  private readonly findings = new Map<string, unknown>();
  private readonly archived = new Map<string, number>();
  private readonly outbox = new Map<string, OutboxRow>();
  private readonly occurrences = new Map<string, OccurrenceRow>();
  private seq = 0;
  /**
   * The undo log of the open transaction, flat: four slots an entry (what to do, where, what, key), so
   * that a write allocates nothing to be undone (a closure and its context each, held until the
   * commit, were much of what a replay slice promoted). Entries: MAP_SET (map, old value or ABSENT,
   * key), LIST_ADD (list, item pushed), LIST_REMOVED (list, item taken out).
   */
  private undo: unknown[] | null = null;
  /** The undo log's array between transactions (emptied), so that each transaction does not grow one anew. */
  private readonly spareUndo: unknown[] = [];
  /** The length of the undo log when each open savepoint began, innermost last. */
  private readonly marks: number[] = [];
  /** How a value crosses the boundary: a JSON copy (like SQLite's text columns), or as it is. */
  private readonly copy: <T>(v: T) => T;
  /** Values are copied; without, a row handed in is kept as it is (its caller never changes it). */
  private readonly copying: boolean;

  /** What a decision row keeps (see MemoryStoreOptions.decisions). */
  private readonly kept: DecisionsKept;
  /** With kept = 'verdict': the one row of each disposition and rule (a disposition belongs to one kind). */
  private readonly verdicts = new PairMap<DecisionRow>();

  constructor(copyValues: boolean, decisions: DecisionsKept = 'full') {
    this.copy = copyValues ? copy : same;
    this.copying = copyValues;
    this.kept = decisions;
  }

  /** Indexes one telemetry record from an authenticated gateway; false when its times cannot be read. */
  addRecord(gatewayId: string, record: Observation | Heartbeat): boolean {
    if (!this.evidence.addRecord(gatewayId, record)) return false;
    if (record.type === 'heartbeat') {
      const list = this.heartbeats.get(gatewayId) ?? [];
      list.push(Date.parse(record.time));
      this.heartbeats.set(gatewayId, list);
    } else this.observationEnds.push(Math.max(Date.parse(record.firstSeen), Date.parse(record.lastSeen)));
    return true;
  }

  ingestBatch(gatewayId: string, batch: TelemetryBatch, receivedMs: number): IngestResult {
    if (this.undo) throw new Error('ingestBatch runs in its own transaction');
    const id = `${gatewayId}\n${batch.batchId}`;
    if (this.batches.has(id)) return { kind: 'duplicate' };
    this.batches.set(id, receivedMs);
    for (const r of batch.records) this.addRecord(gatewayId, r);
    return { kind: 'stored', records: batch.records.length };
  }

  evidenceSnapshot(_needs: EvidenceNeeds): EvidenceView {
    return this.evidence;
  }

  keySightings(accessKeyId: string, fromMs: number, toMs: number): Sighting[] {
    return this.evidence.keySightings(accessKeyId, fromMs, toMs);
  }

  endpointSightings(gatewayId: string, service: string, region: string | null, fromMs: number, toMs: number): Sighting[] {
    return this.evidence.endpointSightings(gatewayId, service, region, fromMs, toMs);
  }

  heartbeatNear(gatewayId: string, fromMs: number, toMs: number): boolean {
    return this.evidence.heartbeatNear(gatewayId, fromMs, toMs);
  }

  lastHeartbeatMs(gatewayId: string, notAfterMs = Number.MAX_SAFE_INTEGER): number | null {
    let best: number | null = null;
    for (const t of this.heartbeats.get(gatewayId) ?? []) if (t <= notAfterMs && (best === null || t > best)) best = t;
    return best;
  }

  /**
   * Sets `map[key]` (or deletes it for undefined), remembering the old value inside a transaction.
   * No map holds undefined (it deletes instead), so a value read as undefined is one absent.
   */
  private put<K, V>(map: Map<K, V>, key: K, value: V | undefined): void {
    if (this.undo) {
      const old = map.get(key);
      this.undo.push(MAP_SET, map, old === undefined ? ABSENT : old, key);
    }
    if (value === undefined) map.delete(key);
    else map.set(key, value);
  }

  fileProcessed(path: string, size: number, mtimeMs: number): boolean {
    const f = this.files.get(path);
    return f !== undefined && f.done && f.size === size && f.mtimeMs === Math.floor(mtimeMs);
  }

  fileAttempt(path: string, size: number, mtimeMs: number): number {
    const f = this.files.get(path);
    const m = Math.floor(mtimeMs);
    const attempts = f !== undefined && f.size === size && f.mtimeMs === m ? f.attempts + 1 : 1;
    this.put(this.files, path, { size, mtimeMs: m, done: false, attempts });
    return attempts;
  }

  markFileProcessed(path: string, size: number, mtimeMs: number): void {
    this.put(this.files, path, { size, mtimeMs: Math.floor(mtimeMs), done: true, attempts: this.files.get(path)?.attempts ?? 0 });
  }

  recordEvent(e: StoredEvent): boolean {
    if (this.events.has(e.eventId)) return false;
    this.keepEvent(this.copying ? { ...e, summary: copy(e.summary) } : e, undefined);
    return true;
  }

  /** Sets the kept copy of an event (`old`: the one kept so far, undefined for none) and its place in the per-key index. */
  private keepEvent(row: EventRow, old: EventRow | undefined): void {
    const byKey = this.eventsByKey;
    if (byKey !== null && old !== undefined && old.accessKeyId !== null) {
      const list = byKey.get(old.accessKeyId) ?? [];
      list.splice(list.indexOf(old), 1);
      this.undo?.push(LIST_REMOVED, list, old, null);
    }
    this.undo?.push(MAP_SET, this.events, old ?? ABSENT, row.eventId);
    this.events.set(row.eventId, row);
    if (byKey !== null && row.accessKeyId !== null) {
      const list = keyList(byKey, row.accessKeyId);
      list.push(row);
      // Undone by taking the row out of the list (an emptied list stays in the index).
      this.undo?.push(LIST_ADD, list, row, null);
    }
  }

  /** The per-key index of the kept events, built now if it is not there. */
  private byKey(): Map<string, EventRow[]> {
    if (this.eventsByKey !== null) return this.eventsByKey;
    const byKey = new Map<string, EventRow[]>();
    for (const row of this.events.values()) if (row.accessKeyId !== null) keyList(byKey, row.accessKeyId).push(row);
    this.eventsByKey = byKey;
    return byKey;
  }

  keptCopy(eventId: string): KeptEvent | null {
    const e = this.events.get(eventId);
    return e === undefined ? null : { origin: e.origin, fingerprint: e.fingerprint, summary: this.copy(e.summary) };
  }

  keptCopies(eventIds: readonly string[]): (KeptEvent | null)[] {
    return eventIds.map((id) => this.keptCopy(id));
  }

  replaceEvent(e: StoredEvent): void {
    this.keepEvent(this.copying ? { ...e, summary: copy(e.summary) } : e, this.events.get(e.eventId));
  }

  vouchForEvent(eventId: string, origin: EventOrigin, fingerprint: string, summary: Record<string, unknown>): void {
    const e = this.events.get(eventId);
    if (e !== undefined) this.keepEvent({ ...e, origin, fingerprint, summary: this.copy(summary) }, e);
  }

  recordEventConflict(c: EventConflict, droppedFingerprint: string): boolean {
    const id = `${c.eventId}\n${droppedFingerprint}`;
    if (this.conflicts.has(id)) return false;
    this.put(this.conflicts, id, { conflict: this.copy(c), detectedMs: c.detectedMs, seq: ++this.seq });
    return true;
  }

  listEventConflicts(filter: { sinceMs: number; limit: number }): EventConflict[] {
    return [...this.conflicts.values()]
      .filter((c) => c.detectedMs >= filter.sinceMs)
      .sort((a, b) => b.detectedMs - a.detectedMs || b.seq - a.seq)
      .slice(0, filter.limit)
      .map((c) => this.copy(c.conflict));
  }

  cloudTrailUses(accessKeyId: string, fromMs: number, toMs: number): CloudTrailUse[] {
    return (this.byKey().get(accessKeyId) ?? [])
      .filter((e) => e.eventTimeMs >= fromMs && e.eventTimeMs <= toMs)
      .sort((a, b) => a.eventTimeMs - b.eventTimeMs)
      .slice(0, 1000)
      .map((e) => ({
        eventId: e.eventId,
        eventTime: new Date(e.eventTimeMs).toISOString(),
        sourceIPAddress: e.sourceIp,
        vpcEndpointId: e.vpcEndpointId,
      }));
  }

  addPending(p: PendingEvent): void {
    this.put(this.pending, p.eventId, { ...p, raw: this.copy(p.raw) });
  }

  duePending(nowMs: number, limit: number): PendingEvent[] {
    return [...this.pending.values()]
      .filter((p) => p.dueMs <= nowMs)
      .sort((a, b) => a.dueMs - b.dueMs)
      .slice(0, limit)
      .map((p) => ({ ...p, raw: this.copy(p.raw) }));
  }

  removePending(eventId: string): void {
    this.put(this.pending, eventId, undefined);
  }

  pendingCount(): number {
    return this.pending.size;
  }

  saveDecision(d: StoredDecision): boolean {
    const decisions = this.decisions[d.kind];
    if (decisions.has(d.subjectId)) return false;
    this.undo?.push(MAP_SET, decisions, ABSENT, d.subjectId);
    if (this.kept === 'verdict') {
      decisions.set(d.subjectId, this.verdictOf(d));
      return true;
    }
    // Spelt out rather than spread: replay stores one per record.
    decisions.set(d.subjectId, {
      kind: d.kind,
      subjectId: d.subjectId,
      timeMs: d.timeMs,
      decidedMs: d.decidedMs,
      disposition: d.disposition,
      rule: d.rule,
      accessKeyId: d.accessKeyId,
      sourceIp: d.sourceIp,
      gatewayId: d.gatewayId,
      seq: ++this.seq,
      detail: this.kept === 'full' ? this.copy(d.detail) : null,
    });
    return true;
  }

  recordDecided(items: readonly DecidedEvent[]): boolean[] {
    return recordDecidedInTurn(this, items);
  }

  /** The row standing for every decision with this disposition and rule (kept = 'verdict'): only those two are read. */
  private verdictOf(d: StoredDecision): DecisionRow {
    let row = this.verdicts.get(d.disposition, d.rule);
    if (row === undefined) {
      const { kind, disposition, rule } = d;
      row = {
        kind,
        subjectId: '',
        timeMs: 0,
        decidedMs: 0,
        disposition,
        rule,
        accessKeyId: null,
        sourceIp: null,
        gatewayId: null,
        seq: 0,
        detail: null,
      };
      this.verdicts.set(d.disposition, d.rule, row);
    }
    return row;
  }

  /** Throws for a read that needs more of a decision than its verdict. */
  private needRows(what: string): void {
    if (this.kept === 'verdict') throw new Error(`${what} needs the decisions' rows: this in-memory store keeps only their verdicts`);
  }

  takeDecision(kind: StoredDecision['kind'], subjectId: string): { disposition: string; rule: string } | null {
    const d = this.decisions[kind].get(subjectId);
    if (d === undefined) return null;
    this.put(this.decisions[kind], subjectId, undefined);
    return { disposition: d.disposition, rule: d.rule };
  }

  decisionOf(kind: StoredDecision['kind'], subjectId: string): string | null {
    return this.decisions[kind].get(subjectId)?.disposition ?? null;
  }

  findingsForKey(accessKeyId: string, fromMs: number, toMs: number): number {
    this.needRows('findingsForKey');
    let n = 0;
    for (const d of this.decisions.cloudtrail.values())
      if (d.disposition === 'finding' && d.accessKeyId === accessKeyId && d.timeMs >= fromMs && d.timeMs <= toMs) n++;
    return n;
  }

  begin(): void {
    this.undo = this.spareUndo;
    this.undo.length = 0;
    this.marks.length = 0;
  }

  commit(): void {
    if (this.undo !== null) this.undo.length = 0;
    this.undo = null;
  }

  rollback(): void {
    const undo = this.undo ?? [];
    this.undo = null;
    undoTo(undo, 0);
    // Built during the transaction, it may hold rows written before it was built (none undone in it).
    this.eventsByKey = null;
  }

  savepoint(): void {
    if (this.undo === null) throw new Error('a savepoint needs a transaction');
    this.marks.push(this.undo.length);
  }

  releaseSavepoint(): void {
    this.marks.pop();
  }

  rollbackToSavepoint(): void {
    const mark = this.marks.pop() ?? 0;
    undoTo(this.undo ?? [], mark);
    this.eventsByKey = null;
  }

  listDecisions(filter: { sinceMs: number; disposition: string | null; limit: number }): StoredDecision[] {
    this.needRows('listDecisions');
    return [...this.decisions.cloudtrail.values(), ...this.decisions.guardduty.values()]
      .filter((d) => d.decidedMs >= filter.sinceMs && (filter.disposition === null || d.disposition === filter.disposition))
      .sort((a, b) => b.decidedMs - a.decidedMs || b.seq - a.seq)
      .slice(0, filter.limit)
      .map(({ seq: _seq, detail, ...d }) => ({ ...d, detail: this.copy(detail) }));
  }

  getFinding(id: string): unknown {
    const f = this.findings.get(id);
    return f === undefined ? null : this.copy(f);
  }

  putFinding(id: string, finding: unknown): void {
    this.put(this.findings, id, this.copy(finding));
  }

  guardDutyArchived(findingId: string): boolean {
    return this.archived.has(findingId);
  }

  markGuardDutyArchived(findingIds: readonly string[], nowMs: number): void {
    for (const id of findingIds) if (!this.archived.has(id)) this.put(this.archived, id, nowMs);
  }

  enqueueDelivery(sink: string, itemId: string, nowMs: number): void {
    const id = `${sink}\n${itemId}`;
    const o = this.outbox.get(id);
    this.put(
      this.outbox,
      id,
      o === undefined
        ? { itemId, version: 1, enqueuedMs: nowMs, nextMs: nowMs, attempts: 0, failed: false, lastError: null }
        : {
            ...o,
            version: o.version + 1,
            nextMs: nowMs,
            enqueuedMs: o.failed ? nowMs : o.enqueuedMs,
            attempts: o.failed ? 0 : o.attempts,
            failed: false,
            lastError: null,
          },
    );
  }

  private sinkRows(sink: string): OutboxRow[] {
    const prefix = `${sink}\n`;
    return [...this.outbox.entries()].filter(([k]) => k.startsWith(prefix)).map(([, v]) => v);
  }

  dueDeliveries(sink: string, nowMs: number, limit: number): QueuedDelivery[] {
    return this.sinkRows(sink)
      .filter((o) => !o.failed && o.nextMs <= nowMs)
      .sort((a, b) => a.nextMs - b.nextMs || a.enqueuedMs - b.enqueuedMs)
      .slice(0, limit)
      .map((o) => ({ itemId: o.itemId, version: o.version, attempts: o.attempts, enqueuedMs: o.enqueuedMs }));
  }

  /** Changes the row of (sink, item) when it still has `version` (or any version, when null). */
  private updateDelivery(sink: string, itemId: string, version: number | null, change: (o: OutboxRow) => OutboxRow | undefined): boolean {
    const id = `${sink}\n${itemId}`;
    const o = this.outbox.get(id);
    if (o === undefined || (version !== null && o.version !== version)) return false;
    this.put(this.outbox, id, change(o));
    return true;
  }

  ackDelivery(sink: string, itemId: string, version: number): void {
    if (!this.updateDelivery(sink, itemId, version, () => undefined))
      this.updateDelivery(sink, itemId, null, (o) => ({ ...o, attempts: 0 }));
  }

  retryDelivery(sink: string, itemId: string, version: number, attempts: number, nextMs: number, error: string): void {
    this.updateDelivery(sink, itemId, version, (o) => ({ ...o, attempts, nextMs, lastError: error }));
  }

  failDelivery(sink: string, itemId: string, version: number, attempts: number, error: string): void {
    this.updateDelivery(sink, itemId, version, (o) => ({ ...o, failed: true, attempts, lastError: error }));
  }

  nextDeliveryMs(sink: string): number | null {
    const due = this.sinkRows(sink).filter((o) => !o.failed);
    return due.length === 0 ? null : Math.min(...due.map((o) => o.nextMs));
  }

  deliveryBacklog(sink: string): DeliveryBacklog {
    const rows = this.sinkRows(sink);
    const pending = rows.filter((o) => !o.failed);
    return {
      pending: pending.length,
      failed: rows.length - pending.length,
      oldestPendingMs: pending.length === 0 ? null : Math.min(...pending.map((o) => o.enqueuedMs)),
    };
  }

  addFindingOccurrence(o: FindingOccurrence, nowMs: number): void {
    if (this.occurrences.has(o.eventId)) return;
    this.put(this.occurrences, o.eventId, {
      eventId: o.eventId,
      findingId: o.findingId,
      eventTimeMs: o.eventTimeMs,
      event: this.copy(o.event),
      checkedMs: nowMs,
      resolved: false,
      seq: ++this.seq,
    });
  }

  occurrencesToRecheck(sinceMs: number, limit: number): FindingOccurrence[] {
    return [...this.occurrences.values()]
      .filter((o) => !o.resolved && o.eventTimeMs >= sinceMs)
      .sort((a, b) => a.checkedMs - b.checkedMs || a.seq - b.seq)
      .slice(0, limit)
      .map((o) => ({ eventId: o.eventId, findingId: o.findingId, eventTimeMs: o.eventTimeMs, event: this.copy(o.event) }));
  }

  markOccurrenceChecked(eventId: string, nowMs: number, resolved: boolean): void {
    const o = this.occurrences.get(eventId);
    if (o) this.put(this.occurrences, eventId, { ...o, checkedMs: nowMs, resolved });
  }

  occurrenceCounts(findingId: string): { stored: number; unresolved: number } {
    let stored = 0;
    let unresolved = 0;
    for (const o of this.occurrences.values())
      if (o.findingId === findingId) {
        stored++;
        if (!o.resolved) unresolved++;
      }
    return { stored, unresolved };
  }

  prune(olderThanMs: number): { observations: number; heartbeats: number; events: number } {
    for (const [id, o] of this.occurrences) if (o.eventTimeMs < olderThanMs) this.occurrences.delete(id);
    this.evidence.prune(olderThanMs);
    const observationsBefore = this.observationEnds.length;
    this.observationEnds = this.observationEnds.filter((t) => t >= olderThanMs);
    let heartbeats = 0;
    for (const [gw, times] of this.heartbeats) {
      const kept = times.filter((t) => t >= olderThanMs);
      heartbeats += times.length - kept.length;
      this.heartbeats.set(gw, kept);
    }
    let events = 0;
    // Kept for the retention after it arrived too (a pushed copy dated long ago outlives the trail's delivery).
    for (const [id, e] of this.events)
      if (e.eventTimeMs < olderThanMs && e.seenMs < olderThanMs) {
        this.events.delete(id);
        events++;
      }
    this.eventsByKey = null;
    for (const [id, receivedMs] of this.batches) if (receivedMs < olderThanMs) this.batches.delete(id);
    return { observations: observationsBefore - this.observationEnds.length, heartbeats, events };
  }

  sizeBytes(): number {
    return 0;
  }

  close(): void {
    // nothing to release
  }
}

const MAP_SET = 0;
const LIST_ADD = 1;
const LIST_REMOVED = 2;
/** In an undo entry: the key was not in the map. */
const ABSENT = Symbol('absent');

/** Undoes the entries of `undo` (four slots each) after `mark`, latest first, and drops them. */
function undoTo(undo: unknown[], mark: number): void {
  for (let i = undo.length - 4; i >= mark; i -= 4) {
    const what = undo[i + 2];
    switch (undo[i]) {
      case MAP_SET: {
        const map = undo[i + 1] as Map<unknown, unknown>;
        if (what === ABSENT) map.delete(undo[i + 3]);
        else map.set(undo[i + 3], what);
        break;
      }
      case LIST_ADD: {
        const list = undo[i + 1] as unknown[];
        list.splice(list.indexOf(what), 1);
        break;
      }
      case LIST_REMOVED:
        (undo[i + 1] as unknown[]).push(what);
        break;
    }
  }
  undo.length = mark;
}

/** The list of `key` in a per-key index, made empty if it has none. */
function keyList(byKey: Map<string, EventRow[]>, key: string): EventRow[] {
  let list = byKey.get(key);
  if (list === undefined) {
    list = [];
    byKey.set(key, list);
  }
  return list;
}

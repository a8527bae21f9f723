/**
 * Drives correlation in the live daemon: every CloudTrail record (from log
 * files or EventBridge) is normalized, judged against the copy of its eventID
 * kept so far (event-identity.ts: a copy from the trail supersedes a pushed
 * one that differs; other disagreements are recorded and dropped) and decided
 * by the pure rules over an evidence snapshot. Records come in batches (a
 * file, a POST): the evidence the batch may need (evidence-needs.ts) is read
 * once, before any record is decided, and the records are then judged and
 * decided in one transaction (a record that fails is undone alone: the batch
 * is then decided again, a savepoint each); what the decisions tell the world
 * happens after the commit. A finding whose evidence may
 * still be on its way waits in `pending` for the grace period and is decided
 * again then; suppressions and ignores are final at once.
 *
 *   batch ─▶ normalize all ─▶ evidence snapshot (bounded queries) ─▶ one transaction; for each record (after a
 *                                                                    record failed: again, each in a savepoint):
 *
 *   record ─▶ judge copy ─┬─ new ────────────────────────────────────┐
 *                         ├─ duplicate ─▶ (note a more trusted origin)│
 *                         ├─ conflict ─▶ record, drop                 │
 *                         └─ supersede ─▶ record, withdraw the old ───┴▶ decide ─┬─ ignored / suppressed ─▶ store decision
 *                                         decision and pending row               └─ finding ─┬─ within grace ─▶ pending ─(tick)─▶ decide again
 *                                                                                            └─ final ─▶ store decision, merge finding, sinks
 */
import type { Logger } from '../../common/log/logger.js';
import { PairMap } from '../../common/collections/pair-map.js';
import { boundDepth } from '../../common/json/bounded-depth.js';
import { maskAccessKeyId } from '../../common/log/redact.js';
import { normalizeRecord, instanceCredentialKind, type CloudTrailEvent } from '../cloudtrail/parse.js';
import { copySummary, eventFingerprint, judgeCopy, type CopyVerdict, type EventOrigin } from '../correlate/event-identity.js';
import {
  decide,
  isProvisional,
  type CompiledRegistry,
  type CorrelationContext,
  type CorrelationPolicy,
  type Decision,
  type EvidenceView,
  type EvidenceNeeds,
  type InventoryView,
  EMPTY_INVENTORY,
} from '../correlate/decide.js';
import { evidenceNeeds } from '../correlate/evidence-needs.js';
import { isoTime } from '../../common/time/iso-time.js';
import { findingContextOf, findingFromDecision, findingId, mergeFinding, type Finding } from '../findings/shape.js';
import type { FindingsSink } from '../findings/findings-sink.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DecidedEvent, DetectorStore, KeptEvent, StoredDecision, StoredEvent, StoreTx } from '../store/store.js';
import { laterIso, RESOLVABLE_RULES } from './finding-resolution.js';

export type RecordOutcome = 'decided' | 'pending' | 'invalid' | 'duplicate' | 'conflict' | 'not-instance-credential' | 'failed';

export interface EngineOptions {
  store: DetectorStore;
  registry: () => CompiledRegistry;
  policy: () => CorrelationPolicy;
  graceMs: () => number;
  /** The instance inventory of now (none: every binding is unknown). */
  inventory?: () => InventoryView;
  sink: Pick<FindingsSink, 'emit'>;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
  /** Called inside the transaction that raised or updated a finding, with its handle (the Security Hub outbox). */
  findingChanged?: (tx: StoreTx, findingId: string) => Promise<void>;
  /**
   * Told every final decision, once per event, in the order they are made (replay prints them):
   * stored ones after they are saved, and the "not instance credentials" ignores the daemon counts
   * without storing.
   */
  decided?: (decision: Decision, event: CloudTrailEvent) => void;
  /**
   * false: a finding decision is stored and told like any other, but no finding is built from it
   * (none merged or stored, no occurrence kept, the sink and `findingChanged` not called). Only for
   * a caller that never reads a finding back: a replay that prints decisions, where building them
   * was a fifth of the time spent. The decisions are the same either way. Default true.
   */
  findings?: boolean;
}

export class CorrelationEngine {
  private newestEventMs = 0;
  /** The counters' children by label value, looked up once each (labels are hashed on every lookup). */
  private readonly recordCounters = new Map<string, { inc(n?: number): void }>();
  private readonly decisionCounters = new PairMap<{ inc(n?: number): void }>();
  /** Records and decisions counted but not yet added to their counters (added once per counter and batch: each add hashes its labels). */
  private readonly tally = new Tally();

  constructor(private readonly opts: EngineOptions) {}

  /** One record: a batch of one (see processBatch). */
  async processRecord(input: unknown, origin: EventOrigin): Promise<RecordOutcome> {
    const [outcome] = await this.processBatch([input], origin);
    return outcome ?? 'failed';
  }

  /**
   * Decides a batch of records in order, one outcome per record. The evidence for the whole batch
   * is read first, in a bounded number of queries; then the records are judged and decided in one
   * transaction (when one fails, that transaction is rolled back and the batch decided again, each
   * record in a savepoint of its own), and what the decisions tell the world (metrics,
   * the decision log lines, the sink, `decided`) happens once that transaction has committed. Never
   * throws: a record nested too deep is kept in a truncated form (counted), and a record whose
   * processing fails anyway is undone alone, counted as `failed` and skipped, so one record can
   * neither stop the daemon nor the records after it. When the batch's transaction cannot commit,
   * its records are decided again one transaction each, so only the records that fail alone fail.
   */
  async processBatch(inputs: readonly unknown[], origin: EventOrigin): Promise<RecordOutcome[]> {
    const { metrics, logger } = this.opts;
    const outcomes: RecordOutcome[] = new Array<RecordOutcome>(inputs.length).fill('failed');
    const work: Work[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const { value: raw, truncated } = boundDepth(inputs[i]);
      if (truncated) metrics.truncatedRecords.inc({ input: 'cloudtrail' });
      try {
        const n = normalizeRecord(raw);
        if (n.kind === 'invalid') {
          metrics.cloudtrailRecords.inc({ outcome: 'invalid' });
          logger.debug({ event: 'cloudtrail_record_invalid', reason: n.reason }, 'skipped an invalid CloudTrail record');
          outcomes[i] = 'invalid';
          continue;
        }
        work.push({ i, raw, event: n.event, instance: instanceCredentialKind(n.event) !== 'other' });
      } catch (err) {
        this.failed(raw, err);
      }
    }
    if (work.length === 0) return outcomes;
    const ctx = await this.context(work.flatMap((w) => (w.instance ? [w.event] : [])));
    for (const w of work) this.noteEventTime(w.event.eventTimeMs);
    // The findings to lock are worked out once: a retry (whole, or record by record) locks its own part again.
    if (this.opts.store.shared)
      for (const w of work) {
        const id = w.instance ? this.findingToLock(w.event, ctx) : null;
        if (id !== null) w.lock = id;
      }
    // First without savepoints (a statement, or a round trip to PostgreSQL, less per record): when a
    // record fails, that transaction is rolled back whole and the batch decided again, a savepoint each.
    const first = work.length > 1 ? await this.decideTogether(work, origin, ctx, outcomes, false) : 'record-failed';
    if (first === 'committed') return outcomes;
    if (first === 'record-failed' && (await this.decideTogether(work, origin, ctx, outcomes, true)) === 'committed') return outcomes;
    for (const w of work) await this.decideTogether([w], origin, ctx, outcomes, true);
    return outcomes;
  }

  /**
   * Decides `work` in one transaction and then tells what was decided. `isolated`: each record in
   * a savepoint, so one that fails is undone alone; otherwise the first record that fails rolls the
   * transaction back ('record-failed'). Nothing is told unless the transaction committed.
   */
  private async decideTogether(
    work: readonly Work[],
    origin: EventOrigin,
    ctx: CorrelationContext,
    outcomes: RecordOutcome[],
    isolated: boolean,
  ): Promise<'committed' | 'record-failed' | 'not-committed'> {
    const told: Effects = [];
    const results = new Map<number, RecordOutcome>();
    let recordFailed = false;
    try {
      await this.opts.store.withTransaction(async (tx) => {
        if (this.opts.store.shared) await tx.lockFindings(work.flatMap((w) => (w.lock === undefined ? [] : [w.lock])));
        // Without savepoints, the slice is read and merged as a whole: its kept copies in one read, and
        // each finding it touches read once and written once, before the commit.
        const slice = isolated ? null : await this.sliceState(tx, work);
        for (const { i, raw, event, instance } of work) {
          if (!instance) {
            if (this.opts.decided !== undefined) told.push(() => this.opts.decided?.(decide(event, ctx), event));
            results.set(i, 'not-instance-credential');
            continue;
          }
          // Kept copy, conflict record, pending row or decision and finding commit together: a crash
          // cannot leave an event marked as seen but never decided.
          let outcome: Awaited<ReturnType<CorrelationEngine['judgeAndDecide']>>;
          if (slice !== null) {
            try {
              // A record that fails rolls the whole transaction back: its effects go straight to `told`.
              // A new event decided for good is queued, written with the slice's others in one call.
              const judged = this.judged(event, origin, slice.kept.get(event.eventId) ?? null);
              const decision = judged.verdict.kind === 'new' ? decide(event, ctx) : undefined;
              if (decision !== undefined && this.queued(event, judged.row, decision, told, slice)) {
                results.set(i, 'decided');
                continue;
              }
              // Any other write comes after the queued ones, as if each had been written in its turn.
              await this.writeQueued(tx, slice);
              outcome = await this.judgeAndDecide(tx, event, raw, ctx, told, slice, judged, decision);
            } catch (err) {
              recordFailed = true;
              throw err;
            }
          } else {
            const effects: Effects = [];
            try {
              outcome = await tx.savepoint(async (part) =>
                this.judgeAndDecide(part, event, raw, ctx, effects, null, this.judged(event, origin, await part.keptCopy(event.eventId))),
              );
            } catch (err) {
              told.push(() => this.failed(raw, err));
              results.set(i, 'failed');
              continue;
            }
            for (const effect of effects) told.push(effect);
          }
          results.set(i, outcome);
        }
        if (slice !== null)
          try {
            await this.writeQueued(tx, slice);
            await this.writeFindings(tx, slice);
          } catch (err) {
            // Decided again a savepoint each, where the record whose finding cannot be written fails alone.
            recordFailed = true;
            throw err;
          }
      });
    } catch (err) {
      if (recordFailed) return 'record-failed';
      if (work.length === 1) {
        this.failed(work[0]!.raw, err);
        return 'committed';
      }
      this.opts.logger.warn(
        { event: 'cloudtrail_batch_retried', records: work.length, err },
        'could not commit a batch of CloudTrail records: deciding them one transaction each',
      );
      return 'not-committed';
    }
    // The records counted by outcome, added with the decisions' counts once per batch (a failed one is counted as it is told).
    for (const [i, outcome] of results) {
      outcomes[i] = outcome;
      if (outcome === 'failed') continue;
      const label = outcome === 'pending' ? 'decided' : outcome === 'not-instance-credential' ? 'not_instance_credential' : outcome;
      this.tally.add(this.recordsCounted(label));
    }
    try {
      for (const tell of told) tell();
    } finally {
      this.tally.flush();
    }
    return 'committed';
  }

  /**
   * On a store other detectors write too: the finding this event may raise or update, locked
   * before any is read (all of a transaction's in one order), so that detectors merging the same
   * findings wait in line. Null when it raises none.
   */
  private findingToLock(event: CloudTrailEvent, ctx: CorrelationContext): string | null {
    if (instanceCredentialKind(event) === 'other') return null;
    try {
      const d = decide(event, ctx);
      return d.disposition === 'finding' ? findingId(d.accessKeyId, d.sourceIPAddress, d.rule) : null;
    } catch {
      // Decided again in its savepoint, where a failure is counted.
      return null;
    }
  }

  private recordsCounted(outcome: string): { inc(n?: number): void } {
    let child = this.recordCounters.get(outcome);
    if (child === undefined) {
      child = this.opts.metrics.cloudtrailRecords.labels({ outcome });
      this.recordCounters.set(outcome, child);
    }
    return child;
  }

  private decisionsCounted(disposition: string, rule: string): { inc(n?: number): void } {
    let child = this.decisionCounters.get(disposition, rule);
    if (child === undefined) {
      child = this.opts.metrics.decisions.labels({ disposition, rule });
      this.decisionCounters.set(disposition, rule, child);
    }
    return child;
  }

  private failed(raw: unknown, err: unknown): void {
    this.opts.metrics.cloudtrailRecords.inc({ outcome: 'failed' });
    this.opts.logger.error({ event: 'cloudtrail_record_failed', event_id: eventIdOf(raw), err }, 'could not process a CloudTrail record');
  }

  /** The kept copies of a slice's instance-credential events, read at once; no finding read yet. */
  private async sliceState(tx: StoreTx, work: readonly Work[]): Promise<SliceState> {
    const kept = new Map<string, KeptEvent | null>();
    for (const w of work) if (w.instance) kept.set(w.event.eventId, null);
    const ids = [...kept.keys()];
    const copies = ids.length === 0 ? [] : await tx.keptCopies(ids);
    for (let n = 0; n < ids.length; n++) {
      const copy = copies[n] ?? null;
      if (copy !== null) kept.set(ids[n]!, copy);
    }
    return { kept, findings: new Map(), changed: new Map(), queued: [] };
  }

  /**
   * Queues a new event and its decision when that decision is final and builds no finding (a
   * suppression, an ignore, or a finding decision without findings built): nothing else of the
   * store is read or written for it. False, with nothing done, for the others.
   */
  private queued(event: CloudTrailEvent, row: StoredEvent, decision: Decision, effects: Effects, slice: SliceState): boolean {
    if (this.buildsFinding(decision)) return false;
    const now = this.opts.now();
    if (isProvisional(decision, now, event.eventTimeMs, this.opts.graceMs())) return false;
    slice.kept.set(event.eventId, row);
    const queued: QueuedDecision = { event: row, decision: storedDecision(decision, event, now), stored: false };
    slice.queued.push(queued);
    effects.push(() => {
      if (queued.stored) this.tellDecision(decision, event);
    });
    return true;
  }

  /** Whether a final decision builds (or merges into) a finding: a finding decision, unless findings are off. */
  private buildsFinding(decision: Decision): boolean {
    return decision.disposition === 'finding' && this.opts.findings !== false;
  }

  /** Writes the slice's queued events and decisions, and notes which decisions were stored (and are to be told). */
  private async writeQueued(tx: StoreTx, slice: SliceState): Promise<void> {
    const queued = slice.queued;
    if (queued.length === 0) return;
    slice.queued = [];
    const stored = await tx.recordDecided(queued);
    for (let n = 0; n < queued.length; n++) queued[n]!.stored = stored[n] === true;
  }

  /** The findings a slice merged, each written once (and told to `findingChanged`) before its transaction commits. */
  private async writeFindings(tx: StoreTx, slice: SliceState): Promise<void> {
    for (const [id, nowMs] of slice.changed) {
      await tx.putFinding(id, slice.findings.get(id), nowMs);
      await this.opts.findingChanged?.(tx, id);
    }
  }

  /**
   * Writes what the copy's verdict (`judged`, against the kept copy: the slice's, or the store's
   * without a slice) asks for and decides it. With `slice`, this record's writes are noted there
   * for the records after it, and a finding is merged into the slice's (written by writeFindings);
   * without, each is read and written here. `decision`: a new event's, decided already.
   */
  private async judgeAndDecide(
    tx: StoreTx,
    event: CloudTrailEvent,
    raw: unknown,
    ctx: CorrelationContext,
    effects: Effects,
    slice: SliceState | null,
    judged: Judged,
    decision?: Decision,
  ): Promise<'decided' | 'pending' | 'duplicate' | 'conflict'> {
    const { kept, verdict, row } = judged;
    const { origin, fingerprint, summary } = row;
    switch (verdict.kind) {
      case 'new':
        await tx.recordEvent(row);
        slice?.kept.set(event.eventId, row);
        return this.decideEvent(tx, event, raw, false, ctx, effects, slice, decision);
      case 'adopt':
        await tx.vouchForEvent(event.eventId, origin, fingerprint, summary);
        slice?.kept.set(event.eventId, row);
        return 'duplicate';
      case 'duplicate':
        if (verdict.promote) {
          await tx.vouchForEvent(event.eventId, origin, fingerprint, summary);
          slice?.kept.set(event.eventId, row);
        }
        return 'duplicate';
      case 'conflict':
        await this.conflict(tx, event.eventId, 'rejected', kept?.summary ?? {}, summary, fingerprint, null, effects);
        return 'conflict';
      case 'supersede': {
        // The more trusted copy is decided as if it came first: what the other copy was decided
        // (or is waiting for) goes; a finding it raised already stays in the findings.
        const withdrawn = await tx.takeDecision('cloudtrail', event.eventId);
        await tx.removePending(event.eventId);
        await tx.replaceEvent(row);
        slice?.kept.set(event.eventId, row);
        await this.conflict(tx, event.eventId, 'superseded', summary, kept?.summary ?? {}, kept?.fingerprint ?? '', withdrawn, effects);
        return this.decideEvent(tx, event, raw, false, ctx, effects, slice);
      }
    }
  }

  /** A copy judged against the one kept; its row is also the copy kept in the slice (a KeptEvent) for the records after it. */
  private judged(event: CloudTrailEvent, origin: EventOrigin, kept: KeptEvent | null): Judged {
    const fingerprint = eventFingerprint(event);
    const row: StoredEvent = {
      eventId: event.eventId,
      accessKeyId: event.identity.accessKeyId,
      sourceIp: event.sourceIPAddress,
      eventTimeMs: event.eventTimeMs,
      vpcEndpointId: event.vpcEndpointId,
      origin,
      fingerprint,
      seenMs: this.opts.now(),
      summary: copySummary(event, origin),
    };
    return { kept, verdict: judgeCopy(kept, { origin, fingerprint }), row };
  }

  private async conflict(
    tx: StoreTx,
    eventId: string,
    resolution: 'superseded' | 'rejected',
    kept: Record<string, unknown>,
    dropped: Record<string, unknown>,
    droppedFingerprint: string,
    supersededDecision: { disposition: string; rule: string } | null,
    effects: Effects,
  ): Promise<void> {
    await tx.recordEventConflict(
      { eventId, detectedMs: this.opts.now(), resolution, kept, dropped, supersededDecision },
      droppedFingerprint,
    );
    effects.push(() => this.logConflict(eventId, resolution, kept, dropped, supersededDecision));
  }

  private logConflict(
    eventId: string,
    resolution: 'superseded' | 'rejected',
    kept: Record<string, unknown>,
    dropped: Record<string, unknown>,
    supersededDecision: { disposition: string; rule: string } | null,
  ): void {
    const { metrics, logger } = this.opts;
    metrics.cloudtrailConflicts.inc({ resolution });
    const shown = (c: Record<string, unknown>) => ({
      ...c,
      accessKeyId: typeof c.accessKeyId === 'string' ? maskAccessKeyId(c.accessKeyId) : null,
    });
    logger.warn(
      {
        event: 'cloudtrail_event_conflict',
        event_id: eventId.slice(0, 128),
        resolution,
        kept_origin: originOf(kept),
        dropped_origin: originOf(dropped),
        kept: shown(kept),
        dropped: shown(dropped),
        superseded_decision: supersededDecision,
      },
      resolution === 'superseded'
        ? `two copies of CloudTrail event ${eventId.slice(0, 128)} disagree: decided on the ${originOf(kept)} copy, not the ${originOf(dropped)} one`
        : `two copies of CloudTrail event ${eventId.slice(0, 128)} disagree: kept the ${originOf(kept)} copy, dropped the ${originOf(dropped)} one`,
    );
  }

  /**
   * The CloudTrail lag gauge follows the newest event read, whatever kind of credential it used. An
   * event time more than 5 minutes ahead of the clock is not believed: it would hide the lag for good.
   */
  private noteEventTime(eventTimeMs: number): void {
    if (eventTimeMs > this.newestEventMs && eventTimeMs <= this.opts.now() + 300_000) {
      this.newestEventMs = eventTimeMs;
      this.opts.metrics.cloudtrailNewestEvent.set(eventTimeMs / 1000);
    }
  }

  private async decideEvent(
    tx: StoreTx,
    event: CloudTrailEvent,
    raw: unknown,
    final: boolean,
    ctx: CorrelationContext,
    effects: Effects,
    slice: SliceState | null = null,
    decision: Decision = decide(event, ctx),
  ): Promise<'decided' | 'pending'> {
    const now = this.opts.now();
    if (!final && isProvisional(decision, now, event.eventTimeMs, this.opts.graceMs())) {
      await tx.addPending({
        eventId: event.eventId,
        eventTimeMs: event.eventTimeMs,
        dueMs: event.eventTimeMs + this.opts.graceMs(),
        raw,
      });
      return 'pending'; // the pending gauge is refreshed by tick(), every second
    }
    await this.finalize(tx, decision, event, now, effects, slice);
    return 'decided';
  }

  /** The registry, policy and inventory of now, and the evidence these events may need, read once. */
  private async context(
    events: readonly CloudTrailEvent[],
    reader: Pick<StoreTx, 'evidenceSnapshot'> = this.opts.store,
  ): Promise<CorrelationContext> {
    const registry = this.opts.registry();
    const policy = this.opts.policy();
    const evidence: EvidenceView =
      events.length === 0
        ? NO_EVIDENCE
        : await reader.evidenceSnapshot(this.opts.store.wholeEvidence ? NO_NEEDS : evidenceNeeds(events, registry, policy));
    return { registry, evidence, policy, inventory: this.opts.inventory?.() ?? EMPTY_INVENTORY };
  }

  private async finalize(
    tx: StoreTx,
    decision: Decision,
    event: CloudTrailEvent,
    now: number,
    effects: Effects,
    slice: SliceState | null,
  ): Promise<void> {
    const stored = await tx.saveDecision(storedDecision(decision, event, now));
    if (!stored) return;
    effects.push(() => this.tellDecision(decision, event));
    if (!this.buildsFinding(decision)) return;
    const nowIso = isoTime(now);
    const fresh = findingFromDecision(decision, event, findingContextOf(event, nowIso));
    let existing: Finding | null;
    if (slice?.findings.has(fresh.id)) existing = slice.findings.get(fresh.id) ?? null;
    else existing = (await tx.getFinding(fresh.id)) as Finding | null;
    const merged = existing ? { ...mergeFinding(existing, fresh), updatedAt: laterIso(now, existing.updatedAt) } : fresh;
    if (slice !== null) {
      slice.findings.set(merged.id, merged);
      slice.changed.set(merged.id, now);
    } else await tx.putFinding(merged.id, merged, now);
    if (RESOLVABLE_RULES.has(decision.rule))
      await tx.addFindingOccurrence({ eventId: event.eventId, findingId: merged.id, eventTimeMs: event.eventTimeMs, event }, now);
    if (slice === null) await this.opts.findingChanged?.(tx, merged.id);
    effects.push(() => {
      this.opts.metrics.findingsRaised.inc({ rule: decision.rule });
      void this.opts.sink.emit(merged);
    });
  }

  /** A decision committed: counted, logged, and told to `decided`. */
  private tellDecision(decision: Decision, event: CloudTrailEvent): void {
    const { logger } = this.opts;
    this.opts.decided?.(decision, event);
    this.tally.add(this.decisionsCounted(decision.disposition, decision.rule));
    if (!logger.isLevelEnabled('info')) return;
    logger.info(
      {
        event: 'decision',
        event_id: decision.eventId,
        event_time: decision.eventTime,
        key: decision.accessKeyId ? maskAccessKeyId(decision.accessKeyId) : null,
        source_ip: decision.sourceIPAddress,
        disposition: decision.disposition,
        rule: decision.rule,
        gateway_id: decision.gatewayId,
        instance_id: decision.instanceId,
      },
      decision.reason,
    );
  }

  /** Decides again the findings whose grace period has ended (by `nowMs`: replay ends every grace period at once). */
  async tick(limit = 1_000, nowMs = this.opts.now()): Promise<number> {
    const { store, metrics, logger } = this.opts;
    // One transaction, a savepoint per row; told after the commit. The due rows are claimed in it
    // (another detector on the same store skips them), and their evidence is read after the claim. A
    // row that fails is dropped, not retried: it would fail on every tick and hold up the rest.
    const told: Effects = [];
    let claimed = 0;
    try {
      await store.withTransaction(async (tx) => {
        const due = await tx.duePending(nowMs, limit);
        claimed = due.length;
        if (due.length === 0) return;
        const events = due.map((p) => {
          const n = normalizeRecord(p.raw);
          return n.kind === 'event' ? n.event : null;
        });
        const ctx = await this.context(
          events.filter((e) => e !== null),
          tx,
        );
        if (store.shared) {
          const ids = events.map((e) => (e === null ? null : this.findingToLock(e, ctx)));
          await tx.lockFindings(ids.filter((id) => id !== null));
        }
        for (const [i, p] of due.entries()) {
          const event = events[i] ?? null;
          const effects: Effects = [];
          try {
            await tx.savepoint(async (part) => {
              if (event !== null) await this.decideEvent(part, event, p.raw, true, ctx, effects);
              await part.removePending(p.eventId);
            });
            told.push(...effects);
          } catch (err) {
            await tx.removePending(p.eventId);
            told.push(() => this.pendingFailed(p.eventId, err));
          }
        }
      });
    } catch (err) {
      // Not committed: every row stays pending for the next tick.
      logger.error(
        { event: 'cloudtrail_pending_failed', rows: claimed, err },
        'could not commit the decisions of pending CloudTrail records',
      );
      return 0;
    }
    try {
      for (const tell of told) tell();
    } finally {
      this.tally.flush();
    }
    metrics.pendingDecisions.set(await store.pendingCount());
    return claimed;
  }

  private pendingFailed(eventId: string, err: unknown): void {
    this.opts.metrics.cloudtrailRecords.inc({ outcome: 'failed' });
    this.opts.logger.error({ event: 'cloudtrail_record_failed', event_id: eventId, err }, 'could not decide a pending CloudTrail record');
  }
}

/** A batch's record: its place in the batch, as it came, and normalized. */
interface Work {
  i: number;
  raw: unknown;
  event: CloudTrailEvent;
  /** Made with instance credentials (the others are only counted and told as ignored). */
  instance: boolean;
  /** On a shared store: the finding this record may raise or update, locked by its transaction. */
  lock?: string;
}

/**
 * What a transaction deciding a slice without savepoints has read and merged so far. A record that
 * fails rolls the whole transaction back, so nothing here outlives a failure.
 */
interface SliceState {
  /** The kept copy of each instance-credential event ID of the slice, as this transaction has left it. */
  kept: Map<string, KeptEvent | null>;
  /** Findings read or merged by this transaction, by id (null: none stored). */
  findings: Map<string, Finding | null>;
  /** The findings merged, with the time of their latest merge: written once each before the commit. */
  changed: Map<string, number>;
  /** New events decided for good, not written yet (written together before any other write, and before the commit). */
  queued: QueuedDecision[];
}

/** A queued new event and its decision; `stored` once written, when the decision was stored (and is to be told). */
interface QueuedDecision extends DecidedEvent {
  stored: boolean;
}

/** A copy of an event judged against the one kept (`kept`), and the row that would keep it. */
interface Judged {
  kept: KeptEvent | null;
  verdict: CopyVerdict;
  row: StoredEvent;
}

/** A CloudTrail decision as the store keeps it. */
function storedDecision(decision: Decision, event: CloudTrailEvent, decidedMs: number): StoredDecision {
  return {
    kind: 'cloudtrail',
    subjectId: decision.eventId,
    timeMs: event.eventTimeMs,
    decidedMs,
    disposition: decision.disposition,
    rule: decision.rule,
    accessKeyId: decision.accessKeyId,
    sourceIp: decision.sourceIPAddress,
    gatewayId: decision.gatewayId,
    detail: decision,
  };
}

/** Increments gathered per counter, added at once (prom-client hashes a child's labels on every add). */
class Tally {
  private readonly counts = new Map<{ inc(n?: number): void }, number>();

  add(counter: { inc(n?: number): void }): void {
    this.counts.set(counter, (this.counts.get(counter) ?? 0) + 1);
  }

  flush(): void {
    for (const [counter, n] of this.counts) counter.inc(n);
    this.counts.clear();
  }
}

/** What committed decisions tell the world (metrics, log lines, the sink, `decided`), in order, once committed. */
type Effects = (() => void)[];

/** The needs handed to a store whose snapshot is its whole evidence. */
const NO_NEEDS: EvidenceNeeds = { keys: [], endpoints: [], liveness: [] };

/** The evidence of a batch that needs none (no instance credentials in it). */
const NO_EVIDENCE: EvidenceView = {
  keySightings: () => [],
  endpointSightings: () => [],
  heartbeatNear: () => false,
};

function originOf(summary: Record<string, unknown>): string {
  return typeof summary.origin === 'string' ? summary.origin : 'earlier';
}

function eventIdOf(raw: unknown): string | null {
  const id = typeof raw === 'object' && raw !== null ? (raw as { eventID?: unknown }).eventID : undefined;
  return typeof id === 'string' ? id.slice(0, 128) : null;
}

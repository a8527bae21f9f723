/**
 * Drives correlation in the live daemon: every CloudTrail record (from log
 * files or EventBridge) is normalized, judged against the copy of its eventID
 * kept so far (event-identity.ts: a copy from the trail supersedes a pushed
 * one that differs; other disagreements are recorded and dropped) and decided
 * by the pure rules over the store's evidence. A finding whose evidence may
 * still be on its way waits in `pending` for the grace period and is decided
 * again then; suppressions and ignores are final at once.
 *
 *   record ─▶ normalize ─▶ judge copy ─┬─ new ────────────────────────────────────┐
 *                                      ├─ duplicate ─▶ (note a more trusted origin)│
 *                                      ├─ conflict ─▶ record, drop                 │
 *                                      └─ supersede ─▶ record, withdraw the old ───┴▶ decide ─┬─ ignored / suppressed ─▶ store decision
 *                                                      decision and pending row               └─ finding ─┬─ within grace ─▶ pending ─(tick)─▶ decide again
 *                                                                                                         └─ final ─▶ store decision, merge finding, sinks
 */
import type { Logger } from '../../common/log/logger.js';
import { boundDepth } from '../../common/json/bounded-depth.js';
import { maskAccessKeyId } from '../../common/log/redact.js';
import { normalizeRecord, instanceCredentialKind, type CloudTrailEvent } from '../cloudtrail/parse.js';
import { copySummary, eventFingerprint, judgeCopy, type EventOrigin } from '../correlate/event-identity.js';
import {
  decide,
  isProvisional,
  type CompiledRegistry,
  type CorrelationContext,
  type CorrelationPolicy,
  type Decision,
} from '../correlate/decide.js';
import { findingContextOf, findingFromDecision, mergeFinding, type Finding } from '../findings/shape.js';
import type { FindingsSink } from '../findings/findings-sink.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore } from '../store/store.js';
import { laterIso, RESOLVABLE_RULES } from './finding-resolution.js';

export type RecordOutcome = 'decided' | 'pending' | 'invalid' | 'duplicate' | 'conflict' | 'not-instance-credential' | 'failed';

export interface EngineOptions {
  store: DetectorStore;
  registry: () => CompiledRegistry;
  policy: () => CorrelationPolicy;
  graceMs: () => number;
  sink: Pick<FindingsSink, 'emit'>;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
  /** Called inside the transaction that raised or updated a finding (the Security Hub outbox). */
  findingChanged?: (findingId: string) => void;
  /**
   * Told every final decision, once per event, in the order they are made (replay prints them):
   * stored ones after they are saved, and the "not instance credentials" ignores the daemon counts
   * without storing.
   */
  decided?: (decision: Decision, event: CloudTrailEvent) => void;
}

export class CorrelationEngine {
  private newestEventMs = 0;

  constructor(private readonly opts: EngineOptions) {}

  /**
   * Never throws: a record nested too deep is kept in a truncated form (counted), and a record
   * whose processing fails anyway is counted as `failed` and skipped, so one record can neither
   * stop the daemon nor the records after it.
   */
  processRecord(input: unknown, origin: EventOrigin): RecordOutcome {
    const { value: raw, truncated } = boundDepth(input);
    if (truncated) this.opts.metrics.truncatedRecords.inc({ input: 'cloudtrail' });
    try {
      return this.processBounded(raw, origin);
    } catch (err) {
      this.opts.metrics.cloudtrailRecords.inc({ outcome: 'failed' });
      this.opts.logger.error({ event: 'cloudtrail_record_failed', event_id: eventIdOf(raw), err }, 'could not process a CloudTrail record');
      return 'failed';
    }
  }

  private processBounded(raw: unknown, origin: EventOrigin): RecordOutcome {
    const n = normalizeRecord(raw);
    if (n.kind === 'invalid') {
      this.opts.metrics.cloudtrailRecords.inc({ outcome: 'invalid' });
      this.opts.logger.debug({ event: 'cloudtrail_record_invalid', reason: n.reason }, 'skipped an invalid CloudTrail record');
      return 'invalid';
    }
    const event = n.event;
    this.noteEventTime(event.eventTimeMs);
    if (instanceCredentialKind(event) === 'other') {
      this.opts.metrics.cloudtrailRecords.inc({ outcome: 'not_instance_credential' });
      this.opts.decided?.(decide(event, this.context()), event);
      return 'not-instance-credential';
    }
    // Kept copy, conflict record, pending row or decision and finding commit together: a crash
    // cannot leave an event marked as seen but never decided.
    const outcome = this.opts.store.transaction(() => this.judgeAndDecide(event, raw, origin));
    this.opts.metrics.cloudtrailRecords.inc({ outcome: outcome === 'pending' ? 'decided' : outcome });
    return outcome;
  }

  private judgeAndDecide(event: CloudTrailEvent, raw: unknown, origin: EventOrigin): 'decided' | 'pending' | 'duplicate' | 'conflict' {
    const store = this.opts.store;
    const fingerprint = eventFingerprint(event);
    const summary = copySummary(event, origin);
    const kept = store.keptCopy(event.eventId);
    const verdict = judgeCopy(kept, { origin, fingerprint });
    const row = {
      eventId: event.eventId,
      accessKeyId: event.identity.accessKeyId,
      sourceIp: event.sourceIPAddress,
      eventTimeMs: event.eventTimeMs,
      vpcEndpointId: event.vpcEndpointId,
      origin,
      fingerprint,
      seenMs: this.opts.now(),
      summary,
    };
    switch (verdict.kind) {
      case 'new':
        store.recordEvent(row);
        return this.decideEvent(event, raw, false);
      case 'adopt':
        store.vouchForEvent(event.eventId, origin, fingerprint, summary);
        return 'duplicate';
      case 'duplicate':
        if (verdict.promote) store.vouchForEvent(event.eventId, origin, fingerprint, summary);
        return 'duplicate';
      case 'conflict':
        this.conflict(event.eventId, 'rejected', kept?.summary ?? {}, summary, fingerprint, null);
        return 'conflict';
      case 'supersede': {
        // The more trusted copy is decided as if it came first: what the other copy was decided
        // (or is waiting for) goes; a finding it raised already stays in the findings.
        const withdrawn = store.takeDecision('cloudtrail', event.eventId);
        store.removePending(event.eventId);
        store.replaceEvent(row);
        this.conflict(event.eventId, 'superseded', summary, kept?.summary ?? {}, kept?.fingerprint ?? '', withdrawn);
        return this.decideEvent(event, raw, false);
      }
    }
  }

  private conflict(
    eventId: string,
    resolution: 'superseded' | 'rejected',
    kept: Record<string, unknown>,
    dropped: Record<string, unknown>,
    droppedFingerprint: string,
    supersededDecision: { disposition: string; rule: string } | null,
  ): void {
    const { store, metrics, logger } = this.opts;
    store.recordEventConflict({ eventId, detectedMs: this.opts.now(), resolution, kept, dropped, supersededDecision }, droppedFingerprint);
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

  private decideEvent(event: CloudTrailEvent, raw: unknown, final: boolean): 'decided' | 'pending' {
    const decision = decide(event, this.context());
    const now = this.opts.now();
    if (!final && isProvisional(decision, now, event.eventTimeMs, this.opts.graceMs())) {
      this.opts.store.addPending({
        eventId: event.eventId,
        eventTimeMs: event.eventTimeMs,
        dueMs: event.eventTimeMs + this.opts.graceMs(),
        raw,
      });
      return 'pending'; // the pending gauge is refreshed by tick(), every second
    }
    this.finalize(decision, event, now);
    return 'decided';
  }

  private context(): CorrelationContext {
    return { registry: this.opts.registry(), evidence: this.opts.store, policy: this.opts.policy() };
  }

  private finalize(decision: Decision, event: CloudTrailEvent, now: number): void {
    const { store, metrics, logger } = this.opts;
    const stored = store.saveDecision({
      kind: 'cloudtrail',
      subjectId: decision.eventId,
      timeMs: event.eventTimeMs,
      decidedMs: now,
      disposition: decision.disposition,
      rule: decision.rule,
      accessKeyId: decision.accessKeyId,
      sourceIp: decision.sourceIPAddress,
      gatewayId: decision.gatewayId,
      detail: decision,
    });
    if (!stored) return;
    this.opts.decided?.(decision, event);
    metrics.decisions.inc({ disposition: decision.disposition, rule: decision.rule });
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
    if (decision.disposition !== 'finding') return;
    metrics.findingsRaised.inc({ rule: decision.rule });
    const nowIso = new Date(now).toISOString();
    const fresh = findingFromDecision(decision, event, findingContextOf(event, nowIso));
    const existing = store.getFinding(fresh.id) as Finding | null;
    const merged = existing ? { ...mergeFinding(existing, fresh), updatedAt: laterIso(now, existing.updatedAt) } : fresh;
    store.putFinding(merged.id, merged, now);
    if (RESOLVABLE_RULES.has(decision.rule))
      store.addFindingOccurrence({ eventId: event.eventId, findingId: merged.id, eventTimeMs: event.eventTimeMs, event }, now);
    this.opts.findingChanged?.(merged.id);
    void this.opts.sink.emit(merged);
  }

  /** Decides again the findings whose grace period has ended (by `nowMs`: replay ends every grace period at once). */
  tick(limit = 1_000, nowMs = this.opts.now()): number {
    const due = this.opts.store.duePending(nowMs, limit);
    for (const p of due) {
      try {
        this.opts.store.transaction(() => {
          const n = normalizeRecord(p.raw);
          if (n.kind === 'event') this.decideEvent(n.event, p.raw, true);
          this.opts.store.removePending(p.eventId);
        });
      } catch (err) {
        // Dropped, not retried: a row that fails once would fail on every tick and hold up the rest.
        this.opts.store.removePending(p.eventId);
        this.opts.metrics.cloudtrailRecords.inc({ outcome: 'failed' });
        this.opts.logger.error(
          { event: 'cloudtrail_record_failed', event_id: p.eventId, err },
          'could not decide a pending CloudTrail record',
        );
      }
    }
    this.opts.metrics.pendingDecisions.set(this.opts.store.pendingCount());
    return due.length;
  }
}

function originOf(summary: Record<string, unknown>): string {
  return typeof summary.origin === 'string' ? summary.origin : 'earlier';
}

function eventIdOf(raw: unknown): string | null {
  const id = typeof raw === 'object' && raw !== null ? (raw as { eventID?: unknown }).eventID : undefined;
  return typeof id === 'string' ? id.slice(0, 128) : null;
}

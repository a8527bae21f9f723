/**
 * Findings that a later decision resolves. A finding raised because evidence
 * was missing — the gateway was silent (`gateway-unverified`), or alive but
 * without a sighting of the key (`gateway-unattested`, `unrouted-client`) —
 * may be attested by telemetry that arrives after the grace period (an agent
 * cut off from the detector ships its spool when it is back). Its occurrences
 * are kept, decided again by the same rules over the evidence stored now, and
 * when none of them is a finding any more the finding is resolved: archived,
 * with the new decision as its resolution, and sent to the findings sinks and
 * Security Hub like any update. `external` findings are not re-examined:
 * their source is no gateway's, which no telemetry can change.
 *
 *   finding (rules above) ─▶ occurrence kept (normalised event) ── pruned with the evidence (store.retention): final
 *   sweep (every 30 s): unresolved occurrences, least recently checked first ─▶ their evidence, read once ─▶ decide() again
 *     └─ not a finding ─▶ occurrence resolved ─▶ every kept occurrence resolved, and every occurrence kept?
 *          └─ transaction { finding archived + resolution + later updatedAt, outbox } ─ commit ─▶ file, webhook
 *
 * A new occurrence of a resolved finding reopens it (mergeFinding drops the resolution).
 */
import type { Logger } from '../../common/log/logger.js';
import { isoFromMs } from '../../common/time/iso.js';
import type { CloudTrailEvent } from '../cloudtrail/parse.js';
import {
  decide,
  EMPTY_INVENTORY,
  type CompiledRegistry,
  type CorrelationPolicy,
  type Decision,
  type InventoryView,
  type RuleName,
} from '../correlate/decide.js';
import { evidenceNeeds } from '../correlate/evidence-needs.js';
import type { FindingsSink } from '../findings/findings-sink.js';
import type { Finding } from '../findings/shape.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore, FindingOccurrence, StoreTx } from '../store/store.js';

/** Rules whose findings late telemetry can overturn. */
export const RESOLVABLE_RULES: ReadonlySet<RuleName> = new Set<RuleName>(['unrouted-client', 'gateway-unverified', 'gateway-unattested']);

/** How often the daemon re-examines kept occurrences. */
export const RESOLUTION_INTERVAL_MS = 30_000;

export interface FindingResolutionOptions {
  store: DetectorStore;
  registry: () => CompiledRegistry;
  policy: () => CorrelationPolicy;
  /** The instance inventory of now (none: every binding is unknown). */
  inventory?: () => InventoryView;
  /** Occurrences older than this have lost their evidence to pruning: not re-examined. */
  retentionMs: () => number;
  sink: FindingsSink;
  /** Called inside the transaction that changed a finding, with its handle (the Security Hub outbox). */
  findingChanged: (tx: StoreTx, findingId: string) => Promise<void>;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
}

/** A time strictly after `previousIso`: Security Hub ignores an update whose UpdatedAt is not later than the last. */
export function laterIso(nowMs: number, previousIso: string): string {
  const previous = Date.parse(previousIso);
  return isoFromMs(Number.isFinite(previous) && previous >= nowMs ? previous + 1 : nowMs);
}

export class FindingResolution {
  constructor(private readonly opts: FindingResolutionOptions) {}

  /** Re-examines up to `limit` occurrences; returns the findings resolved. Never throws. */
  async sweep(limit = 500): Promise<number> {
    const { store, logger } = this.opts;
    const now = this.opts.now();
    let resolved: { finding: Finding; decision: Decision }[];
    try {
      resolved = await store.withTransaction(async (tx) =>
        this.resolveIn(tx, await tx.occurrencesToRecheck(now - this.opts.retentionMs(), limit), now),
      );
    } catch (err) {
      logger.error({ event: 'finding_resolution_failed', err }, 'could not re-examine findings');
      return 0;
    }
    // After the commit: the sinks see only what the store holds.
    for (const { finding: f, decision: d } of resolved) {
      this.opts.metrics.findingsResolved.inc({ rule: f.egressWitness.rule });
      logger.info(
        {
          event: 'finding_resolved',
          finding_id: f.id,
          rule: f.egressWitness.rule,
          resolved_by: d.rule,
          gateway_id: d.gatewayId,
          occurrences: f.service.count,
        },
        `finding ${f.id} (${f.egressWitness.rule}) resolved: ${d.reason}`,
      );
      void this.opts.sink.emit(f);
    }
    return resolved.length;
  }

  private async resolveIn(tx: StoreTx, occurrences: FindingOccurrence[], now: number): Promise<{ finding: Finding; decision: Decision }[]> {
    const registry = this.opts.registry();
    const policy = this.opts.policy();
    const events = occurrences.map((o) => o.event as CloudTrailEvent);
    const evidence = await tx.evidenceSnapshot(evidenceNeeds(events, registry, policy));
    const ctx = { registry, evidence, policy, inventory: this.opts.inventory?.() ?? EMPTY_INVENTORY };
    const touched = new Map<string, { decision: Decision; eventTimeMs: number }>();
    for (const o of occurrences) {
      let d: Decision;
      try {
        d = decide(o.event as CloudTrailEvent, ctx);
      } catch (err) {
        this.opts.logger.error({ event: 'finding_resolution_failed', event_id: o.eventId, err }, 'could not decide an occurrence again');
        await tx.markOccurrenceChecked(o.eventId, now, false);
        continue;
      }
      const isResolved = d.disposition !== 'finding';
      await tx.markOccurrenceChecked(o.eventId, now, isResolved);
      const prev = touched.get(o.findingId);
      if (isResolved && (!prev || o.eventTimeMs >= prev.eventTimeMs)) touched.set(o.findingId, { decision: d, eventTimeMs: o.eventTimeMs });
    }
    const out: { finding: Finding; decision: Decision }[] = [];
    for (const [findingId, { decision }] of touched) {
      const f = (await tx.getFinding(findingId)) as Finding | null;
      if (f === null || f.service.archived) continue;
      const counts = await tx.occurrenceCounts(findingId);
      // Every occurrence must be resolved, and every one kept (older ones were pruned, or raised before they were kept).
      if (counts.unresolved > 0 || counts.stored < f.service.count) continue;
      const updatedAt = laterIso(now, f.updatedAt);
      const finding: Finding = {
        ...f,
        updatedAt,
        service: { ...f.service, archived: true },
        egressWitness: {
          ...f.egressWitness,
          resolution: { resolvedAt: updatedAt, rule: decision.rule, reason: decision.reason, evidence: decision.evidence },
        },
      };
      await tx.putFinding(findingId, finding, now);
      await this.opts.findingChanged(tx, findingId);
      out.push({ finding, decision });
    }
    return out;
  }
}

/**
 * The detector's decision pipeline: CloudTrail records through the correlation
 * engine, GuardDuty findings through the processor, both over one store. The
 * daemon runs it over SQLite; `replay` runs this same pipeline over a
 * MemoryStore, so forensics give the daemon's answer, record for record.
 *
 *   CloudTrail record ─▶ cloudtrail (CorrelationEngine) ─┐
 *                                                         ├─▶ store (decisions, findings, events seen) ─▶ sinks
 *   GuardDuty finding ─▶ guardduty (GuardDutyProcessor) ──┘
 */
import type { Logger } from '../../common/log/logger.js';
import type { CloudTrailEvent } from '../cloudtrail/parse.js';
import type { CompiledRegistry, CorrelationPolicy, Decision } from '../correlate/decide.js';
import type { FindingsSink } from '../findings/findings-sink.js';
import type { GuardDutyApi } from '../guardduty/guardduty-api.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore } from '../store/store.js';
import { CorrelationEngine } from './correlation-engine.js';
import { GuardDutyProcessor } from './guardduty-processor.js';

export interface PipelineOptions {
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
  /** Told every final CloudTrail decision (see CorrelationEngine). */
  decided?: (decision: Decision, event: CloudTrailEvent) => void;
  guardduty: {
    mode: () => 'report' | 'archive';
    /** The detector and region whose findings are read and archived. */
    target: () => { region: string | null; detectorId: string | null };
    webhookKept: () => boolean;
    api: GuardDutyApi | null;
    retryBaseMs?: number;
  };
}

export class DecisionPipeline {
  readonly cloudtrail: CorrelationEngine;
  readonly guardduty: GuardDutyProcessor;

  constructor(o: PipelineOptions) {
    const shared = {
      store: o.store,
      registry: o.registry,
      policy: o.policy,
      sink: o.sink,
      metrics: o.metrics,
      logger: o.logger,
      now: o.now,
    };
    this.cloudtrail = new CorrelationEngine({
      ...shared,
      graceMs: o.graceMs,
      ...(o.findingChanged ? { findingChanged: o.findingChanged } : {}),
      ...(o.decided ? { decided: o.decided } : {}),
    });
    this.guardduty = new GuardDutyProcessor({ ...shared, ...o.guardduty });
  }

  close(): void {
    this.guardduty.close();
  }
}

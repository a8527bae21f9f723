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
import type { GuardDutyApi } from '../guardduty/guardduty-api.js';
import { CorrelationEngine, type EngineOptions } from './correlation-engine.js';
import { GuardDutyProcessor } from './guardduty-processor.js';

/** The engine's options, and the GuardDuty side that shares its store, sink and clock. */
export interface PipelineOptions extends EngineOptions {
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
      ...(o.inventory ? { inventory: o.inventory } : {}),
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
      ...(o.findings !== undefined ? { findings: o.findings } : {}),
    });
    this.guardduty = new GuardDutyProcessor({ ...shared, ...o.guardduty });
  }

  /** Stops what runs in the background (the GuardDuty archive calls); what is queued stays queued. */
  async close(): Promise<void> {
    await this.guardduty.stop();
  }
}

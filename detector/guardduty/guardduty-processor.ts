/**
 * The user's own GuardDuty findings: decide each one (pure rule in
 * decide.ts), record the decision, and in `archive` mode archive exactly the
 * attested ones — idempotently (the store remembers what was archived) and
 * with retries. Kept findings can go to the webhook, enriched with the reason
 * and the evidence.
 *
 *   EventBridge / poll ─▶ parse ─▶ decide ─▶ store decision ─┬─ archive + mode archive ─▶ ArchiveFindings (retry queue)
 *                                                            └─ keep ─▶ webhook (optional)
 */
import type { Logger } from '../../common/log/logger.js';
import { maskAccessKeyId } from '../../common/log/redact.js';
import type { CompiledRegistry, CorrelationPolicy } from '../correlate/types.js';
import type { FindingsSink } from '../findings/findings-sink.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore } from '../store/store.js';
import { parseGuardDutyFinding, decideGuardDutyFinding, type GuardDutyDecision } from './decide.js';
import type { GuardDutyApi } from './guardduty-api.js';
import { wireFinding } from './wire-shape.js';

export interface GuardDutyProcessorOptions {
  store: DetectorStore;
  registry: () => CompiledRegistry;
  policy: () => CorrelationPolicy;
  mode: () => 'report' | 'archive';
  defaults: () => { region: string | null; detectorId: string | null };
  webhookKept: () => boolean;
  api: GuardDutyApi | null;
  sink: FindingsSink;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
  retryBaseMs?: number;
}

export type ProcessResult = { kind: 'decided'; decision: GuardDutyDecision } | { kind: 'invalid'; reason: string } | { kind: 'seen' };

interface ArchiveJob {
  detectorId: string;
  region: string;
  findingId: string;
  attempts: number;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

/** The finding object, whether bare or inside an EventBridge envelope. */
function findingBody(raw: unknown): Record<string, unknown> | null {
  if (!raw || typeof raw !== 'object') return null;
  const r = raw as Record<string, unknown>;
  const inner = r['detail-type'] !== undefined && r.detail && typeof r.detail === 'object' ? r.detail : r;
  return inner as Record<string, unknown>;
}

export class GuardDutyProcessor {
  private readonly retries: ArchiveJob[] = [];
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: GuardDutyProcessorOptions) {}

  async process(input: unknown): Promise<ProcessResult> {
    const { metrics, logger, store } = this.opts;
    const raw = wireFinding(input);
    const parsed = parseGuardDutyFinding(raw);
    if (parsed.kind === 'invalid') {
      metrics.guarddutyFindings.inc({ decision: 'skipped', reason: 'invalid' });
      logger.warn({ event: 'guardduty_finding_invalid', reason: parsed.reason }, 'skipped a GuardDuty finding that could not be read');
      return parsed;
    }
    const f = parsed.finding;
    const body = findingBody(raw) ?? {};
    const version = str(body.updatedAt ?? null) ?? f.eventLastSeen ?? '';
    const subjectId = `${f.id}@${version}`;
    const before = store.decisionOf('guardduty', subjectId);
    if (before !== null) {
      // Decided already (report mode earlier, or an archive call that failed before a restart):
      // archive now if the decision was "archive" and it has not happened yet.
      if (before === 'archive') await this.archiveIfDue(f.id, f.region, body);
      return { kind: 'seen' };
    }
    let decision = decideGuardDutyFinding(f, {
      registry: this.opts.registry(),
      evidence: store,
      policy: this.opts.policy(),
      cloudTrailUses: (key, from, to) => store.cloudTrailUses(key, from, to),
    });
    decision = this.withOwnFindings(decision, f);
    const now = this.opts.now();
    store.saveDecision({
      kind: 'guardduty',
      subjectId,
      timeMs: Date.parse(f.eventLastSeen ?? '') || now,
      decidedMs: now,
      disposition: decision.decision,
      rule: decision.reason,
      accessKeyId: decision.accessKeyId,
      sourceIp: decision.remoteIp,
      gatewayId: decision.gatewayId,
      detail: decision,
    });
    metrics.guarddutyFindings.inc({ decision: decision.decision, reason: decision.reason });
    logger.info(
      { event: 'guardduty_decision', finding_id: f.id, key: decision.accessKeyId ? maskAccessKeyId(decision.accessKeyId) : null, remote_ip: decision.remoteIp, decision: decision.decision, reason: decision.reason, gateway_id: decision.gatewayId, mode: this.opts.mode() },
      `GuardDuty finding ${f.id}: ${decision.decision} (${decision.reason})`,
    );
    if (decision.decision === 'archive') await this.archiveIfDue(f.id, f.region, body);
    if (decision.decision === 'keep' && this.opts.webhookKept()) {
      void this.opts.sink.emit({ kind: 'guardduty-kept', finding: body, egressWitness: decision });
    }
    return { kind: 'decided', decision };
  }

  /**
   * The detector's own rules and the user's GuardDuty must not disagree in
   * the quiet direction: if egress-witness itself raised a finding for this
   * key within the span, the GuardDuty finding stays.
   */
  private withOwnFindings(d: GuardDutyDecision, f: { accessKeyId: string | null; eventFirstSeen: string | null; eventLastSeen: string | null }): GuardDutyDecision {
    if (d.decision !== 'archive' || !f.accessKeyId) return d;
    const w = this.opts.policy().windowMs;
    const first = Date.parse(f.eventFirstSeen ?? '');
    const last = Date.parse(f.eventLastSeen ?? '');
    if (!Number.isFinite(first) || !Number.isFinite(last)) return d;
    return this.opts.store.findingsForKey(f.accessKeyId, first - w, last + w) > 0 ? { ...d, decision: 'keep', reason: 'detector-finding' } : d;
  }

  private async archiveIfDue(findingId: string, findingRegion: string | null, body: Record<string, unknown>): Promise<void> {
    const { metrics, logger, store } = this.opts;
    if (this.opts.mode() !== 'archive' || store.guardDutyArchived(findingId)) return;
    const service = (body.service ?? {}) as Record<string, unknown>;
    const defaults = this.opts.defaults();
    const detectorId = str(service.detectorId) ?? defaults.detectorId;
    const region = findingRegion ?? defaults.region;
    if (!detectorId || !region || !this.opts.api) {
      metrics.guarddutyArchiveCalls.inc({ outcome: 'not_configured' });
      logger.error({ event: 'guardduty_archive_impossible', finding_id: findingId }, 'cannot archive: the finding names no detector/region and guardduty.detector_id/region are not set');
      return;
    }
    if (this.retries.some((j) => j.findingId === findingId)) return;
    await this.archive({ detectorId, region, findingId, attempts: 0 });
  }

  private async archive(job: ArchiveJob): Promise<void> {
    const { metrics, logger, store } = this.opts;
    if (store.guardDutyArchived(job.findingId) || !this.opts.api) return;
    try {
      await this.opts.api.archive(job.detectorId, job.region, [job.findingId]);
      store.markGuardDutyArchived([job.findingId], this.opts.now());
      metrics.guarddutyArchiveCalls.inc({ outcome: 'success' });
      logger.info({ event: 'guardduty_archived', finding_id: job.findingId }, `archived GuardDuty finding ${job.findingId}: the gateway attested the key`);
    } catch (err) {
      metrics.guarddutyArchiveCalls.inc({ outcome: 'failure' });
      job.attempts++;
      if (job.attempts >= 6) {
        logger.error({ event: 'guardduty_archive_failed', finding_id: job.findingId, err: (err as Error).message }, 'ArchiveFindings keeps failing; giving up on this finding (it stays active)');
        return;
      }
      logger.warn({ event: 'guardduty_archive_retry', finding_id: job.findingId, attempt: job.attempts, err: (err as Error).message }, 'ArchiveFindings failed; will retry');
      this.retries.push(job);
      this.scheduleRetry(job.attempts);
    }
  }

  private scheduleRetry(attempt: number): void {
    if (this.retryTimer) return;
    const delay = Math.min(300_000, (this.opts.retryBaseMs ?? 2_000) * 2 ** (attempt - 1));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      const jobs = this.retries.splice(0);
      void (async () => {
        for (const j of jobs) await this.archive(j);
      })();
    }, delay);
    this.retryTimer.unref();
  }

  /** One poll: list the active OutsideAWS findings and decide each. */
  async poll(): Promise<number> {
    const d = this.opts.defaults();
    if (!this.opts.api || !d.detectorId || !d.region) return 0;
    try {
      const findings = await this.opts.api.listOutsideAwsFindings(d.detectorId, d.region);
      for (const f of findings) await this.process(f);
      this.opts.metrics.guarddutyPolls.inc({ outcome: 'success' });
      return findings.length;
    } catch (err) {
      this.opts.metrics.guarddutyPolls.inc({ outcome: 'failure' });
      this.opts.logger.error({ event: 'guardduty_poll_failed', err: (err as Error).message }, 'GuardDuty poll failed');
      return 0;
    }
  }

  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}

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
import { boundDepth } from '../../common/json/bounded-depth.js';
import { maskAccessKeyId } from '../../common/log/redact.js';
import type { CompiledRegistry, CorrelationPolicy } from '../correlate/types.js';
import type { FindingsSink } from '../findings/findings-sink.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore } from '../store/store.js';
import { parseGuardDutyFinding, decideGuardDutyFinding, type GuardDutyDecision, type GuardDutyFindingView } from './decide.js';
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

export type ProcessResult =
  { kind: 'decided'; decision: GuardDutyDecision } | { kind: 'invalid'; reason: string } | { kind: 'seen' } | { kind: 'failed' };

interface ArchiveJob {
  detectorId: string;
  region: string;
  findingId: string;
  attempts: number;
}

export class GuardDutyProcessor {
  private readonly retries: ArchiveJob[] = [];
  /** Findings with an ArchiveFindings call in flight or queued for retry: never two at once. */
  private readonly archiving = new Set<string>();
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: GuardDutyProcessorOptions) {}

  /** Never throws: a finding nested too deep is kept truncated (counted); one that fails anyway is counted and skipped. */
  async process(input: unknown): Promise<ProcessResult> {
    const { value, truncated } = boundDepth(input);
    if (truncated) this.opts.metrics.truncatedRecords.inc({ input: 'guardduty' });
    try {
      return await this.processBounded(value);
    } catch (err) {
      this.opts.metrics.guarddutyFindings.inc({ decision: 'skipped', reason: 'failed' });
      this.opts.logger.error({ event: 'guardduty_finding_failed', err }, 'could not process a GuardDuty finding');
      return { kind: 'failed' };
    }
  }

  private async processBounded(input: unknown): Promise<ProcessResult> {
    const { metrics, logger, store } = this.opts;
    const raw = wireFinding(input);
    const parsed = parseGuardDutyFinding(raw);
    if (parsed.kind === 'invalid') {
      metrics.guarddutyFindings.inc({ decision: 'skipped', reason: 'invalid' });
      logger.warn({ event: 'guardduty_finding_invalid', reason: parsed.reason }, 'skipped a GuardDuty finding that could not be read');
      return parsed;
    }
    const f = parsed.finding;
    const version = f.updatedAt ?? f.eventLastSeen ?? '';
    const subjectId = `${f.id}@${version}`;
    const before = store.decisionOf('guardduty', subjectId);
    if (before !== null) {
      // Decided already (report mode earlier, or an archive call that failed before a restart):
      // archive now if the decision was "archive" and it has not happened yet.
      if (before === 'archive') await this.archiveIfDue(f);
      return { kind: 'seen' };
    }
    const decision = decideGuardDutyFinding(f, {
      registry: this.opts.registry(),
      evidence: store,
      policy: this.opts.policy(),
      cloudTrailUses: (key, from, to) => store.cloudTrailUses(key, from, to),
      ownFindings: (key, from, to) => store.findingsForKey(key, from, to),
    });
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
      {
        event: 'guardduty_decision',
        finding_id: f.id,
        key: decision.accessKeyId ? maskAccessKeyId(decision.accessKeyId) : null,
        remote_ip: decision.remoteIp,
        decision: decision.decision,
        reason: decision.reason,
        gateway_id: decision.gatewayId,
        mode: this.opts.mode(),
      },
      `GuardDuty finding ${f.id}: ${decision.decision} (${decision.reason})`,
    );
    if (decision.decision === 'archive') await this.archiveIfDue(f);
    if (decision.decision === 'keep' && this.opts.webhookKept()) {
      void this.opts.sink.emit({ kind: 'guardduty-kept', finding: parsed.body, egressWitness: decision });
    }
    return { kind: 'decided', decision };
  }

  private async archiveIfDue(f: GuardDutyFindingView): Promise<void> {
    const { metrics, logger, store } = this.opts;
    const findingId = f.id;
    if (this.opts.mode() !== 'archive' || store.guardDutyArchived(findingId)) return;
    const defaults = this.opts.defaults();
    const detectorId = f.detectorId ?? defaults.detectorId;
    const region = f.region ?? defaults.region;
    if (!detectorId || !region || !this.opts.api) {
      metrics.guarddutyArchiveCalls.inc({ outcome: 'not_configured' });
      logger.error(
        { event: 'guardduty_archive_impossible', finding_id: findingId },
        'cannot archive: the finding names no detector/region and guardduty.detector_id/region are not set',
      );
      return;
    }
    if (this.archiving.has(findingId)) return; // a call or a queued retry is already on it
    await this.archive({ detectorId, region, findingId, attempts: 0 });
  }

  private async archive(job: ArchiveJob): Promise<void> {
    const { metrics, logger, store } = this.opts;
    if (store.guardDutyArchived(job.findingId) || !this.opts.api) return;
    this.archiving.add(job.findingId);
    try {
      await this.opts.api.archive(job.detectorId, job.region, [job.findingId]);
      store.markGuardDutyArchived([job.findingId], this.opts.now());
      metrics.guarddutyArchiveCalls.inc({ outcome: 'success' });
      logger.info(
        { event: 'guardduty_archived', finding_id: job.findingId },
        `archived GuardDuty finding ${job.findingId}: the gateway attested the key`,
      );
    } catch (err) {
      metrics.guarddutyArchiveCalls.inc({ outcome: 'failure' });
      job.attempts++;
      if (job.attempts >= 6) {
        this.archiving.delete(job.findingId);
        logger.error(
          { event: 'guardduty_archive_failed', finding_id: job.findingId, err: (err as Error).message },
          'ArchiveFindings keeps failing; giving up on this finding (it stays active)',
        );
        return;
      }
      logger.warn(
        { event: 'guardduty_archive_retry', finding_id: job.findingId, attempt: job.attempts, err: (err as Error).message },
        'ArchiveFindings failed; will retry',
      );
      this.retries.push(job);
      this.scheduleRetry(job.attempts);
      return; // still ours: the retry queue holds it
    }
    this.archiving.delete(job.findingId);
  }

  private scheduleRetry(attempt: number): void {
    if (this.retryTimer) return;
    const delay = Math.min(300_000, (this.opts.retryBaseMs ?? 2_000) * 2 ** (attempt - 1));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      const jobs = this.retries.splice(0);
      void (async () => {
        for (const j of jobs) await this.archive(j);
      })().catch((err: unknown) => this.opts.logger.error({ event: 'guardduty_archive_failed', err }, 'ArchiveFindings retry failed'));
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

/**
 * The Security Hub sink of the outbox: each queued finding id is read from the
 * store in its current state, shaped as ASFF and imported with
 * BatchImportFindings (≤ 100 per call). Every call and every finding's fate is
 * counted and logged here; the outbox worker keeps the rows and the retries.
 *
 *   rows ─▶ store.getFinding ─▶ toAsff ─▶ BatchImportFindings ─┬─ answered: FailedFindings per finding (classifyFailedFinding)
 *                                                               ├─ rejected (400) with > 1 finding: each half again, until
 *                                                               │    the finding Security Hub refuses stands alone
 *                                                               └─ failed (throttled, down, unreadable…): the whole batch waits
 */
import type { Logger } from '../../common/log/logger.js';
import type { SendOutcome } from '../../common/delivery/retry-policy.js';
import type { DeliveryResult, OutboxSink } from '../delivery/outbox-worker.js';
import type { Finding } from '../findings/shape.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore, QueuedDelivery } from '../store/store.js';
import { asffId, toAsff, type AsffTarget } from './asff.js';
import { classifyCallFailure, classifyFailedFinding } from './import-outcome.js';
import { logFailure } from '../failures/detector-failures.js';
import type { SecurityHubApi } from './securityhub-api.js';

/** The outbox's name for this sink. */
export const SECURITY_HUB_SINK = 'securityhub';
/** The sink as log sentences name it. */
const SINK_WORDS = 'Security Hub';
/** What to check when Security Hub refuses the detector as a whole. */
const SECURITY_HUB_FIX =
  "findings.security_hub (region, product_arn), the detector's permission securityhub:BatchImportFindings on the product, and that Security Hub is enabled in that region";
/** BatchImportFindings takes at most 100 findings per call. */
export const MAX_FINDINGS_PER_CALL = 100;

export interface SecurityHubExportOptions {
  store: DetectorStore;
  api: SecurityHubApi;
  target: AsffTarget;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
}

export class SecurityHubExport implements OutboxSink {
  readonly name = SECURITY_HUB_SINK;
  readonly maxBatch = MAX_FINDINGS_PER_CALL;

  constructor(private readonly opts: SecurityHubExportOptions) {}

  async deliver(items: readonly QueuedDelivery[], signal: AbortSignal): Promise<DeliveryResult> {
    const outcomes = new Map<string, SendOutcome>();
    const batch: { itemId: string; finding: Finding }[] = [];
    for (const item of items) {
      const finding = (await this.opts.store.getFinding(item.itemId)) as Finding | null;
      if (finding === null) {
        // Findings are never deleted; a row for an unknown id is dropped rather than tried for ever.
        logFailure(
          this.opts.logger,
          'securityhub_finding_missing',
          {
            kind: 'delivery-refused',
            sink: SINK_WORDS,
            reason: `finding ${item.itemId} is not in the store`,
            kept: 'its queued row is dropped',
          },
          { finding_id: item.itemId },
        );
        outcomes.set(item.itemId, { kind: 'permanent', reason: 'finding not in the store', status: 0 });
        continue;
      }
      batch.push({ itemId: item.itemId, finding });
    }
    if (batch.length === 0) return { kind: 'answered', items: outcomes };
    const result = await this.importBatch(batch, signal);
    if (result.kind === 'failed') {
      this.opts.metrics.securityhubFindings.inc({ outcome: 'retried' }, batch.length);
      return result;
    }
    for (const [id, o] of result.items) outcomes.set(id, o);
    return { kind: 'answered', items: outcomes };
  }

  private async importBatch(batch: readonly { itemId: string; finding: Finding }[], signal: AbortSignal): Promise<DeliveryResult> {
    const { api, metrics, logger, target } = this.opts;
    const byAsffId = new Map(batch.map((b) => [asffId(b.finding.id), b]));
    const answer = await api.importFindings(
      batch.map((b) => toAsff(b.finding, target)),
      signal,
    );
    if (answer.kind === 'failed') {
      const { label, outcome } = classifyCallFailure(answer.failure, this.opts.now());
      metrics.securityhubImports.inc({ outcome: label });
      const reason = `BatchImportFindings ${label}: ${answer.failure.name}${answer.failure.status !== null ? ` (${answer.failure.status})` : ''}`;
      const fields = {
        outcome: label,
        error: answer.failure.name,
        status: answer.failure.status,
        code: answer.failure.code,
        message: answer.failure.message,
        findings: batch.length,
      };
      const subject = `${batch.length} finding update(s)`;
      logFailure(
        logger,
        'securityhub_import_failed',
        outcome.kind === 'unauthorized'
          ? { kind: 'delivery-misconfigured', sink: SINK_WORDS, reason, fix: SECURITY_HUB_FIX }
          : {
              kind: 'delivery-failed',
              sink: SINK_WORDS,
              subject,
              reason,
              next:
                outcome.kind !== 'permanent'
                  ? 'they wait for a retry'
                  : batch.length > 1
                    ? 'the batch is sent again in halves until the finding refused stands alone'
                    : 'the finding is parked until it changes',
            },
        fields,
      );
      if (outcome.kind !== 'permanent') return { kind: 'failed', outcome };
      if (batch.length > 1) return this.halves(batch, signal);
      // The one finding Security Hub refuses: parked, not retried until it changes.
      const only = batch[0]!;
      this.failed(only.finding.id, answer.failure.name, answer.failure.message, outcome);
      return { kind: 'answered', items: new Map([[only.itemId, outcome]]) };
    }
    metrics.securityhubImports.inc({ outcome: 'success' });
    const items = new Map<string, SendOutcome>();
    for (const f of answer.failed) {
      const b = byAsffId.get(f.id);
      if (!b) continue;
      const outcome = classifyFailedFinding(f.code);
      items.set(b.itemId, outcome);
      this.failed(b.finding.id, f.code, f.message, outcome);
    }
    const imported = batch.length - items.size;
    metrics.securityhubFindings.inc({ outcome: 'imported' }, imported);
    logger.info(
      { event: 'securityhub_imported', findings: imported, failed: items.size },
      `imported ${imported} finding update(s) into Security Hub${items.size ? `; ${items.size} failed` : ''}`,
    );
    return { kind: 'answered', items };
  }

  private async halves(batch: readonly { itemId: string; finding: Finding }[], signal: AbortSignal): Promise<DeliveryResult> {
    const mid = Math.ceil(batch.length / 2);
    const items = new Map<string, SendOutcome>();
    for (const half of [batch.slice(0, mid), batch.slice(mid)]) {
      const r = await this.importBatch(half, signal);
      if (r.kind === 'failed') {
        // Security Hub stopped answering half-way: this half waits with the outage's backoff, per item.
        for (const b of half) items.set(b.itemId, r.outcome);
        this.opts.metrics.securityhubFindings.inc({ outcome: 'retried' }, half.length);
      } else for (const [id, o] of r.items) items.set(id, o);
    }
    return { kind: 'answered', items };
  }

  private failed(findingId: string, code: string, message: string, outcome: SendOutcome): void {
    const permanent = outcome.kind === 'permanent';
    this.opts.metrics.securityhubFindings.inc({ outcome: permanent ? 'failed' : 'retried' });
    const fields = { finding_id: findingId, error_code: code, error_message: message.slice(0, 300), retry: !permanent };
    logFailure(
      this.opts.logger,
      'securityhub_finding_failed',
      permanent
        ? {
            kind: 'delivery-refused',
            sink: SINK_WORDS,
            reason: `finding ${findingId}: ${code}`,
            kept: 'it is sent again only when it changes',
          }
        : outcome.kind === 'unauthorized'
          ? { kind: 'delivery-misconfigured', sink: SINK_WORDS, reason: `finding ${findingId}: ${code}`, fix: SECURITY_HUB_FIX }
          : { kind: 'delivery-failed', sink: SINK_WORDS, subject: `finding ${findingId}`, reason: code, next: 'it will be retried' },
      fields,
    );
  }
}

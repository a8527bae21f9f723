/**
 * `findings.webhook`: each finding POSTed as JSON, through the common
 * delivery engine. Findings go through the store's outbox (sink "webhook"):
 * the row is queued in the transaction that raised or changed the finding and
 * delivered after it committed, in the finding's state at delivery time — so
 * a restart loses no notification and nothing is sent from inside a
 * transaction. A finding changed again before it was delivered is sent once,
 * in its latest state. GuardDuty's kept findings (`guardduty.webhook_kept`)
 * are not held by the store, so they wait in a bounded in-memory queue.
 *
 *   answer                      outcome        what happens
 *   2xx                         success        delivered
 *   408, 429, 5xx, no answer    retryable      again after the backoff (Retry-After honoured)
 *   401, 403, 404, 405          misconfigured  again after the backoff, error naming findings.webhook (nothing is lost)
 *   other 4xx                   permanent      given up (webhook_gave_up): the finding stays in the store and findings.file
 */
import { Agent, request } from 'undici';
import type { Logger } from '../../common/log/logger.js';
import { classifyNetworkError, parseRetryAfterMs, type SendOutcome } from '../../common/delivery/retry-policy.js';
import type { DeliveryResult, Settlement } from '../../common/delivery/delivery-engine.js';
import type { OutboxSink } from '../delivery/outbox-worker.js';
import { logFailure, type DetectorFailure } from '../failures/detector-failures.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { DetectorStore, QueuedDelivery } from '../store/store.js';

/** The outbox's name for the findings webhook. */
export const WEBHOOK_SINK = 'webhook';

export function webhookDispatcher(): Agent {
  return new Agent({ connections: 2, headersTimeout: 15_000, bodyTimeout: 15_000, connect: { timeout: 10_000 } });
}

/** What a webhook receiver's answer means for the finding. */
export function classifyWebhookAnswer(status: number, retryAfter: string | undefined, nowMs: number): SendOutcome {
  if (status >= 200 && status <= 299) return { kind: 'success' };
  if (status === 408 || status === 429 || status >= 500 || status < 200) {
    const retryAfterMs = parseRetryAfterMs(retryAfter, nowMs);
    const reason = `http-${status}`;
    return retryAfterMs === undefined ? { kind: 'retryable', reason } : { kind: 'retryable', reason, retryAfterMs };
  }
  if (status === 401 || status === 403 || status === 404 || status === 405)
    return { kind: 'misconfigured', status, reason: `http-${status}` };
  return { kind: 'permanent', status, reason: `http-${status}` };
}

/** One POST of one JSON document; never throws. */
export async function postDocument(
  dispatcher: Agent,
  url: string,
  body: string,
  now: () => number,
  signal?: AbortSignal,
): Promise<SendOutcome> {
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher,
      body,
      headers: { 'content-type': 'application/json' },
      ...(signal ? { signal } : {}),
    });
    await res.body.dump();
    const ra = res.headers['retry-after'];
    return classifyWebhookAnswer(res.statusCode, Array.isArray(ra) ? ra[0] : ra, now());
  } catch (err) {
    return classifyNetworkError(err);
  }
}

/** Counts and logs one webhook attempt's outcome (both queues); the words come from the detector's failure union. */
export function recordWebhookOutcome(
  metrics: DetectorMetrics,
  logger: Logger,
  s: Settlement<{ itemId: string; attempts: number }>,
  outcome: SendOutcome,
  what: string,
  now: () => number = Date.now,
): void {
  const log = (event: string, f: DetectorFailure, fields: Record<string, unknown>): void =>
    logFailure(logger, event, f, { item: what, ...fields });
  const sink = 'findings webhook';
  switch (s.kind) {
    case 'delivered':
      metrics.webhookDeliveries.inc({ outcome: 'delivered' });
      return;
    case 'retry': {
      metrics.webhookDeliveries.inc({ outcome: 'retried' });
      const fields = { reason: s.reason, attempt: s.attempts, retry_at: new Date(s.atMs).toISOString() };
      if (outcome.kind === 'misconfigured' || outcome.kind === 'unauthorized')
        log(
          'webhook_misconfigured',
          { kind: 'delivery-misconfigured', sink, reason: s.reason, fix: "findings.webhook (URL, path, the receiver's access rules)" },
          fields,
        );
      else
        log(
          'webhook_retry',
          { kind: 'delivery-retry', sink, reason: s.reason, attempt: s.attempts, retryInMs: Math.max(0, s.atMs - now()) },
          fields,
        );
      return;
    }
    case 'failed':
      metrics.webhookDeliveries.inc({ outcome: 'failed' });
      log(
        'webhook_gave_up',
        { kind: 'delivery-refused', sink, reason: s.reason, kept: 'the finding is in findings.file and the store' },
        { reason: s.reason, attempts: s.attempts },
      );
      return;
  }
}

export interface WebhookOutboxSinkOptions {
  url: string;
  store: DetectorStore;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
}

/** The webhook as a sink of the store's outbox: one finding per cycle, read in its current state. */
export class WebhookOutboxSink implements OutboxSink {
  readonly name = WEBHOOK_SINK;
  readonly maxBatch = 1;
  readonly dispatcher = webhookDispatcher();

  constructor(private readonly opts: WebhookOutboxSinkOptions) {}

  async deliver(items: readonly QueuedDelivery[], signal: AbortSignal): Promise<DeliveryResult> {
    const outcomes = new Map<string, SendOutcome>();
    for (const item of items) {
      const finding = await this.opts.store.getFinding(item.itemId);
      if (finding === null) {
        outcomes.set(item.itemId, { kind: 'permanent', status: 0, reason: 'finding not in the store' });
        continue;
      }
      const outcome = await postDocument(this.dispatcher, this.opts.url, JSON.stringify(finding), this.opts.now, signal);
      // A receiver that is down or misconfigured is so for every finding: the whole sink waits.
      if (outcome.kind === 'retryable' || outcome.kind === 'misconfigured' || outcome.kind === 'unauthorized')
        return { kind: 'failed', outcome };
      if (outcome.kind === 'permanent') outcomes.set(item.itemId, outcome);
    }
    return { kind: 'answered', items: outcomes };
  }

  close(): Promise<void> {
    return this.dispatcher.close().catch(() => undefined);
  }
}

/**
 * Sends spooled batches to the detector through the shared delivery engine
 * (common/delivery/delivery-engine.ts), the spool as its durable queue: a
 * cycle takes up to `max_in_flight` batches and sends them at once, and a
 * batch leaves the spool only when the detector acknowledged it (2xx). The
 * detector's answer is read with the wire contract
 * (protocol/telemetry-status.ts); a failure to get one with send-failures.ts.
 * Failures back off globally (a down detector is down for every batch) with
 * jitter, honouring Retry-After (the engine's `retryPausesTarget`: the spool
 * hands batches out in its own order); refusals of the batch's content go to
 * the dead-letter folder; refusals of the configuration (a signature that
 * does not verify, an unknown gateway id, a URL without /v1/telemetry) keep
 * every batch and are logged at error level naming the key to fix — slowly
 * for the signature (a key mismatch), with the capped backoff for the rest.
 *
 *   engine cycle ─▶ spool.take() × n ─▶ sign(t, body) ─▶ POST ─┬─ delivered ────▶ spool.ack()
 *                                                             ├─ retry ────────▶ spool.release(), pause(backoff | Retry-After)
 *                                                             ├─ permanent ────▶ spool.release(), pause(slow | backoff), error log naming the fix + metric
 *                                                             ├─ drop (413) ───▶ split in two: spool.appendMany(halves), spool.ack()  (one record: ↓)
 *                                                             └─ drop-batch ───▶ spool.deadLetter()
 */
import { Agent, request } from 'undici';
import type { Logger } from '../../common/log/logger.js';
import { signatureHeader, BATCH_HEADER, GATEWAY_HEADER, SIGNATURE_HEADER } from '../../protocol/signature.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import { trustedSecureContext } from '../tls/trust-store.js';
import { DEFAULT_BACKOFF, type BackoffPolicy, type SendOutcome } from '../../common/delivery/retry-policy.js';
import {
  DeliveryEngine,
  type DeliveryQueue,
  type DeliveryResult,
  type DeliveryTarget,
  type QueuedItem,
  type Settlement,
} from '../../common/delivery/delivery-engine.js';
import { REFUSAL_HEADER } from '../../protocol/telemetry-status.js';
import { answerResult, describeFailure, errorResult, speaksTls, type SendResult } from './send-failures.js';
import { splitBatch } from './split-batch.js';
import type { Spool } from './spool.js';
import type { SpoolEntry } from './spool-types.js';

export interface ShipperOptions {
  url: string;
  gatewayId: string;
  secret: Buffer;
  spool: Spool;
  maxInFlight: number;
  metrics: AgentMetrics;
  logger: Logger;
  now: () => number;
  ca?: string | null;
  backoff?: BackoffPolicy;
  requestTimeoutMs?: number;
  random?: () => number;
  /** Called after every settled cycle (the spool gauges are refreshed from it). */
  onChange?: () => void;
  /** Record count of a batch, when known (batches replayed after a restart are not). */
  recordsOf?: (batchId: string) => number | undefined;
}

/** A spooled batch as the engine sees it. */
interface SpoolItem extends QueuedItem {
  readonly entry: SpoolEntry;
}

/** What one send found out, for the log line and the dead-letter reason of its settlement. */
interface Attempt {
  result: SendResult;
  /** The start of the detector's answer when it refused: it says why (bad signature, invalid batch…). */
  detail: string;
}

/** How long the shipper waits after the spool could not record an outcome (disk full, I/O error). */
const SPOOL_ERROR_PAUSE_MS = 5_000;

export class Shipper {
  private readonly dispatcher: Agent;
  private readonly engine: DeliveryEngine<SpoolItem>;
  private readonly url: URL;
  /** Whether the detector's listener speaks TLS, once asked (an http:// URL whose connections are dropped). */
  private tlsProbe: Promise<boolean> | null = null;
  /** The last attempt of each batch in the cycle being settled. */
  private readonly attempts = new Map<string, Attempt>();
  /** When the cycle's answers were in (the engine's retry times count from then). */
  private answeredAt = 0;

  constructor(private readonly opts: ShipperOptions) {
    this.url = new URL(opts.url);
    this.dispatcher = new Agent({
      connections: Math.max(1, opts.maxInFlight),
      keepAliveTimeout: 4_000,
      headersTimeout: opts.requestTimeoutMs ?? 30_000,
      bodyTimeout: opts.requestTimeoutMs ?? 30_000,
      connect: opts.ca ? { secureContext: trustedSecureContext(opts.ca) } : {},
    });
    const target: DeliveryTarget<SpoolItem> = {
      name: 'telemetry',
      maxBatch: Math.max(1, opts.maxInFlight),
      deliver: (items, signal) => this.deliver(items, signal),
    };
    const queue: DeliveryQueue<SpoolItem> = {
      due: (_now, limit) => this.take(limit),
      settle: (settlements) => this.settle(settlements),
      // The spool's order is its own: a batch not in flight is due now.
      nextDueMs: () => {
        const s = opts.spool.stats();
        return s.batches > s.inFlight ? 0 : null;
      },
    };
    this.engine = new DeliveryEngine<SpoolItem>({
      queue,
      target,
      policy: opts.backoff ?? DEFAULT_BACKOFF,
      logger: opts.logger,
      now: opts.now,
      ...(opts.random ? { random: opts.random } : {}),
      retryPausesTarget: true,
      onSettled: (s) => this.report(s),
      afterCycle: () => opts.onChange?.(),
    });
  }

  /** New batches, or a pause ended: look now, or right after the sends in flight. */
  kick(): void {
    this.engine.wake();
  }

  private take(limit: number): SpoolItem[] {
    const out: SpoolItem[] = [];
    while (out.length < limit) {
      const entry = this.opts.spool.take();
      if (!entry) break;
      out.push({ itemId: entry.id, attempts: entry.attempts, entry });
    }
    return out;
  }

  private async deliver(items: readonly SpoolItem[], signal: AbortSignal): Promise<DeliveryResult> {
    const outcomes = await Promise.all(items.map((item) => this.send(item.entry, signal)));
    const answered = new Map<string, SendOutcome>();
    items.forEach((item, i) => answered.set(item.itemId, outcomes[i] as SendOutcome));
    this.answeredAt = this.opts.now();
    return { kind: 'answered', items: answered };
  }

  private async send(entry: SpoolEntry, signal: AbortSignal): Promise<SendOutcome> {
    const started = this.opts.now();
    let result: SendResult;
    let detail = '';
    try {
      const t = Math.floor(this.opts.now() / 1000);
      const res = await request(this.opts.url, {
        method: 'POST',
        dispatcher: this.dispatcher,
        signal,
        body: entry.payload,
        headers: {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          [GATEWAY_HEADER]: this.opts.gatewayId,
          [BATCH_HEADER]: entry.id,
          [SIGNATURE_HEADER]: signatureHeader(this.opts.secret, t, entry.payload),
        },
      });
      const text = await res.body.text().catch(() => '');
      const refusal = headerValue(res.headers[REFUSAL_HEADER]);
      const retryAfter = headerValue(res.headers['retry-after']);
      result = answerResult(res.statusCode, { ...(refusal ? { refusal } : {}), ...(retryAfter ? { retryAfter } : {}) }, this.opts.now());
      if (result.outcome.kind !== 'success') detail = text.slice(0, 200);
      else this.tlsProbe = null;
    } catch (err) {
      result = await errorResult(err, this.url, () => (this.tlsProbe ??= speaksTls(this.url)));
    }
    this.opts.metrics.telemetrySendDuration.observe((this.opts.now() - started) / 1000);
    this.opts.metrics.telemetryBatches.inc({ outcome: result.outcome.kind });
    this.attempts.set(entry.id, { result, detail });
    return result.outcome;
  }

  /** Records each outcome in the spool; one that cannot be recorded leaves its batch to be sent again. */
  private async settle(settlements: readonly Settlement<SpoolItem>[]): Promise<void> {
    for (const s of settlements) {
      const entry = s.item.entry;
      try {
        await this.settleOne(s);
      } catch (err) {
        // The spool could not record the outcome (disk full, I/O error, directory gone). The batch
        // stays in the spool and is sent again later; the proxy is never affected.
        this.opts.metrics.telemetrySinkErrors.inc({ sink: 'spool' });
        this.opts.logger.error(
          { event: 'telemetry_settle_failed', batch_id: entry.id, outcome: this.attempts.get(entry.id)?.result.outcome.kind, err },
          'could not record a send outcome in the spool; the batch will be sent again',
        );
        try {
          this.opts.spool.release(entry.id);
        } catch {
          // already gone from the in-flight list
        }
        this.engine.pauseUntil(this.opts.now() + SPOOL_ERROR_PAUSE_MS);
      }
    }
  }

  private async settleOne(s: Settlement<SpoolItem>): Promise<void> {
    const entry = s.item.entry;
    switch (s.kind) {
      case 'delivered':
        await this.opts.spool.ack(entry.id);
        this.opts.metrics.telemetryRecords.inc(this.opts.recordsOf?.(entry.id) ?? 0);
        return;
      case 'retry':
        this.opts.spool.release(entry.id);
        return;
      case 'failed': {
        const attempt = this.attempts.get(entry.id);
        const outcome = attempt?.result.outcome;
        const status = outcome?.kind === 'permanent' ? outcome.status : null;
        if (status === 413 && (await this.split(entry))) return;
        const detail = attempt?.detail ?? '';
        await this.opts.spool.deadLetter(entry.id, `${status ?? ''} ${s.reason}${detail ? `: ${detail}` : ''}`.trim());
        this.opts.metrics.spoolDeadLettered.inc();
        this.opts.logger.error(
          { event: 'batch_dead_lettered', batch_id: entry.id, status, reason: s.reason, detail },
          'detector refused a batch permanently; moved to the dead-letter folder',
        );
        return;
      }
    }
  }

  /** The log line of a batch that waits for a retry, naming the fix where there is one. */
  private report(s: Settlement<SpoolItem>): void {
    const attempt = this.attempts.get(s.item.itemId);
    this.attempts.delete(s.item.itemId);
    if (s.kind !== 'retry' || !attempt) return;
    const { result, detail } = attempt;
    const outcome = result.outcome;
    const r = describeFailure(result, { url: this.url, gatewayId: this.opts.gatewayId });
    this.opts.logger[r.level](
      {
        event: r.event,
        batch_id: s.item.itemId,
        ...(outcome.kind === 'retryable' ? { reason: outcome.reason } : outcome.kind === 'success' ? {} : { status: outcome.status }),
        ...(result.refusal ? { refusal: result.refusal } : {}),
        ...(result.problem ? { problem: result.problem } : {}),
        ...(r.fix ? { fix: r.fix } : {}),
        detail,
        retry_in_ms: Math.max(0, s.atMs - this.answeredAt),
        attempt: s.attempts,
      },
      r.message,
    );
  }

  /**
   * Too large for the detector: the batch's records go back into the spool as two batches and
   * the batch itself leaves. False when it cannot be split (a single record): dead-letter it.
   */
  private async split(entry: SpoolEntry): Promise<boolean> {
    const halves = await splitBatch(entry.id, entry.payload);
    if (halves === null) return false;
    try {
      await this.opts.spool.appendMany(halves);
    } catch (err) {
      // Already spooled by a split that crashed before its ack: the halves are there, the original may go.
      if ((err as { code?: string }).code !== 'SPOOL_DUPLICATE_ID') throw err;
    }
    await this.opts.spool.ack(entry.id);
    this.opts.metrics.telemetrySplitBatches.inc();
    this.opts.logger.warn(
      { event: 'batch_split', batch_id: entry.id, into: halves.map((h) => h.id), bytes: entry.payload.length },
      'detector refused a batch as too large (413); it is sent again as two smaller batches',
    );
    return true;
  }

  /** Waits for the sends in flight (bounded), then stops; what is not sent stays in the spool. */
  async stop(timeoutMs = 5_000): Promise<void> {
    let timedOut = false;
    const timer = setTimeout(() => (timedOut = true), timeoutMs);
    // What was spooled just before the stop (the records of tunnels the drain closed) goes out now,
    // within the same bound, unless the detector is in a backoff pause.
    void this.engine.runNow();
    // A detector that never answers must not hold the agent's shutdown: the engine aborts what is
    // still in flight once the time is up (those batches stay in the spool and are sent after the restart).
    await this.engine.stop(timeoutMs);
    clearTimeout(timer);
    if (timedOut) await this.dispatcher.destroy().catch(() => undefined);
    else await this.dispatcher.close().catch(() => undefined);
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

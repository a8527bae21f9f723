/**
 * Sends spooled batches to the detector, a few at a time, and removes a
 * batch only when the detector acknowledged it (2xx). The detector's answer
 * is read with the wire contract (protocol/telemetry-status.ts): failures
 * back off globally (a down detector is down for every batch) with jitter,
 * honouring Retry-After; refusals of the batch's content go to the
 * dead-letter folder; refusals of the configuration (a signature that does
 * not verify, an unknown gateway id, a URL without /v1/telemetry) keep every
 * batch and are logged at error level naming the key to fix — slowly for the
 * signature (a key mismatch), with the capped backoff for the rest.
 *
 *   spool.take() ─▶ sign(t, body) ─▶ POST ─┬─ delivered ────▶ spool.ack()
 *                                          ├─ retry ────────▶ spool.release(), pause(backoff | Retry-After)
 *                                          ├─ permanent ────▶ spool.release(), pause(slow | backoff), error log naming the fix + metric
 *                                          ├─ drop (413) ───▶ split in two: spool.appendMany(halves), spool.ack()  (one record: ↓)
 *                                          └─ drop-batch ───▶ spool.deadLetter()
 */
import { Agent, request } from 'undici';
import type { Logger } from '../../common/log/logger.js';
import { signatureHeader, BATCH_HEADER, GATEWAY_HEADER, SIGNATURE_HEADER } from '../../protocol/signature.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import { trustedSecureContext } from '../tls/trust-store.js';
import { nextDelayMs, DEFAULT_BACKOFF, type BackoffPolicy } from '../../common/delivery/retry-policy.js';
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
  /** Called after every settled send (the spool gauges are refreshed from it). */
  onChange?: () => void;
  /** Record count of a batch, when known (batches replayed after a restart are not). */
  recordsOf?: (batchId: string) => number | undefined;
}

export class Shipper {
  private readonly dispatcher: Agent;
  private inFlight = 0;
  private pausedUntil = 0;
  private consecutiveFailures = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly sends = new Set<Promise<void>>();
  private readonly url: URL;
  /** Whether the detector's listener speaks TLS, once asked (an http:// URL whose connections are dropped). */
  private tlsProbe: Promise<boolean> | null = null;

  constructor(private readonly opts: ShipperOptions) {
    this.url = new URL(opts.url);
    this.dispatcher = new Agent({
      connections: Math.max(1, opts.maxInFlight),
      keepAliveTimeout: 4_000,
      headersTimeout: opts.requestTimeoutMs ?? 30_000,
      bodyTimeout: opts.requestTimeoutMs ?? 30_000,
      connect: opts.ca ? { secureContext: trustedSecureContext(opts.ca) } : {},
    });
  }

  /** Wakes the loop (new batches, or a pause ended). */
  kick(): void {
    if (this.stopped) return;
    const wait = this.pausedUntil - this.opts.now();
    if (wait > 0) {
      if (!this.timer) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.kick();
        }, wait);
        this.timer.unref();
      }
      return;
    }
    while (this.inFlight < this.opts.maxInFlight) {
      const entry = this.opts.spool.take();
      if (!entry) break;
      this.inFlight++;
      const p = this.send(entry)
        .catch((err: unknown) => {
          this.opts.logger.error({ event: 'telemetry_send_crashed', err }, 'unexpected error while shipping a batch');
        })
        .finally(() => {
          this.inFlight--;
          this.sends.delete(p);
          this.kick();
        });
      this.sends.add(p);
    }
  }

  private async send(entry: SpoolEntry): Promise<void> {
    const started = this.opts.now();
    let result: SendResult;
    /** The start of the detector's answer when it refused: it says why (bad signature, invalid batch…). */
    let detail = '';
    try {
      const t = Math.floor(this.opts.now() / 1000);
      const res = await request(this.opts.url, {
        method: 'POST',
        dispatcher: this.dispatcher,
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
    const outcome = result.outcome;
    this.opts.metrics.telemetrySendDuration.observe((this.opts.now() - started) / 1000);
    this.opts.metrics.telemetryBatches.inc({ outcome: outcome.kind });
    try {
      await this.settle(entry, result, detail);
    } catch (err) {
      // The spool could not record the outcome (disk full, I/O error, directory gone). The batch
      // stays in the spool and is sent again later; the proxy is never affected.
      this.opts.metrics.telemetrySinkErrors.inc({ sink: 'spool' });
      this.opts.logger.error(
        { event: 'telemetry_settle_failed', batch_id: entry.id, outcome: outcome.kind, err },
        'could not record a send outcome in the spool; the batch will be sent again',
      );
      try {
        this.opts.spool.release(entry.id);
      } catch {
        // already gone from the in-flight list
      }
      this.pausedUntil = Math.max(this.pausedUntil, this.opts.now() + 5_000);
    }
    this.opts.onChange?.();
  }

  private async settle(entry: SpoolEntry, result: SendResult, detail: string): Promise<void> {
    const log = this.opts.logger;
    const outcome = result.outcome;
    switch (outcome.kind) {
      case 'success':
        this.consecutiveFailures = 0;
        await this.opts.spool.ack(entry.id);
        this.opts.metrics.telemetryRecords.inc(this.opts.recordsOf?.(entry.id) ?? 0);
        return;
      case 'permanent':
        this.consecutiveFailures = 0;
        if (outcome.status === 413 && (await this.split(entry))) return;
        await this.opts.spool.deadLetter(entry.id, `${outcome.status} ${outcome.reason}${detail ? `: ${detail}` : ''}`);
        this.opts.metrics.spoolDeadLettered.inc();
        log.error(
          { event: 'batch_dead_lettered', batch_id: entry.id, status: outcome.status, reason: outcome.reason, detail },
          'detector refused a batch permanently; moved to the dead-letter folder',
        );
        return;
      case 'unauthorized':
      case 'misconfigured':
      case 'retryable': {
        this.opts.spool.release(entry.id);
        const delay = nextDelayMs(
          this.opts.backoff ?? DEFAULT_BACKOFF,
          ++this.consecutiveFailures,
          outcome,
          this.opts.random ?? Math.random,
        );
        this.pausedUntil = Math.max(this.pausedUntil, this.opts.now() + delay);
        const report = describeFailure(result, { url: this.url, gatewayId: this.opts.gatewayId });
        log[report.level](
          {
            event: report.event,
            batch_id: entry.id,
            ...(outcome.kind === 'retryable' ? { reason: outcome.reason } : { status: outcome.status }),
            ...(result.refusal ? { refusal: result.refusal } : {}),
            ...(result.problem ? { problem: result.problem } : {}),
            ...(report.fix ? { fix: report.fix } : {}),
            detail,
            retry_in_ms: delay,
            attempt: entry.attempts + 1,
          },
          report.message,
        );
        return;
      }
    }
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

  /** Waits for in-flight sends (bounded), then stops. Unsent batches stay in the spool. */
  async stop(timeoutMs = 5_000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.allSettled([...this.sends]).then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    // A detector that never answers must not hold the agent's shutdown: abort what is still in flight
    // (those batches stay in the spool and are sent after the restart).
    if (timedOut) await this.dispatcher.destroy().catch(() => undefined);
    else await this.dispatcher.close().catch(() => undefined);
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

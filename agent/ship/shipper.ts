/**
 * Sends spooled batches to the detector, a few at a time, and removes a
 * batch only when the detector acknowledged it (2xx). Failures back off
 * globally (a down detector is down for every batch) with jitter, honouring
 * Retry-After; permanent refusals go to the dead-letter folder; 401/403 keep
 * retrying slowly and loudly, since they mean a key mismatch.
 *
 *   spool.take() ─▶ sign(t, body) ─▶ POST ─┬─ success ─────▶ spool.ack()
 *                                          ├─ retryable ───▶ spool.release(), pause(backoff | Retry-After)
 *                                          ├─ unauthorized ▶ spool.release(), pause(slow), error log + metric
 *                                          ├─ 413 ─────────▶ split in two: spool.appendMany(halves), spool.ack()  (one record: ↓)
 *                                          └─ permanent ───▶ spool.deadLetter()
 */
import { Agent, request } from 'undici';
import type { Logger } from '../../common/log/logger.js';
import { signatureHeader, BATCH_HEADER, GATEWAY_HEADER, SIGNATURE_HEADER } from '../../protocol/signature.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import { trustedSecureContext } from '../tls/trust-store.js';
import {
  classifyNetworkError,
  classifyResponse,
  nextDelayMs,
  DEFAULT_BACKOFF,
  type BackoffPolicy,
  type SendOutcome,
} from '../../common/delivery/retry-policy.js';
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

  constructor(private readonly opts: ShipperOptions) {
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
    let outcome: SendOutcome;
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
      outcome = classifyResponse(res.statusCode, { 'retry-after': headerValue(res.headers['retry-after']) }, this.opts.now());
      if (outcome.kind !== 'success') detail = text.slice(0, 200);
    } catch (err) {
      outcome = classifyNetworkError(err);
    }
    this.opts.metrics.telemetrySendDuration.observe((this.opts.now() - started) / 1000);
    this.opts.metrics.telemetryBatches.inc({ outcome: outcome.kind });
    try {
      await this.settle(entry, outcome, detail);
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

  private async settle(entry: SpoolEntry, outcome: SendOutcome, detail: string): Promise<void> {
    const log = this.opts.logger;
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
      case 'retryable': {
        this.opts.spool.release(entry.id);
        const delay = nextDelayMs(
          this.opts.backoff ?? DEFAULT_BACKOFF,
          ++this.consecutiveFailures,
          outcome,
          this.opts.random ?? Math.random,
        );
        this.pausedUntil = Math.max(this.pausedUntil, this.opts.now() + delay);
        if (outcome.kind === 'unauthorized') {
          log.error(
            { event: 'telemetry_unauthorized', status: outcome.status, retry_in_ms: delay, detail },
            "detector rejected the batch signature: telemetry.secret_file does not match the detector's key for this gateway",
          );
        } else {
          log.warn(
            {
              event: 'telemetry_retry',
              batch_id: entry.id,
              reason: outcome.reason,
              detail,
              retry_in_ms: delay,
              attempt: entry.attempts + 1,
            },
            'telemetry send failed; will retry',
          );
        }
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

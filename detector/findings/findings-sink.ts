/**
 * Where findings go: appended to `findings.file` as JSON lines (the latest
 * line for an id is its current state) and posted to `findings.webhook`.
 * The webhook queue is bounded and retried with backoff; it never blocks
 * correlation. Delivery is at-least-once while the process runs; the file
 * and the store are the durable record.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Agent, request } from 'undici';
import type { Logger } from '../../common/log/logger.js';
import type { DetectorMetrics } from '../metrics/metrics.js';

export interface FindingsSinkOptions {
  file: string | null;
  webhook: string | null;
  metrics: DetectorMetrics;
  logger: Logger;
  maxQueue?: number;
  maxAttempts?: number;
  baseDelayMs?: number;
}

interface Delivery {
  body: string;
  attempts: number;
}

export class FindingsSink {
  private fileChain: Promise<void> = Promise.resolve();
  private dirReady = false;
  private readonly queue: Delivery[] = [];
  private sending = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly dispatcher: Agent | null;
  private stopped = false;

  constructor(private readonly opts: FindingsSinkOptions) {
    this.dispatcher = opts.webhook
      ? new Agent({ connections: 2, headersTimeout: 15_000, bodyTimeout: 15_000, connect: { timeout: 10_000 } })
      : null;
  }

  /** Queues one finding (or an enriched GuardDuty decision) for the file and the webhook. */
  emit(doc: unknown, opts: { webhook?: boolean } = {}): Promise<void> {
    const line = JSON.stringify(doc);
    if (this.opts.file) {
      const file = this.opts.file;
      this.fileChain = this.fileChain.then(async () => {
        try {
          if (!this.dirReady) {
            await mkdir(dirname(file), { recursive: true });
            this.dirReady = true;
          }
          await appendFile(file, `${line}\n`, { mode: 0o640 });
        } catch (err) {
          this.opts.logger.error({ event: 'findings_file_failed', err, file }, 'cannot append to findings.file');
        }
      });
    }
    if (this.opts.webhook && opts.webhook !== false) {
      if (this.queue.length >= (this.opts.maxQueue ?? 10_000)) {
        this.queue.shift();
        this.opts.metrics.webhookDeliveries.inc({ outcome: 'dropped' });
      }
      this.queue.push({ body: line, attempts: 0 });
      this.pump();
    }
    return this.fileChain;
  }

  private pump(): void {
    if (this.sending || this.stopped || this.timer || this.queue.length === 0) return;
    this.sending = true;
    void this.sendNext().finally(() => {
      this.sending = false;
      this.pump();
    });
  }

  private async sendNext(): Promise<void> {
    const d = this.queue[0];
    if (!d || !this.opts.webhook || !this.dispatcher) return;
    let ok: boolean;
    let permanent = false;
    try {
      const res = await request(this.opts.webhook, {
        method: 'POST',
        dispatcher: this.dispatcher,
        body: d.body,
        headers: { 'content-type': 'application/json' },
      });
      await res.body.dump();
      ok = res.statusCode >= 200 && res.statusCode < 300;
      permanent = res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429;
    } catch {
      ok = false;
    }
    if (ok) {
      this.queue.shift();
      this.opts.metrics.webhookDeliveries.inc({ outcome: 'delivered' });
      return;
    }
    d.attempts++;
    if (permanent || d.attempts >= (this.opts.maxAttempts ?? 8)) {
      this.queue.shift();
      this.opts.metrics.webhookDeliveries.inc({ outcome: 'failed' });
      this.opts.logger.error(
        { event: 'webhook_gave_up', attempts: d.attempts },
        'findings webhook: giving up on one delivery (the finding is in findings.file and the store)',
      );
      return;
    }
    this.opts.metrics.webhookDeliveries.inc({ outcome: 'retried' });
    const delay = Math.min(60_000, (this.opts.baseDelayMs ?? 500) * 2 ** (d.attempts - 1)) * (0.5 + Math.random() / 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump();
    }, delay);
    this.timer.unref();
  }

  get pendingDeliveries(): number {
    return this.queue.length;
  }

  /** Waits for file writes and (up to `timeoutMs`) for queued deliveries. */
  async close(timeoutMs = 5_000): Promise<void> {
    await this.fileChain;
    const end = Date.now() + timeoutMs;
    while (this.queue.length > 0 && !this.timer && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.dispatcher?.close().catch(() => undefined);
  }
}

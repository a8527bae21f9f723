/**
 * Where findings go: appended to `findings.file` as JSON lines (the latest
 * line for an id is its current state) and posted to `findings.webhook`.
 *
 * The webhook delivery of findings is durable: the deciding transaction
 * queues it in the store's outbox and webhook-delivery.ts sends it after the
 * commit, so `emit` only writes the file for them. GuardDuty's kept findings
 * (`{"kind":"guardduty-kept",…}`) are not held by the store: `emit` queues
 * them in memory (bounded, oldest dropped first) for the same delivery
 * engine, at-least-once while the process runs.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../../common/log/logger.js';
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../../common/delivery/retry-policy.js';
import { DeliveryEngine, MemoryQueue, type MemoryItem } from '../../common/delivery/delivery-engine.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import { postDocument, recordWebhookOutcome, webhookDispatcher } from './webhook-delivery.js';

export interface FindingsSinkOptions {
  file: string | null;
  webhook: string | null;
  metrics: DetectorMetrics;
  logger: Logger;
  now?: () => number;
  maxQueue?: number;
  maxAttempts?: number;
  backoff?: BackoffPolicy;
}

/** Documents that are not findings of the store (and so not on the outbox). */
function notInStore(doc: unknown): boolean {
  return typeof doc === 'object' && doc !== null && (doc as { kind?: unknown }).kind === 'guardduty-kept';
}

export class FindingsSink {
  private fileChain: Promise<void> = Promise.resolve();
  private dirReady = false;
  private readonly queue: MemoryQueue<string> | null = null;
  private readonly engine: DeliveryEngine<MemoryItem<string>> | null = null;
  private readonly dispatcher: ReturnType<typeof webhookDispatcher> | null = null;

  constructor(private readonly opts: FindingsSinkOptions) {
    const url = opts.webhook;
    if (!url) return;
    const now = opts.now ?? Date.now;
    const dispatcher = (this.dispatcher = webhookDispatcher());
    this.queue = new MemoryQueue<string>(opts.maxQueue ?? 10_000, () => opts.metrics.webhookDeliveries.inc({ outcome: 'dropped' }));
    this.engine = new DeliveryEngine<MemoryItem<string>>({
      queue: this.queue,
      target: {
        name: 'webhook-memory',
        maxBatch: 1,
        deliver: async (items, signal) => {
          const outcome = await postDocument(dispatcher, url, items[0]!.payload, now, signal);
          if (outcome.kind === 'success') return { kind: 'answered', items: new Map() };
          if (outcome.kind === 'permanent') return { kind: 'answered', items: new Map([[items[0]!.itemId, outcome]]) };
          return { kind: 'failed', outcome };
        },
      },
      policy: opts.backoff ?? DEFAULT_BACKOFF,
      maxAttempts: opts.maxAttempts ?? 8,
      logger: opts.logger,
      now,
      onSettled: (s, outcome) => recordWebhookOutcome(opts.metrics, opts.logger, s, outcome, 'guardduty-kept', now),
    });
    this.engine.start();
  }

  /** Writes one finding (or an enriched GuardDuty decision) to the file; a GuardDuty kept finding also goes to the webhook. */
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
    if (this.queue && this.engine && opts.webhook !== false && notInStore(doc)) {
      this.queue.push(line, (this.opts.now ?? Date.now)());
      this.engine.wake();
    }
    return this.fileChain;
  }

  get pendingDeliveries(): number {
    return this.queue?.size ?? 0;
  }

  /** Waits for file writes and (up to `timeoutMs`) for queued in-memory deliveries. */
  async close(timeoutMs = 5_000): Promise<void> {
    await this.fileChain;
    if (this.engine) {
      await this.engine.drain(timeoutMs);
      await this.engine.stop(0);
    }
    await this.dispatcher?.close().catch(() => undefined);
  }
}

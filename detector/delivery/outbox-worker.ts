/**
 * Delivers one sink's rows of the store's outbox: side effects that must
 * survive a restart, sent after the transaction that queued them committed.
 * The loop, the backoff and the outcome handling are the common delivery
 * engine's (common/delivery/delivery-engine.ts); this file is the store's
 * outbox as the engine's queue port. Sinks: the Security Hub export and the
 * findings webhook.
 *
 *   decide ─ transaction { store decision, finding, outbox row } ─ commit ─▶ wake()
 *                                                                             │
 *   engine cycle: due rows (≤ sink.maxBatch) ─▶ sink.deliver ─▶ delivered ─▶ ack (row gone unless a newer version came)
 *                                                              retry ─────▶ due again at now + backoff (Retry-After honoured)
 *                                                              failed ────▶ parked as failed until the item changes
 *
 * A crash between the sink's answer and the ack sends the row again after the
 * restart: sinks must take a repeat of the same version as a no-op (Security
 * Hub does: the same UpdatedAt changes nothing; webhook receivers get the
 * finding's same state again, keyed by its id).
 */
import type { Logger } from '../../common/log/logger.js';
import type { BackoffPolicy, SendOutcome } from '../../common/delivery/retry-policy.js';
import { DeliveryEngine, type DeliveryQueue, type DeliveryTarget, type Settlement } from '../../common/delivery/delivery-engine.js';
import type { DetectorStore, QueuedDelivery } from '../store/store.js';

export type { DeliveryResult } from '../../common/delivery/delivery-engine.js';

export type OutboxSink = DeliveryTarget<QueuedDelivery>;

export interface OutboxWorkerOptions {
  store: DetectorStore;
  sink: OutboxSink;
  policy: BackoffPolicy;
  logger: Logger;
  now: () => number;
  random?: () => number;
  /** Look at the outbox at least this often even without a wake-up (default 30 s). */
  idlePollMs?: number;
  /** Give a row up (failed) once this many attempts failed (default: never). */
  maxAttempts?: number;
  /** After every cycle (gauges). */
  afterCycle?: () => void;
  /** Every settled row (metrics). */
  onSettled?: (s: Settlement<QueuedDelivery>, outcome: SendOutcome) => void;
}

/** One sink's rows of the store's outbox, as a delivery queue. */
export class StoreOutboxQueue implements DeliveryQueue<QueuedDelivery> {
  constructor(
    private readonly store: DetectorStore,
    private readonly sink: string,
  ) {}

  due(nowMs: number, limit: number): Promise<QueuedDelivery[]> {
    return this.store.dueDeliveries(this.sink, nowMs, limit);
  }

  async settle(settlements: readonly Settlement<QueuedDelivery>[]): Promise<void> {
    const { store, sink } = this;
    await store.withTransaction(async (tx) => {
      for (const s of settlements) {
        const d = s.item;
        if (s.kind === 'delivered') await tx.ackDelivery(sink, d.itemId, d.version);
        else if (s.kind === 'failed') await tx.failDelivery(sink, d.itemId, d.version, s.attempts, s.reason);
        else await tx.retryDelivery(sink, d.itemId, d.version, s.attempts, s.atMs, s.reason);
      }
    });
  }

  nextDueMs(): Promise<number | null> {
    return this.store.nextDeliveryMs(this.sink);
  }
}

export class OutboxWorker extends DeliveryEngine<QueuedDelivery> {
  constructor(opts: OutboxWorkerOptions) {
    super({ ...opts, queue: new StoreOutboxQueue(opts.store, opts.sink.name), target: opts.sink });
  }
}

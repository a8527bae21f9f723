/**
 * Delivers one sink's rows of the store's outbox: side effects that must
 * survive a restart, sent after the transaction that queued them committed.
 * Generic over the sink (the Security Hub export is the first); the retry
 * policy is the one the agent's shipper uses (common/delivery/retry-policy.ts).
 *
 *   decide ─ transaction { store decision, finding, outbox row } ─ commit ─▶ wake()
 *                                                                             │
 *   cycle: due rows (≤ sink.maxBatch, longest due first) ─▶ sink.deliver ─┬─ answered, per item:
 *                                                                         │    delivered ─▶ ack (row gone unless a newer version came)
 *                                                                         │    retryable ─▶ due again at now + backoff(attempts) (Retry-After honoured)
 *                                                                         │    permanent ─▶ parked as failed until the item changes
 *                                                                         └─ call failed ─▶ every row due again at now + backoff,
 *                                                                                            the sink paused as long (one outage, one backoff)
 *
 * One cycle at a time; a row is never in two cycles. A crash between the
 * sink's answer and the ack sends the row again after the restart: sinks must
 * take a repeat of the same version as a no-op (Security Hub does: the same
 * UpdatedAt changes nothing).
 */
import type { Logger } from '../../common/log/logger.js';
import { nextDelayMs, type BackoffPolicy, type SendOutcome } from '../../common/delivery/retry-policy.js';
import type { DetectorStore, QueuedDelivery } from '../store/store.js';

export type DeliveryResult =
  /** The sink answered; an item missing from `items` was delivered. */
  | { kind: 'answered'; items: ReadonlyMap<string, SendOutcome> }
  /** Nothing was delivered: every item waits (retryable or unauthorized). */
  | { kind: 'failed'; outcome: SendOutcome };

export interface OutboxSink {
  readonly name: string;
  readonly maxBatch: number;
  deliver(items: readonly QueuedDelivery[], signal: AbortSignal): Promise<DeliveryResult>;
}

export interface OutboxWorkerOptions {
  store: DetectorStore;
  sink: OutboxSink;
  policy: BackoffPolicy;
  logger: Logger;
  now: () => number;
  random?: () => number;
  /** Look at the outbox at least this often even without a wake-up (default 30 s). */
  idlePollMs?: number;
  /** After every cycle (gauges). */
  afterCycle?: () => void;
}

export class OutboxWorker {
  private timer: NodeJS.Timeout | null = null;
  private inflight: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private pausedUntil = 0;
  private consecutiveFailures = 0;
  private readonly abort = new AbortController();

  constructor(private readonly opts: OutboxWorkerOptions) {}

  start(): void {
    this.schedule(0);
  }

  /** Something was queued (and committed): look now, or right after the cycle in flight. */
  wake(): void {
    if (this.stopped) return;
    if (this.inflight) this.again = true;
    else this.schedule(Math.max(0, this.pausedUntil - this.opts.now()));
  }

  /** Waits up to `timeoutMs` for the cycle in flight, then aborts it; rows not acknowledged stay queued. */
  async stop(timeoutMs = 5_000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const inflight = this.inflight;
    if (!inflight) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([inflight, new Promise<void>((r) => (t = setTimeout(r, timeoutMs)))]);
    clearTimeout(t);
    this.abort.abort();
    await inflight;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.inflight = this.cycle()
        .catch((err: unknown) => {
          // The store failed (disk full, locked): back off like a failed call rather than spin on the same rows.
          this.consecutiveFailures++;
          const outcome = { kind: 'retryable', reason: 'cycle-error' } as const;
          this.pausedUntil =
            this.opts.now() + nextDelayMs(this.opts.policy, this.consecutiveFailures, outcome, this.opts.random ?? Math.random);
          this.opts.logger.error({ event: 'outbox_cycle_failed', sink: this.opts.sink.name, err }, 'outbox delivery cycle failed');
        })
        .finally(() => {
          this.inflight = null;
          this.opts.afterCycle?.();
          this.scheduleNext();
        });
    }, delayMs);
    this.timer.unref();
  }

  private scheduleNext(): void {
    if (this.stopped) return;
    const now = this.opts.now();
    const pause = Math.max(0, this.pausedUntil - now);
    if (this.again) {
      this.again = false;
      return this.schedule(pause);
    }
    const next = this.opts.store.nextDeliveryMs(this.opts.sink.name);
    const idle = this.opts.idlePollMs ?? 30_000;
    this.schedule(Math.min(idle, next === null ? idle : Math.max(pause, next - now)));
  }

  private async cycle(): Promise<void> {
    const { store, sink, policy } = this.opts;
    const random = this.opts.random ?? Math.random;
    if (this.opts.now() < this.pausedUntil) return;
    const due = store.dueDeliveries(sink.name, this.opts.now(), sink.maxBatch);
    if (due.length === 0) return;
    if (due.length === sink.maxBatch) this.again = true; // more may be due
    let result: DeliveryResult;
    try {
      result = await sink.deliver(due, this.abort.signal);
    } catch (err) {
      this.opts.logger.error({ event: 'outbox_sink_failed', sink: sink.name, err }, 'outbox sink failed; its items wait for a retry');
      result = { kind: 'failed', outcome: { kind: 'retryable', reason: 'sink-error' } };
    }
    const now = this.opts.now();
    if (result.kind === 'failed') {
      this.consecutiveFailures++;
      const delay = nextDelayMs(policy, this.consecutiveFailures, result.outcome, random);
      this.pausedUntil = now + delay;
      this.again = false;
      const reason = describe(result.outcome);
      store.transaction(() => {
        for (const d of due) store.retryDelivery(sink.name, d.itemId, d.version, d.attempts + 1, now + delay, reason);
      });
      return;
    }
    this.consecutiveFailures = 0;
    store.transaction(() => {
      for (const d of due) {
        const outcome = result.items.get(d.itemId) ?? { kind: 'success' };
        if (outcome.kind === 'success') store.ackDelivery(sink.name, d.itemId, d.version);
        else if (outcome.kind === 'permanent') store.failDelivery(sink.name, d.itemId, d.version, d.attempts + 1, describe(outcome));
        else {
          const next = now + nextDelayMs(policy, d.attempts + 1, outcome, random);
          store.retryDelivery(sink.name, d.itemId, d.version, d.attempts + 1, next, describe(outcome));
        }
      }
    });
  }
}

function describe(o: SendOutcome): string {
  switch (o.kind) {
    case 'success':
      return 'success';
    case 'unauthorized':
      return `unauthorized (${o.status})`;
    case 'permanent':
    case 'retryable':
    case 'misconfigured':
      return o.reason;
  }
}

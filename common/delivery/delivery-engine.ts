/**
 * The one delivery loop: items wait in a queue (durable or not), a target
 * tries them, and each attempt's outcome decides the item's fate — delivered,
 * tried again after a backoff (Retry-After honoured), or refused for good.
 * In the spirit of an exporter helper: the queue is a port, the retry policy
 * and the classification of outcomes are shared (retry-policy.ts), and every
 * settled attempt goes through one metrics hook.
 *
 *   wake() ─▶ cycle: queue.due(≤ target.maxBatch) ─▶ target.deliver ─┬─ answered, per item:
 *                                                                  │    success ──────────────▶ delivered
 *                                                                  │    retryable / misconfigured / unauthorized ─▶ retry at now + backoff(attempts)
 *                                                                  │      (retryPausesTarget: now + backoff(failures in a row), the target paused as long)
 *                                                                  │    permanent ────────────▶ failed (the queue decides: parked, dead-lettered, dropped)
 *                                                                  └─ failed (no answer): every item retried at now + backoff,
 *                                                                       the target paused as long (one outage, one backoff)
 *
 * One cycle at a time, so an item is never in two attempts. stop() waits for
 * the cycle in flight (bounded), then aborts it; what is not settled stays
 * queued. A queue that throws (disk full, store locked) backs the engine off
 * like an outage instead of spinning on the same items.
 */
import type { Logger } from '../log/logger.js';
import { nextDelayMs, type BackoffPolicy, type SendOutcome } from './retry-policy.js';

/** An item as the queue hands it out: its id, and how many attempts have failed before. */
export interface QueuedItem {
  readonly itemId: string;
  readonly attempts: number;
}

export type Settlement<I extends QueuedItem> =
  | { kind: 'delivered'; item: I }
  | { kind: 'retry'; item: I; attempts: number; atMs: number; reason: string }
  | { kind: 'failed'; item: I; attempts: number; reason: string };

/** The queue port: the store's outbox and in-memory queues implement it. */
export interface DeliveryQueue<I extends QueuedItem> {
  /** Items due by `nowMs`, longest due first, at most `limit`. */
  due(nowMs: number, limit: number): readonly I[] | Promise<readonly I[]>;
  /** Records the outcomes of one cycle (atomically where the queue can). */
  settle(settlements: readonly Settlement<I>[]): void | Promise<void>;
  /** The earliest time an item is due, or null when none waits. */
  nextDueMs(): number | null | Promise<number | null>;
}

export type DeliveryResult =
  /** The target answered; an item missing from `items` was delivered. */
  | { kind: 'answered'; items: ReadonlyMap<string, SendOutcome> }
  /** Nothing was delivered: every item waits (retryable, unauthorized or misconfigured). */
  | { kind: 'failed'; outcome: SendOutcome };

export interface DeliveryTarget<I extends QueuedItem> {
  readonly name: string;
  readonly maxBatch: number;
  deliver(items: readonly I[], signal: AbortSignal): Promise<DeliveryResult>;
}

export interface DeliveryEngineOptions<I extends QueuedItem> {
  queue: DeliveryQueue<I>;
  target: DeliveryTarget<I>;
  policy: BackoffPolicy;
  logger: Logger;
  now: () => number;
  random?: () => number;
  /** Look at the queue at least this often even without a wake-up (default 30 s). */
  idlePollMs?: number;
  /**
   * A retry answer for any item pauses the whole target too, with the backoff of the failures in a
   * row (reset by an item delivered or refused for good). For a queue that hands items out in its
   * own order and cannot hold one back until its time (a FIFO spool): a detector that answers 503
   * is asked again after the backoff, not at once with the next item.
   */
  retryPausesTarget?: boolean;
  /** Give an item up (failed) instead of retrying it once this many attempts failed (default: never). */
  maxAttempts?: number;
  /** Every settled item (metrics, logs). */
  onSettled?: (s: Settlement<I>, outcome: SendOutcome) => void;
  /** After every cycle (gauges). */
  afterCycle?: () => void;
}

/** A short text for an outcome (stored as the item's last error). */
export function describeOutcome(o: SendOutcome): string {
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

export class DeliveryEngine<I extends QueuedItem> {
  private timer: NodeJS.Timeout | null = null;
  private inflight: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private pausedUntil = 0;
  private consecutiveFailures = 0;
  private readonly abort = new AbortController();

  constructor(private readonly opts: DeliveryEngineOptions<I>) {}

  get name(): string {
    return this.opts.target.name;
  }

  start(): void {
    this.schedule(0);
  }

  /** Something was queued (and committed): look now, or right after the cycle in flight. */
  wake(): void {
    if (this.stopped) return;
    if (this.inflight) this.again = true;
    else this.schedule(Math.max(0, this.pausedUntil - this.opts.now()));
  }

  /** No cycle before `atMs` (a queue that could not record an outcome asks for a breather); a longer pause stays. */
  pauseUntil(atMs: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, atMs);
  }

  /** Waits up to `timeoutMs` for the cycle in flight, then aborts it; items not settled stay queued. */
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

  /** Waits until nothing is due and no cycle runs, or `timeoutMs` passed; true when drained. */
  async drain(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.inflight) await this.inflight;
      const next = await this.opts.queue.nextDueMs();
      if (next === null || next > this.opts.now()) return true;
      if (Date.now() >= end) return false;
      this.wake();
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private backOff(outcome: SendOutcome): number {
    this.consecutiveFailures++;
    const delay = nextDelayMs(this.opts.policy, this.consecutiveFailures, outcome, this.opts.random ?? Math.random);
    this.pausedUntil = this.opts.now() + delay;
    return delay;
  }

  /**
   * Runs a cycle now, after the one in flight, and resolves once it settled: for a caller that
   * answers only after the delivery was tried (the archive call behind POST /v1/guardduty). A
   * paused target stays paused.
   */
  async runNow(): Promise<void> {
    while (this.inflight) await this.inflight;
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.runCycle();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      // Never two cycles at once (both would read the same due items): the one in flight looks again.
      if (this.inflight) this.again = true;
      else void this.runCycle();
    }, delayMs);
    this.timer.unref();
  }

  /** One cycle, the only one in flight; the next is scheduled when it ends. */
  private runCycle(): Promise<void> {
    const run = this.cycle()
      .catch((err: unknown) => {
        this.backOff({ kind: 'retryable', reason: 'cycle-error' });
        this.opts.logger.error({ event: 'outbox_cycle_failed', sink: this.opts.target.name, err }, 'delivery cycle failed');
      })
      .finally(() => {
        this.inflight = null;
        this.opts.afterCycle?.();
        void this.scheduleNext().catch((err: unknown) => {
          this.opts.logger.error({ event: 'outbox_cycle_failed', sink: this.opts.target.name, err }, 'delivery cycle failed');
          this.schedule(this.opts.idlePollMs ?? 30_000);
        });
      });
    this.inflight = run;
    return run;
  }

  private async scheduleNext(): Promise<void> {
    if (this.stopped) return;
    const now = this.opts.now();
    const pause = Math.max(0, this.pausedUntil - now);
    if (this.again) {
      this.again = false;
      return this.schedule(pause);
    }
    const next = await this.opts.queue.nextDueMs();
    // A wake-up during that read may have started a cycle already: that cycle schedules the next.
    if (this.inflight) return;
    const idle = this.opts.idlePollMs ?? 30_000;
    this.schedule(Math.min(idle, next === null ? idle : Math.max(pause, next - this.opts.now())));
  }

  private async cycle(): Promise<void> {
    const { queue, target, policy } = this.opts;
    const random = this.opts.random ?? Math.random;
    if (this.opts.now() < this.pausedUntil) return;
    const due = await queue.due(this.opts.now(), target.maxBatch);
    if (due.length === 0) return;
    if (due.length === target.maxBatch) this.again = true; // more may be due
    let result: DeliveryResult;
    try {
      result = await target.deliver(due, this.abort.signal);
    } catch (err) {
      this.opts.logger.error({ event: 'outbox_sink_failed', sink: target.name, err }, 'delivery target failed; its items wait for a retry');
      result = { kind: 'failed', outcome: { kind: 'retryable', reason: 'sink-error' } };
    }
    const now = this.opts.now();
    const maxAttempts = this.opts.maxAttempts ?? Number.POSITIVE_INFINITY;
    const retryOrGiveUp = (item: I, atMs: number, reason: string): Settlement<I> =>
      item.attempts + 1 >= maxAttempts
        ? { kind: 'failed', item, attempts: item.attempts + 1, reason: `gave up after ${item.attempts + 1} attempts: ${reason}` }
        : { kind: 'retry', item, attempts: item.attempts + 1, atMs, reason };
    const settled: { s: Settlement<I>; outcome: SendOutcome }[] = [];
    if (result.kind === 'failed') {
      const delay = this.backOff(result.outcome);
      this.again = false;
      const reason = describeOutcome(result.outcome);
      for (const item of due) settled.push({ s: retryOrGiveUp(item, now + delay, reason), outcome: result.outcome });
    } else {
      const pausing = this.opts.retryPausesTarget === true;
      if (!pausing) this.consecutiveFailures = 0;
      for (const item of due) {
        const outcome: SendOutcome = result.items.get(item.itemId) ?? { kind: 'success' };
        if (outcome.kind === 'success' || outcome.kind === 'permanent') this.consecutiveFailures = 0;
        if (outcome.kind === 'success') settled.push({ s: { kind: 'delivered', item }, outcome });
        else if (outcome.kind === 'permanent')
          settled.push({ s: { kind: 'failed', item, attempts: item.attempts + 1, reason: describeOutcome(outcome) }, outcome });
        else if (pausing) {
          const atMs = now + nextDelayMs(policy, ++this.consecutiveFailures, outcome, random);
          this.pauseUntil(atMs);
          settled.push({ s: retryOrGiveUp(item, atMs, describeOutcome(outcome)), outcome });
        } else {
          const atMs = now + nextDelayMs(policy, item.attempts + 1, outcome, random);
          settled.push({ s: retryOrGiveUp(item, atMs, describeOutcome(outcome)), outcome });
        }
      }
    }
    await queue.settle(settled.map((x) => x.s));
    for (const { s, outcome } of settled) this.opts.onSettled?.(s, outcome);
  }
}

/**
 * A queue in memory (deliveries that cannot be durable): bounded, oldest dropped first when
 * full. Items are kept until delivered or failed; `payload` travels with them.
 */
export class MemoryQueue<P> implements DeliveryQueue<MemoryItem<P>> {
  private readonly items = new Map<string, { item: MemoryItem<P>; dueMs: number }>();
  private seq = 0;

  constructor(
    private readonly maxItems: number,
    private readonly onDropped: (item: MemoryItem<P>) => void = () => undefined,
  ) {}

  get size(): number {
    return this.items.size;
  }

  push(payload: P, nowMs: number): void {
    if (this.items.size >= this.maxItems) {
      const oldest = this.items.keys().next().value;
      if (oldest !== undefined) {
        const o = this.items.get(oldest)!;
        this.items.delete(oldest);
        this.onDropped(o.item);
      }
    }
    const itemId = String(++this.seq);
    this.items.set(itemId, { item: { itemId, attempts: 0, payload }, dueMs: nowMs });
  }

  due(nowMs: number, limit: number): MemoryItem<P>[] {
    const out: { item: MemoryItem<P>; dueMs: number }[] = [];
    for (const e of this.items.values()) if (e.dueMs <= nowMs) out.push(e);
    return out
      .sort((a, b) => a.dueMs - b.dueMs)
      .slice(0, limit)
      .map((e) => e.item);
  }

  settle(settlements: readonly Settlement<MemoryItem<P>>[]): void {
    for (const s of settlements) {
      const id = s.item.itemId;
      if (!this.items.has(id)) continue;
      if (s.kind === 'retry') this.items.set(id, { item: { ...s.item, attempts: s.attempts }, dueMs: s.atMs });
      else this.items.delete(id);
    }
  }

  nextDueMs(): number | null {
    let min: number | null = null;
    for (const e of this.items.values()) if (min === null || e.dueMs < min) min = e.dueMs;
    return min;
  }
}

export interface MemoryItem<P> extends QueuedItem {
  readonly payload: P;
}

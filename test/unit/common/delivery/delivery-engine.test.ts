// The common delivery engine over an in-memory queue: each attempt's outcome decides the item's
// fate (delivered, retried with its attempts counted, failed), a failed call retries the whole
// cycle, maxAttempts gives an item up, a full queue drops its oldest, and stop() leaves what was
// not settled in the queue. Zero backoff: the assertions are about outcomes, never timing.
import { describe, expect, it } from 'vitest';
import {
  DeliveryEngine,
  MemoryQueue,
  type DeliveryResult,
  type MemoryItem,
  type Settlement,
} from '../../../../common/delivery/delivery-engine.js';
import type { BackoffPolicy, SendOutcome } from '../../../../common/delivery/retry-policy.js';
import { logSink } from '../../../helpers/log-sink.js';

const ZERO: BackoffPolicy = { initialMs: 0, maxMs: 0, multiplier: 1, jitter: 0, unauthorizedMs: 0 };

function rig(answer: (payload: string, attempt: number) => SendOutcome | 'throw', opts: { maxAttempts?: number; maxBatch?: number } = {}) {
  const queue = new MemoryQueue<string>(100);
  const calls: string[] = [];
  const settled: { kind: Settlement<MemoryItem<string>>['kind']; payload: string; attempts: number; reason?: string }[] = [];
  const tries = new Map<string, number>();
  const engine = new DeliveryEngine<MemoryItem<string>>({
    queue,
    target: {
      name: 'test',
      maxBatch: opts.maxBatch ?? 10,
      deliver: (items): Promise<DeliveryResult> => {
        const map = new Map<string, SendOutcome>();
        for (const it of items) {
          calls.push(it.payload);
          const n = (tries.get(it.payload) ?? 0) + 1;
          tries.set(it.payload, n);
          const a = answer(it.payload, n);
          if (a === 'throw') return Promise.reject(new Error('target broke'));
          if (a.kind === 'retryable' && it.payload.startsWith('down')) return Promise.resolve({ kind: 'failed', outcome: a });
          if (a.kind !== 'success') map.set(it.itemId, a);
        }
        return Promise.resolve({ kind: 'answered', items: map });
      },
    },
    policy: ZERO,
    logger: logSink().logger,
    now: Date.now,
    idlePollMs: 10,
    ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}),
    onSettled: (s) =>
      settled.push({
        kind: s.kind,
        payload: s.item.payload,
        attempts: s.kind === 'delivered' ? s.item.attempts : s.attempts,
        ...(s.kind === 'delivered' ? {} : { reason: s.reason }),
      }),
  });
  return { queue, engine, calls, settled };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
}

describe('DeliveryEngine', () => {
  it('delivers, retries a retryable item with its attempts counted, and parks a permanent refusal', async () => {
    const r = rig((p, n) =>
      p === 'bad'
        ? { kind: 'permanent', reason: 'http-400', status: 400 }
        : p === 'flaky' && n < 3
          ? { kind: 'retryable', reason: 'http-503' }
          : { kind: 'success' },
    );
    for (const p of ['ok', 'bad', 'flaky']) r.queue.push(p, Date.now());
    r.engine.start();
    await until(() => r.queue.size === 0);
    await r.engine.stop();
    expect(r.settled).toEqual([
      { kind: 'delivered', payload: 'ok', attempts: 0 },
      { kind: 'failed', payload: 'bad', attempts: 1, reason: 'http-400' },
      { kind: 'retry', payload: 'flaky', attempts: 1, reason: 'http-503' },
      { kind: 'retry', payload: 'flaky', attempts: 2, reason: 'http-503' },
      { kind: 'delivered', payload: 'flaky', attempts: 2 },
    ]);
  });

  it('a failed call (no answer) retries every item of the cycle; a throwing target counts as one', async () => {
    const r = rig((_p, n) => (n === 1 ? { kind: 'retryable', reason: 'ECONNREFUSED' } : n === 2 ? 'throw' : { kind: 'success' }), {
      maxBatch: 1,
    });
    r.queue.push('down-1', Date.now());
    r.engine.start();
    await until(() => r.queue.size === 0);
    await r.engine.stop();
    expect(r.settled.map((s) => [s.kind, s.reason ?? null])).toEqual([
      ['retry', 'ECONNREFUSED'],
      ['retry', 'sink-error'],
      ['delivered', null],
    ]);
  });

  it('gives an item up after maxAttempts, and a misconfigured destination is retried like an outage until then', async () => {
    const r = rig(() => ({ kind: 'misconfigured', reason: 'http-404', status: 404 }), { maxAttempts: 3 });
    r.queue.push('x', Date.now());
    r.engine.start();
    await until(() => r.queue.size === 0);
    await r.engine.stop();
    expect(r.settled.map((s) => [s.kind, s.attempts])).toEqual([
      ['retry', 1],
      ['retry', 2],
      ['failed', 3],
    ]);
    expect(r.settled[2]!.reason).toBe('gave up after 3 attempts: http-404');
  });

  it('a full memory queue drops its oldest item', () => {
    const dropped: string[] = [];
    const q = new MemoryQueue<string>(2, (i) => dropped.push(i.payload));
    for (const p of ['a', 'b', 'c']) q.push(p, 0);
    expect(dropped).toEqual(['a']);
    expect(q.due(0, 10).map((i) => i.payload)).toEqual(['b', 'c']);
  });

  it('stop() leaves undelivered items in the queue', async () => {
    const r = rig(() => ({ kind: 'retryable', reason: 'http-503' }));
    r.queue.push('stays', Date.now());
    r.engine.start();
    await until(() => r.calls.length >= 1);
    await r.engine.stop();
    expect(r.queue.size).toBe(1);
    expect(r.settled.every((s) => s.kind === 'retry')).toBe(true);
  });

  it('runNow() tries what is due and resolves once it settled, one cycle at a time', async () => {
    const r = rig(() => ({ kind: 'success' }));
    r.engine.start();
    r.queue.push('first', Date.now());
    await r.engine.runNow();
    expect(r.settled).toEqual([{ kind: 'delivered', payload: 'first', attempts: 0 }]);
    // Two callers at once: each waits for the cycle in flight; every item is tried once.
    r.queue.push('second', Date.now());
    const both = Promise.all([r.engine.runNow(), r.engine.runNow()]);
    r.queue.push('third', Date.now());
    await both;
    expect(r.calls).toEqual(['first', 'second', 'third']);
    expect(r.queue.size).toBe(0);
    await r.engine.stop();
    r.queue.push('after stop', Date.now());
    await r.engine.runNow();
    expect(r.calls).not.toContain('after stop');
  });

  it('never runs two cycles at once, even when a wake-up comes while the queue is read for the next due time', async () => {
    // A queue whose reads answer when the test says (as a database's do), and a target that holds
    // its answer: the wake-up lands while the engine awaits nextDueMs after an empty cycle.
    const memory = new MemoryQueue<string>(10);
    const reads: (() => void)[] = [];
    const answers: (() => void)[] = [];
    const releaseAll = (list: (() => void)[]) => list.splice(0).forEach((r) => r());
    let inDeliver = 0;
    let maxInDeliver = 0;
    const calls: string[] = [];
    const engine = new DeliveryEngine<MemoryItem<string>>({
      queue: {
        due: (now, limit) => memory.due(now, limit),
        settle: (s) => memory.settle(s),
        nextDueMs: () => new Promise((resolve) => reads.push(() => resolve(memory.nextDueMs()))),
      },
      target: {
        name: 'test',
        maxBatch: 10,
        deliver: async (items) => {
          maxInDeliver = Math.max(maxInDeliver, ++inDeliver);
          calls.push(...items.map((i) => i.payload));
          await new Promise<void>((resolve) => answers.push(resolve));
          inDeliver--;
          return { kind: 'answered', items: new Map() };
        },
      },
      policy: ZERO,
      logger: logSink().logger,
      now: Date.now,
      idlePollMs: 10,
    });
    engine.start();
    await until(() => reads.length === 1); // the empty first cycle ended: nextDueMs is being read
    memory.push('once', Date.now());
    engine.wake(); // a cycle starts and holds in deliver
    await until(() => calls.length === 1);
    releaseAll(reads); // the old read answers "due now" while that cycle is still in flight
    await new Promise((r) => setTimeout(r, 50));
    expect(maxInDeliver).toBe(1);
    for (let i = 0; i < 100 && memory.size > 0; i++) {
      releaseAll(answers);
      releaseAll(reads);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(memory.size).toBe(0);
    expect(calls).toEqual(['once']);
    const stopping = engine.stop();
    releaseAll(answers);
    releaseAll(reads);
    await stopping;
  });

  describe('retryPausesTarget (a queue that hands items out in its own order)', () => {
    /** A clock the test moves, a one-item cycle, and a 60 s backoff: only the clock ends a pause. */
    function paused(retryPausesTarget: boolean) {
      let t = 1_000_000;
      const queue = new MemoryQueue<string>(10);
      const calls: string[] = [];
      const tries = new Map<string, number>();
      const engine = new DeliveryEngine<MemoryItem<string>>({
        queue,
        target: {
          name: 'test',
          maxBatch: 1,
          deliver: (items) => {
            const map = new Map<string, SendOutcome>();
            for (const it of items) {
              calls.push(it.payload);
              const n = (tries.get(it.payload) ?? 0) + 1;
              tries.set(it.payload, n);
              if (it.payload === 'refused' && n === 1) map.set(it.itemId, { kind: 'retryable', reason: 'http-503' });
            }
            return Promise.resolve({ kind: 'answered', items: map });
          },
        },
        policy: { initialMs: 60_000, maxMs: 60_000, multiplier: 1, jitter: 0, unauthorizedMs: 60_000 },
        logger: logSink().logger,
        now: () => t,
        retryPausesTarget,
      });
      return { queue, engine, calls, advance: (ms: number) => (t += ms), now: () => t };
    }

    it('a retry answer for one item pauses the target: the next item waits for the backoff too', async () => {
      const r = paused(true);
      r.queue.push('refused', r.now());
      r.queue.push('next', r.now());
      await r.engine.runNow();
      await r.engine.runNow();
      expect(r.calls).toEqual(['refused']);
      r.advance(60_001);
      await r.engine.runNow();
      await r.engine.runNow();
      expect(r.calls).toEqual(['refused', 'next', 'refused']);
      expect(r.queue.size).toBe(0);
      await r.engine.stop();
    });

    it('without it, the other items go on at once', async () => {
      const r = paused(false);
      r.queue.push('refused', r.now());
      r.queue.push('next', r.now());
      await r.engine.runNow();
      await r.engine.runNow();
      expect(r.calls).toEqual(['refused', 'next']);
      await r.engine.stop();
    });

    it('pauseUntil() holds every cycle until then, and a shorter pause does not shorten it', async () => {
      const r = paused(true);
      r.queue.push('held', r.now());
      r.engine.pauseUntil(r.now() + 5_000);
      r.engine.pauseUntil(r.now() + 1_000);
      r.advance(2_000);
      await r.engine.runNow();
      expect(r.calls).toEqual([]);
      r.advance(3_001);
      await r.engine.runNow();
      expect(r.calls).toEqual(['held']);
      await r.engine.stop();
    });
  });
});

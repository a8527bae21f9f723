// The spool's in-memory order of live batches. No I/O: the spool decides what
// is durable; this decides what comes next.
//
//   retry  [41 45]          released or recovered batches, by seq
//   fresh  [·· ·· 47 48 ×49 50]   never taken, by seq; ·· consumed, × removed
//                  ▲
//               freshHead  (its seq is state.json's readIndex)
//   inFlight {42 46}        taken, not yet acked/released
//
// Invariant: a batch is only ever taken when it is the lowest pending seq,
// so every retry or in-flight batch is older than every fresh one. That makes
// "retry first, then fresh" the FIFO order, and lets state.json describe the
// queue as readIndex + the taken batches + the few fresh ones removed early.

import type { LiveBatch } from './spool-recovery.js';
import type { SpoolState } from './spool-state.js';

export class BatchQueue {
  private readonly byId = new Map<string, LiveBatch>();
  private readonly inFlight = new Set<LiveBatch>();
  private readonly retry: LiveBatch[];
  private fresh: LiveBatch[];
  private freshHead = 0;
  /** Fresh seqs removed before reaching the head (ack or dead-letter of a pending batch). */
  private readonly skippedSeqs = new Set<number>();
  private liveBytes = 0;

  constructor(retry: LiveBatch[], fresh: LiveBatch[]) {
    this.retry = [...retry];
    this.fresh = [...fresh];
    for (const b of [...retry, ...fresh]) this.index(b);
  }

  get size(): number {
    return this.byId.size;
  }

  get bytes(): number {
    return this.liveBytes;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  get retryCount(): number {
    return this.retry.length;
  }

  get(id: string): LiveBatch | undefined {
    return this.byId.get(id);
  }

  /** Contract: `batch` is newer than every batch already queued. */
  pushFresh(batch: LiveBatch): void {
    this.fresh.push(batch);
    this.index(batch);
  }

  /** The batch take() hands out next, left in place. */
  peek(): LiveBatch | undefined {
    return this.retry[0] ?? this.freshHeadBatch();
  }

  /** Contract: `batch` is what peek() just returned. */
  markTaken(batch: LiveBatch): void {
    if (batch.taken) this.retry.shift();
    else this.freshHead += 1;
    batch.taken = true;
    batch.inFlight = true;
    this.inFlight.add(batch);
  }

  /** In flight → retry, at its seq position; returns false if it was not in flight. */
  release(batch: LiveBatch): boolean {
    if (!batch.inFlight) return false;
    batch.inFlight = false;
    batch.attempts += 1;
    this.inFlight.delete(batch);
    let lo = 0;
    for (let hi = this.retry.length; lo < hi;) {
      const mid = (lo + hi) >>> 1;
      if (this.retry[mid]!.seq < batch.seq) lo = mid + 1;
      else hi = mid;
    }
    this.retry.splice(lo, 0, batch);
    return true;
  }

  remove(batch: LiveBatch): void {
    if (batch.removed) return;
    batch.removed = true;
    this.byId.delete(batch.id);
    this.liveBytes -= batch.size;
    if (batch.inFlight) {
      batch.inFlight = false;
      this.inFlight.delete(batch);
    } else if (batch.taken) {
      this.retry.splice(this.retry.indexOf(batch), 1);
    } else {
      this.skippedSeqs.add(batch.seq);
    }
  }

  /**
   * Overflow victim: the oldest pending batch older than `protectFromSeq`,
   * else the oldest in flight, else (only if those are all gone) the oldest
   * protected one. The spool protects the batches it has just appended.
   */
  overflowVictim(protectFromSeq: number): LiveBatch | undefined {
    const pending = this.peek();
    if (pending !== undefined && pending.seq < protectFromSeq) return pending;
    return [...this.inFlight].sort((a, b) => a.seq - b.seq)[0] ?? pending;
  }

  oldestEnqueuedAt(): number | null {
    const heads = [...this.inFlight, this.retry[0], this.freshHeadBatch()].filter((b) => b !== undefined);
    return heads.length === 0 ? null : Math.min(...heads.map((b) => b.enqueuedAt));
  }

  /** The queue part of state.json; `writeIndex` is the next seq to be assigned. */
  stateMarks(writeIndex: number): Pick<SpoolState, 'readIndex' | 'inFlight' | 'skipped'> {
    const readIndex = this.freshHeadBatch()?.seq ?? writeIndex;
    for (const seq of this.skippedSeqs) if (seq < readIndex) this.skippedSeqs.delete(seq);
    const taken = [...this.inFlight, ...this.retry].sort((a, b) => a.seq - b.seq);
    return {
      readIndex,
      inFlight: taken.map((b) => ({ seq: b.seq, id: b.id, attempts: b.attempts })),
      skipped: [...this.skippedSeqs].sort((a, b) => a - b),
    };
  }

  private index(batch: LiveBatch): void {
    this.byId.set(batch.id, batch);
    this.liveBytes += batch.size;
  }

  private freshHeadBatch(): LiveBatch | undefined {
    while (this.freshHead < this.fresh.length && this.fresh[this.freshHead]!.removed) this.freshHead += 1;
    if (this.freshHead > 1024 && this.freshHead * 2 > this.fresh.length) {
      this.fresh = this.fresh.slice(this.freshHead);
      this.freshHead = 0;
    }
    return this.fresh[this.freshHead];
  }
}

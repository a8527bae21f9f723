// A durable on-disk FIFO of opaque batches: the shipper's outbox.
//
//   dir/
//   ├── segment-000000007.log   ┌────┬────┬────┬────┬────┐  append-only records
//   ├── segment-000000008.log   │ 41 │ 42 │ 43 │ 44 │ 45 │  (spool-record.ts)
//   ├── state.json              └─▲──┴──x─┴─▲──┴────┴────┘
//   └── dead-letter/              │     x   │              ▲
//       <id>.bin + <id>.json  in flight │  readIndex       writeIndex
//                                     acked
//
//   append ─▶ write + fdatasync ─▶ pending ─take─▶ in flight ─ack────────▶ gone
//                                     ▲               │ └──deadLetter──▶ dead-letter/
//                                     └───release─────┘ (attempts+1, same place)
//
// Crash-safety contract:
// - A batch whose append resolved survives SIGKILL and power loss: its record
//   is fdatasync'ed (and a new segment's directory entry fsync'ed) first.
// - take and release live in memory; ack, deadLetter and overflow drops
//   rewrite state.json atomically (acks arriving together share one write).
//   After a crash, batches that were in flight are pending again, ahead of the
//   rest, in their original order; an acknowledged batch is sent again only if
//   its ack had not been persisted. Delivery is at-least-once; the detector
//   dedupes on batch id.
// - A segment file is deleted only after a state.json that finishes every
//   batch in it is durable.
// - One process owns a spool directory (there is no lock file).
//
// Bounds: maxBytes caps the record bytes (92-byte header + payload) of live
// batches. Overflow drops the oldest pending batches, then, only if in-flight
// ones alone still overflow, the oldest in flight (its later ack or release is
// then a no-op). Disk use can exceed maxBytes by finished records that share a
// segment with a live one.

import { join } from 'node:path';
import { BATCH_ID_PATTERN, RECORD_HEADER_BYTES, encodeRecord, payloadOf, recordSize } from './spool-record.js';
import { BatchQueue } from './spool-queue.js';
import { recoverSpool, type LiveBatch } from './spool-recovery.js';
import { SegmentFiles } from './spool-segments.js';
import { makeDirDurably, writeFileAtomically, writeState } from './spool-state.js';
import {
  DEFAULT_SEGMENT_BYTES,
  SpoolError,
  validateSpoolOptions,
  type SpoolEntry,
  type SpoolEvent,
  type SpoolOptions,
} from './spool-types.js';

export { SpoolError, type SpoolEntry, type SpoolErrorCode, type SpoolEvent, type SpoolOptions } from './spool-types.js';

export interface SpoolBatch {
  id: string;
  payload: Buffer;
}

export interface SpoolStats {
  /** Live batches: pending + in flight. */
  batches: number;
  /** Their record bytes, the figure maxBytes caps. */
  bytes: number;
  inFlight: number;
  oldestEnqueuedAt: number | null;
}

interface WaitingAppend {
  batches: readonly SpoolBatch[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class Spool {
  private waiting: WaitingAppend[] = [];
  private readonly queuedIds = new Set<string>();
  private queuedFlush: Promise<void> | null = null;
  private chain: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly now: () => number,
    private readonly onEvent: ((e: SpoolEvent) => void) | undefined,
    private readonly queue: BatchQueue,
    private readonly files: SegmentFiles,
    private writeIndex: number,
  ) {}

  /** Recovers the spool in `opts.dir` (created if absent) and makes the recovered state durable. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    validateSpoolOptions(opts);
    const now = opts.now ?? Date.now;
    await makeDirDurably(opts.dir);
    const r = await recoverSpool(opts.dir, now());
    const files = new SegmentFiles(opts.dir, opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES, r.segments);
    const spool = new Spool(opts.dir, opts.maxBytes, now, opts.onEvent, new BatchQueue(r.retry, r.fresh), files, r.writeIndex);
    if (r.stateReset !== null) spool.emit({ kind: 'state-reset', reason: r.stateReset });
    for (const damage of r.damage) spool.emit({ kind: 'truncated', ...damage });
    spool.dropOverflow(spool.writeIndex);
    await spool.persistAndCollect();
    spool.emit({ kind: 'recovered', pending: spool.queue.size, inFlight: spool.queue.retryCount });
    return spool;
  }

  append(id: string, payload: Buffer): Promise<void> {
    return this.appendMany([{ id, payload }]);
  }

  /**
   * Appends batches in order and resolves once all are durable. Calls that
   * overlap are committed together: one write and one fdatasync per segment
   * touched. If the write fails every batch of the commit is rejected (some
   * may still reappear after a restart: at-least-once). Rejected up front:
   * bad ids, ids already spooled, more record bytes than maxBytes.
   */
  async appendMany(batches: readonly SpoolBatch[]): Promise<void> {
    this.checkAppendable(batches);
    if (batches.length === 0) return;
    for (const b of batches) this.queuedIds.add(b.id);
    await new Promise<void>((resolve, reject) => {
      this.waiting.push({ batches: [...batches], resolve, reject });
      if (this.waiting.length === 1) void this.exclusive(() => this.commitWaiting());
    });
  }

  /**
   * The next pending batch, now in flight, or null. Never hands out an
   * in-flight batch. Reads the record with one synchronous pread (a batch is
   * small; it keeps take() synchronous) and checks its CRC: a record that no
   * longer reads back intact is dropped with reason 'corrupt'.
   */
  take(): SpoolEntry | null {
    this.assertOpen();
    for (let batch = this.queue.peek(); batch !== undefined; batch = this.queue.peek()) {
      const payload = this.readPayload(batch);
      if (payload !== null) {
        this.queue.markTaken(batch);
        return { id: batch.id, payload, enqueuedAt: batch.enqueuedAt, attempts: batch.attempts };
      }
      this.remove(batch);
      this.emit({ kind: 'dropped', id: batch.id, bytes: batch.size, reason: 'corrupt' });
    }
    return null;
  }

  /** The batch leaves for good once state.json says so. Unknown or finished ids are a no-op. */
  async ack(id: string): Promise<void> {
    this.assertOpen();
    const batch = this.queue.get(id);
    if (batch === undefined) return;
    this.remove(batch);
    await this.flushState();
  }

  /** In flight → pending again at its original place, attempts+1. A no-op for any other id. */
  release(id: string): void {
    const batch = this.queue.get(id);
    if (batch !== undefined) this.queue.release(batch);
  }

  /** Writes `dead-letter/<id>.bin` and `<id>.json` (reason, times, attempts) durably, then removes the batch. */
  async deadLetter(id: string, reason: string): Promise<void> {
    this.assertOpen();
    await this.exclusive(async () => {
      const batch = this.queue.get(id);
      if (batch === undefined) return;
      const deadDir = join(this.dir, 'dead-letter');
      await makeDirDurably(deadDir);
      // A damaged record is kept as whatever bytes follow its header.
      const payload = this.readPayload(batch) ?? this.files.read(batch.segment, batch.offset, batch.size).subarray(RECORD_HEADER_BYTES);
      const meta = {
        id,
        reason,
        deadLetteredAt: new Date(this.now()).toISOString(),
        enqueuedAt: new Date(batch.enqueuedAt).toISOString(),
        attempts: batch.attempts,
        bytes: payload.length,
      };
      await writeFileAtomically(deadDir, `${id}.bin`, payload);
      await writeFileAtomically(deadDir, `${id}.json`, Buffer.from(`${JSON.stringify(meta, null, 2)}\n`));
      if (batch.removed) return;
      this.remove(batch);
      this.emit({ kind: 'dead-lettered', id, reason });
      await this.persistAndCollect();
    });
  }

  stats(): SpoolStats {
    return {
      batches: this.queue.size,
      bytes: this.queue.bytes,
      inFlight: this.queue.inFlightCount,
      oldestEnqueuedAt: this.queue.oldestEnqueuedAt(),
    };
  }

  /** Waits for queued appends and state writes, persists the in-flight marks, closes files. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.exclusive(async () => {
      try {
        await this.persistAndCollect();
      } finally {
        await this.files.close();
      }
    });
    return this.closing;
  }

  private checkAppendable(batches: readonly SpoolBatch[]): void {
    this.assertOpen();
    let total = 0;
    const ids = new Set<string>();
    for (const { id, payload } of batches) {
      if (typeof id !== 'string' || !BATCH_ID_PATTERN.test(id))
        throw new SpoolError('SPOOL_INVALID_ID', `batch id must match ${BATCH_ID_PATTERN.source}`);
      if (!Buffer.isBuffer(payload)) throw new SpoolError('SPOOL_INVALID_PAYLOAD', `batch ${id}: payload must be a Buffer`);
      if (ids.has(id) || this.queue.get(id) !== undefined || this.queuedIds.has(id)) {
        throw new SpoolError('SPOOL_DUPLICATE_ID', `batch ${id} is already in the spool`);
      }
      ids.add(id);
      total += recordSize(payload.length);
    }
    if (total > this.maxBytes) throw new SpoolError('SPOOL_BATCH_TOO_LARGE', `${total} record bytes exceed maxBytes ${this.maxBytes}`);
  }

  /** Holds the exclusive section. Seqs are consumed even if the write fails, so they are never reused. */
  private async commitWaiting(): Promise<void> {
    const group = this.waiting;
    this.waiting = [];
    const batches = group.flatMap((w) => w.batches);
    const enqueuedAt = this.now();
    const firstSeq = this.writeIndex;
    this.writeIndex += batches.length;
    try {
      const records = batches.map((b, i) => encodeRecord(firstSeq + i, enqueuedAt, b.id, b.payload));
      const placements = await this.files.append(records);
      placements.forEach(({ segment, offset }, i) => {
        const { id } = batches[i]!;
        const size = records[i]!.length;
        this.queue.pushFresh({
          id,
          seq: firstSeq + i,
          segment,
          offset,
          size,
          enqueuedAt,
          attempts: 0,
          taken: false,
          inFlight: false,
          removed: false,
        });
        this.files.addLive(segment, 1);
      });
    } catch (err) {
      for (const w of group) w.reject(err);
      return;
    } finally {
      for (const b of batches) this.queuedIds.delete(b.id);
    }
    for (const w of group) w.resolve();
    // The appended batches are durable whatever happens here; if this write
    // fails, the next state write deletes the emptied segments instead.
    if (this.dropOverflow(firstSeq)) await this.persistAndCollect().catch(() => undefined);
  }

  /** Drops oldest first, sparing seqs ≥ protectFromSeq while it can, until live bytes fit; returns whether anything went. */
  private dropOverflow(protectFromSeq: number): boolean {
    let dropped = false;
    const victim = (): LiveBatch | undefined => (this.queue.bytes > this.maxBytes ? this.queue.overflowVictim(protectFromSeq) : undefined);
    for (let v = victim(); v !== undefined; v = victim()) {
      this.remove(v);
      this.emit({ kind: 'dropped', id: v.id, bytes: v.size, reason: 'overflow' });
      dropped = true;
    }
    return dropped;
  }

  private remove(batch: LiveBatch): void {
    if (batch.removed) return;
    this.queue.remove(batch);
    this.files.addLive(batch.segment, -1);
  }

  /** The payload, or null if the record no longer reads back intact. */
  private readPayload(batch: LiveBatch): Buffer | null {
    const record = this.files.read(batch.segment, batch.offset, batch.size);
    return record.length === batch.size ? payloadOf(record, batch) : null;
  }

  /** One state write shared by every ack that arrives before it starts. */
  private flushState(): Promise<void> {
    this.queuedFlush ??= this.exclusive(() => {
      this.queuedFlush = null;
      return this.persistAndCollect();
    });
    return this.queuedFlush;
  }

  /** Caller holds the exclusive section. State first: segments go only once it is durable. */
  private async persistAndCollect(): Promise<void> {
    await writeState(this.dir, { version: 1, writeIndex: this.writeIndex, ...this.queue.stateMarks(this.writeIndex) });
    await this.files.deleteEmpty();
  }

  /** Serializes everything that writes to the directory. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private assertOpen(): void {
    if (this.closing !== null) throw new SpoolError('SPOOL_CLOSED', 'spool is closed');
  }

  private emit(event: SpoolEvent): void {
    try {
      this.onEvent?.(event);
    } catch {
      // A throwing listener must not break the queue's bookkeeping.
    }
  }
}

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RECORD_HEADER_BYTES } from '../../../../agent/ship/spool-record.js';
import { Spool, SpoolError } from '../../../../agent/ship/spool.js';
import { appendIds, batchId, makeTempDir, openSpool, payloadFor, removeTempDirs, segmentFiles, takeAll } from './spool-test-utils.js';

afterEach(removeTempDirs);

const ids = (n: number, prefix?: string): string[] => Array.from({ length: n }, (_, i) => batchId(i, prefix));

describe('Spool queue semantics', () => {
  it('hands batches out in FIFO order with their payloads, then null', async () => {
    const { spool } = await openSpool(await makeTempDir());
    await appendIds(spool, ids(5));
    const taken = takeAll(spool);
    expect(taken.map((e) => e.id)).toEqual(ids(5));
    for (const e of taken) expect(e.payload.equals(payloadFor(e.id))).toBe(true);
    expect(spool.take()).toBeNull();
    await spool.close();
  });

  it('never hands out an in-flight batch, and counts in-flight ones', async () => {
    const { spool } = await openSpool(await makeTempDir());
    await appendIds(spool, ids(2));
    expect(spool.take()?.id).toBe(batchId(0));
    expect(spool.take()?.id).toBe(batchId(1));
    expect(spool.take()).toBeNull();
    expect(spool.stats()).toMatchObject({ batches: 2, inFlight: 2 });
    await spool.close();
  });

  it('release puts a batch back at its original place with attempts+1', async () => {
    const { spool } = await openSpool(await makeTempDir());
    await appendIds(spool, ids(4));
    const a = spool.take()!;
    const b = spool.take()!;
    spool.release(b.id);
    const again = spool.take()!;
    expect(again).toMatchObject({ id: b.id, attempts: 1 });
    spool.release(again.id);
    spool.release(a.id);
    expect(takeAll(spool).map((e) => [e.id, e.attempts])).toEqual([
      [a.id, 1],
      [b.id, 2],
      [batchId(2), 0],
      [batchId(3), 0],
    ]);
    await spool.close();
  });

  it('ack removes a batch for good; a second ack, an unknown id and a stray release are no-ops', async () => {
    const { spool } = await openSpool(await makeTempDir());
    await appendIds(spool, ids(3));
    const first = spool.take()!;
    await spool.ack(first.id);
    await spool.ack(first.id);
    await spool.ack('never-spooled');
    spool.release(first.id);
    spool.release(batchId(1)); // pending, not in flight
    expect(takeAll(spool).map((e) => [e.id, e.attempts])).toEqual([
      [batchId(1), 0],
      [batchId(2), 0],
    ]);
    expect(spool.stats()).toMatchObject({ batches: 2, inFlight: 2 });
    await spool.close();
  });

  it('acking a pending batch (never taken, not at the head) removes it across a reopen', async () => {
    const dir = await makeTempDir();
    const { spool } = await openSpool(dir);
    await appendIds(spool, ids(3));
    await spool.ack(batchId(1));
    await spool.close();
    const reopened = (await openSpool(dir)).spool;
    expect(takeAll(reopened).map((e) => e.id)).toEqual([batchId(0), batchId(2)]);
    await reopened.close();
  });

  it('appendMany keeps order, and overlapping appends commit in call order', async () => {
    const { spool } = await openSpool(await makeTempDir());
    await spool.appendMany(ids(3, 'many').map((id) => ({ id, payload: payloadFor(id) })));
    await Promise.all(ids(20, 'concurrent').map((id) => spool.append(id, payloadFor(id))));
    expect(takeAll(spool).map((e) => e.id)).toEqual([...ids(3, 'many'), ...ids(20, 'concurrent')]);
    await spool.close();
  });

  it('reports stats with the oldest enqueue time from the injected clock', async () => {
    let now = 1_000;
    const { spool } = await openSpool(await makeTempDir(), { now: () => now });
    expect(spool.stats()).toEqual({ batches: 0, bytes: 0, inFlight: 0, oldestEnqueuedAt: null });
    await spool.append(batchId(0), payloadFor(batchId(0), 100));
    now = 2_000;
    await spool.append(batchId(1), payloadFor(batchId(1), 100));
    expect(spool.stats()).toEqual({ batches: 2, bytes: 2 * (RECORD_HEADER_BYTES + 100), inFlight: 0, oldestEnqueuedAt: 1_000 });
    expect(spool.take()).toMatchObject({ enqueuedAt: 1_000 });
    await spool.close();
  });
});

describe('Spool input checks', () => {
  it('rejects bad ids, duplicate ids, non-Buffer payloads and use after close', async () => {
    const { spool } = await openSpool(await makeTempDir());
    await expect(spool.append('short', Buffer.alloc(1))).rejects.toMatchObject({ code: 'SPOOL_INVALID_ID' });
    await expect(spool.append('has space in it', Buffer.alloc(1))).rejects.toMatchObject({ code: 'SPOOL_INVALID_ID' });
    await expect(spool.append('x'.repeat(65), Buffer.alloc(1))).rejects.toMatchObject({ code: 'SPOOL_INVALID_ID' });
    await expect(spool.append(batchId(0), 'text' as unknown as Buffer)).rejects.toMatchObject({ code: 'SPOOL_INVALID_PAYLOAD' });
    const pending = spool.append(batchId(1), Buffer.alloc(1));
    await expect(spool.append(batchId(1), Buffer.alloc(1))).rejects.toMatchObject({ code: 'SPOOL_DUPLICATE_ID' });
    await pending;
    await expect(spool.append(batchId(1), Buffer.alloc(1))).rejects.toMatchObject({ code: 'SPOOL_DUPLICATE_ID' });
    const twice = [batchId(2), batchId(2)].map((id) => ({ id, payload: Buffer.alloc(1) }));
    await expect(spool.appendMany(twice)).rejects.toMatchObject({ code: 'SPOOL_DUPLICATE_ID' });
    expect(spool.stats().batches).toBe(1); // nothing of a rejected call is written
    await spool.close();
    await spool.close();
    await expect(spool.append(batchId(3), Buffer.alloc(1))).rejects.toMatchObject({ code: 'SPOOL_CLOSED' });
    expect(() => spool.take()).toThrow(SpoolError);
    await expect(spool.ack(batchId(1))).rejects.toMatchObject({ code: 'SPOOL_CLOSED' });
  });

  it('fails fast on invalid options', async () => {
    const dir = await makeTempDir();
    await expect(Spool.open({ dir, maxBytes: 0 })).rejects.toMatchObject({ code: 'SPOOL_INVALID_OPTIONS' });
    await expect(Spool.open({ dir, maxBytes: 1e6, segmentBytes: 10 })).rejects.toMatchObject({ code: 'SPOOL_INVALID_OPTIONS' });
    await expect(Spool.open({ dir: '', maxBytes: 1e6 })).rejects.toMatchObject({ code: 'SPOOL_INVALID_OPTIONS' });
  });

  it('close waits for appends that are still being written', async () => {
    const dir = await makeTempDir();
    const { spool } = await openSpool(dir);
    const writes = ids(10).map((id) => spool.append(id, payloadFor(id)));
    await spool.close();
    await Promise.all(writes);
    const reopened = (await openSpool(dir)).spool;
    expect(takeAll(reopened).map((e) => e.id)).toEqual(ids(10));
    await reopened.close();
  });
});

describe('Spool overflow', () => {
  const recordBytes = RECORD_HEADER_BYTES + 100;

  it('drops the oldest pending batches and reports each one', async () => {
    const { spool, events } = await openSpool(await makeTempDir(), { maxBytes: 3 * recordBytes });
    await appendIds(spool, ids(5), 100);
    expect(events.filter((e) => e.kind === 'dropped')).toEqual([
      { kind: 'dropped', id: batchId(0), bytes: recordBytes, reason: 'overflow' },
      { kind: 'dropped', id: batchId(1), bytes: recordBytes, reason: 'overflow' },
    ]);
    expect(spool.stats()).toMatchObject({ batches: 3, bytes: 3 * recordBytes });
    expect(takeAll(spool).map((e) => e.id)).toEqual(ids(5).slice(2));
    await spool.close();
  });

  it('drops pending before in-flight, and in-flight only when nothing else is left', async () => {
    const { spool, events } = await openSpool(await makeTempDir(), { maxBytes: 2 * recordBytes });
    await appendIds(spool, ids(2), 100);
    const inFlight = spool.take()!;
    await spool.append(batchId(2), payloadFor(batchId(2), 100));
    expect(events.filter((e) => e.kind === 'dropped').map((e) => (e.kind === 'dropped' ? e.id : ''))).toEqual([batchId(1)]);
    spool.take();
    await spool.append(batchId(3), payloadFor(batchId(3), 100));
    expect(events.filter((e) => e.kind === 'dropped').map((e) => (e.kind === 'dropped' ? e.id : ''))).toEqual([batchId(1), inFlight.id]);
    await spool.ack(inFlight.id); // dropped: a no-op
    spool.release(inFlight.id);
    expect(spool.stats()).toMatchObject({ batches: 2, inFlight: 1 });
    await spool.close();
  });

  it('rejects a batch that alone exceeds maxBytes, and drops nothing for it', async () => {
    const { spool, events } = await openSpool(await makeTempDir(), { maxBytes: 1000 });
    await spool.append(batchId(0), Buffer.alloc(100));
    await expect(spool.append(batchId(1), Buffer.alloc(1000))).rejects.toMatchObject({ code: 'SPOOL_BATCH_TOO_LARGE' });
    expect(events.some((e) => e.kind === 'dropped')).toBe(false);
    expect(spool.stats().batches).toBe(1);
    await spool.close();
  });
});

describe('Spool files', () => {
  it('moves a dead-lettered batch to dead-letter/<id>.bin with a .json beside it, for good', async () => {
    const dir = await makeTempDir();
    const { spool, events } = await openSpool(dir, { now: () => Date.UTC(2025, 0, 2) });
    await appendIds(spool, ids(2));
    const bad = spool.take()!;
    spool.release(bad.id);
    spool.take();
    await spool.deadLetter(bad.id, 'permanent: http 422');
    await spool.deadLetter(bad.id, 'again'); // gone already: no-op
    expect(events).toContainEqual({ kind: 'dead-lettered', id: bad.id, reason: 'permanent: http 422' });
    expect((await readFile(join(dir, 'dead-letter', `${bad.id}.bin`))).equals(payloadFor(bad.id))).toBe(true);
    const meta = JSON.parse(await readFile(join(dir, 'dead-letter', `${bad.id}.json`), 'utf8'));
    expect(meta).toMatchObject({ id: bad.id, reason: 'permanent: http 422', attempts: 1, deadLetteredAt: '2025-01-02T00:00:00.000Z' });
    expect((await readdir(join(dir, 'dead-letter'))).sort()).toEqual([`${bad.id}.bin`, `${bad.id}.json`]);
    await spool.close();
    const reopened = (await openSpool(dir)).spool;
    expect(takeAll(reopened).map((e) => e.id)).toEqual([batchId(1)]);
    await reopened.close();
  });

  it('rotates segments at segmentBytes and deletes each once all its batches are acked', async () => {
    const dir = await makeTempDir();
    // 2,000-byte payloads: one 2,092-byte record per 4 KiB segment.
    const { spool } = await openSpool(dir, { segmentBytes: 4096 });
    await appendIds(spool, ids(4), 2000);
    expect(await segmentFiles(dir)).toHaveLength(4);
    const [a, b, c] = [spool.take()!, spool.take()!, spool.take()!];
    await spool.ack(b.id);
    expect(await segmentFiles(dir)).toHaveLength(3);
    await Promise.all([spool.ack(a.id), spool.ack(c.id)]);
    expect(await segmentFiles(dir)).toHaveLength(1);
    await spool.ack(spool.take()!.id);
    expect(await segmentFiles(dir)).toEqual([]);
    await spool.append(batchId(9), payloadFor(batchId(9)));
    expect(takeAll(spool).map((e) => e.id)).toEqual([batchId(9)]);
    await spool.close();
  });

  // Throughput is measured in bench/, not asserted here; this checks that many grouped appends all land, in order.
  it('keeps 10,000 × 2 KiB batches appended in groups of 100 (one fsync per group), in order', async () => {
    const { spool } = await openSpool(await makeTempDir(), { maxBytes: 1 << 30 });
    const payload = Buffer.alloc(2048, 1);
    for (let i = 0; i < 10_000; i += 100) {
      await spool.appendMany(Array.from({ length: 100 }, (_, j) => ({ id: batchId(i + j), payload })));
    }
    expect(spool.stats().batches).toBe(10_000);
    expect(spool.take()?.id).toBe(batchId(0));
    await spool.close();
  });

  it('gives a record larger than segmentBytes a segment of its own', async () => {
    const dir = await makeTempDir();
    const { spool } = await openSpool(dir, { segmentBytes: 4096 });
    await spool.appendMany([batchId(0), batchId(1), batchId(2)].map((id, i) => ({ id, payload: payloadFor(id, i === 1 ? 10_000 : 100) })));
    expect(await segmentFiles(dir)).toHaveLength(3);
    expect(takeAll(spool).map((e) => e.payload.length)).toEqual([100, 10_000, 100]);
    await spool.close();
  });
});

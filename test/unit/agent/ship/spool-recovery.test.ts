import { readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { RECORD_HEADER_BYTES } from '../../../../agent/ship/spool-record.js';
import type { Spool } from '../../../../agent/ship/spool.js';
import { appendIds, batchId, makeTempDir, openSpool, payloadFor, removeTempDirs, segmentFiles, takeAll } from './spool-test-utils.js';

afterEach(removeTempDirs);

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => batchId(i));
const PAYLOAD = 200;
const RECORD = RECORD_HEADER_BYTES + PAYLOAD;

async function spoolWithThree(dir: string): Promise<void> {
  const { spool } = await openSpool(dir);
  await appendIds(spool, ids(3), PAYLOAD);
  await spool.close();
}

async function lastSegment(dir: string): Promise<string> {
  return join(dir, (await segmentFiles(dir)).at(-1)!);
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = bytes[offset]! ^ 0xff;
  await writeFile(path, bytes);
}

describe('Spool reopen', () => {
  it('keeps pending batches across close and reopen', async () => {
    const dir = await makeTempDir();
    await spoolWithThree(dir);
    const { spool, events } = await openSpool(dir);
    expect(events).toEqual([{ kind: 'recovered', pending: 3, inFlight: 0 }]);
    expect(takeAll(spool).map((e) => e.id)).toEqual(ids(3));
    await spool.close();
  });

  it('makes in-flight batches pending again, at the front, in original order, attempts kept', async () => {
    const dir = await makeTempDir();
    const { spool } = await openSpool(dir);
    await appendIds(spool, ids(5), PAYLOAD);
    const [a, b, c] = [spool.take()!, spool.take()!, spool.take()!];
    spool.release(a.id);
    spool.take(); // a again, attempts 1
    await spool.ack(b.id);
    expect(c.id).toBe(batchId(2));
    await spool.close();
    const { spool: reopened, events } = await openSpool(dir);
    expect(events).toEqual([{ kind: 'recovered', pending: 4, inFlight: 2 }]);
    expect(takeAll(reopened).map((e) => [e.id, e.attempts])).toEqual([
      [batchId(0), 1],
      [batchId(2), 0],
      [batchId(3), 0],
      [batchId(4), 0],
    ]);
    await reopened.close();
  });

  it('after a crash (no close), re-sends what was taken but never re-sends a persisted ack', async () => {
    const dir = await makeTempDir();
    const { spool: crashed } = await openSpool(dir);
    await appendIds(crashed, ids(4), PAYLOAD);
    await crashed.ack(crashed.take()!.id);
    crashed.take(); // in flight, only in memory
    const { spool } = await openSpool(dir); // `crashed` is abandoned, never closed
    expect(takeAll(spool).map((e) => e.id)).toEqual(ids(4).slice(1));
    await spool.close();
    await crashed.close().catch(() => undefined);
  });
});

describe('Spool damage', () => {
  it.each([
    { cut: 50, reason: 'short header' },
    { cut: 150, reason: 'length beyond end of file' },
  ])('truncates a torn tail ($reason), keeps the batches before it, and appends after it', async ({ cut, reason }) => {
    const dir = await makeTempDir();
    await spoolWithThree(dir);
    const segment = await lastSegment(dir);
    await truncate(segment, 2 * RECORD + cut); // the third record, torn
    const { spool, events } = await openSpool(dir);
    expect(events).toContainEqual({
      kind: 'truncated',
      segment: segment.split('/').at(-1),
      offset: 2 * RECORD,
      bytes: cut,
      reason: `truncated: ${reason}`,
    });
    expect((await stat(segment)).size).toBe(2 * RECORD);
    await spool.append(batchId(7), payloadFor(batchId(7)));
    const entries = takeAll(spool);
    expect(entries.map((e) => e.id)).toEqual([batchId(0), batchId(1), batchId(7)]);
    for (const e of entries) expect(e.payload.equals(payloadFor(e.id, e.id === batchId(7) ? 64 : PAYLOAD))).toBe(true);
    await spool.close();
    const again = await openSpool(dir);
    expect(again.events.filter((e) => e.kind === 'truncated')).toEqual([]);
    await again.spool.close();
  });

  it('truncates a last record whose bytes were flipped (CRC mismatch)', async () => {
    const dir = await makeTempDir();
    await spoolWithThree(dir);
    const segment = await lastSegment(dir);
    await flipByte(segment, 3 * RECORD - 10);
    const { spool, events } = await openSpool(dir);
    expect(events).toContainEqual(
      expect.objectContaining({ kind: 'truncated', offset: 2 * RECORD, bytes: RECORD, reason: 'truncated: crc mismatch' }),
    );
    expect(takeAll(spool).map((e) => e.id)).toEqual([batchId(0), batchId(1)]);
    await appendIds(spool, [batchId(8)]);
    expect(takeAll(spool).map((e) => e.id)).toEqual([batchId(8)]);
    await spool.close();
  });

  it('skips a damaged record in the middle and keeps the durable ones behind it', async () => {
    const dir = await makeTempDir();
    await spoolWithThree(dir);
    await flipByte(await lastSegment(dir), RECORD + RECORD_HEADER_BYTES + 5);
    const { spool, events } = await openSpool(dir);
    expect(events).toContainEqual(
      expect.objectContaining({ kind: 'truncated', offset: RECORD, bytes: RECORD, reason: 'skipped: crc mismatch' }),
    );
    expect(takeAll(spool).map((e) => e.id)).toEqual([batchId(0), batchId(2)]);
    await spool.close();
  });

  it('on a corrupt state.json, sets it aside and makes every intact record pending again', async () => {
    const dir = await makeTempDir();
    const { spool: first } = await openSpool(dir);
    await appendIds(first, ids(3), PAYLOAD);
    await first.ack(first.take()!.id); // its segment still holds batch 1 and 2, so its record stays
    await first.close();
    await writeFile(join(dir, 'state.json'), '{"version":1,"writeIndex":');
    const { spool, events } = await openSpool(dir, { now: () => 42 });
    expect(events[0]).toEqual({ kind: 'state-reset', reason: 'state.json is not valid JSON' });
    expect(await readdir(dir)).toContain('state.json.corrupt-42');
    expect(takeAll(spool).map((e) => e.id)).toEqual(ids(3)); // the acked one is sent again: the detector dedupes
    await spool.close();
  });

  it('does not let a stale or foreign state.json claim batches it does not name', async () => {
    const dir = await makeTempDir();
    await spoolWithThree(dir);
    const foreign = { version: 1, writeIndex: 3, readIndex: 2, inFlight: [{ seq: 0, id: 'someone-else', attempts: 0 }], skipped: [] };
    await writeFile(join(dir, 'state.json'), JSON.stringify(foreign));
    const { spool } = await openSpool(dir);
    expect(takeAll(spool).map((e) => e.id)).toEqual([batchId(2)]);
    await spool.close();
  });
});

type Op = { kind: 'append' } | { kind: 'take' } | { kind: 'ack'; pick: number } | { kind: 'release'; pick: number } | { kind: 'reopen' };

describe('Spool against a model', () => {
  it('hands out, after any sequence of operations and reopens, exactly the live batches in FIFO order', async () => {
    const op = fc.oneof(
      { arbitrary: fc.constant<Op>({ kind: 'append' }), weight: 4 },
      { arbitrary: fc.constant<Op>({ kind: 'take' }), weight: 3 },
      { arbitrary: fc.nat(20).map((pick): Op => ({ kind: 'ack', pick })), weight: 2 },
      { arbitrary: fc.nat(20).map((pick): Op => ({ kind: 'release', pick })), weight: 2 },
      { arbitrary: fc.constant<Op>({ kind: 'reopen' }), weight: 1 },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const dir = await makeTempDir();
        let spool: Spool = (await openSpool(dir, { segmentBytes: 1024 })).spool;
        let next = 0;
        const live: number[] = []; // model: seqs in append order
        const inFlight = new Set<number>();
        for (const o of ops) {
          const flying = [...inFlight].sort((a, b) => a - b);
          if (o.kind === 'append') {
            await spool.append(batchId(next), payloadFor(batchId(next), 300));
            live.push(next++);
          } else if (o.kind === 'take') {
            const expected = live.find((s) => !inFlight.has(s));
            expect(spool.take()?.id ?? null).toBe(expected === undefined ? null : batchId(expected));
            if (expected !== undefined) inFlight.add(expected);
          } else if (o.kind === 'ack' && flying.length > 0) {
            const seq = flying[o.pick % flying.length]!;
            await spool.ack(batchId(seq));
            inFlight.delete(seq);
            live.splice(live.indexOf(seq), 1);
          } else if (o.kind === 'release' && flying.length > 0) {
            const seq = flying[o.pick % flying.length]!;
            spool.release(batchId(seq));
            inFlight.delete(seq);
          } else if (o.kind === 'reopen') {
            await spool.close();
            spool = (await openSpool(dir, { segmentBytes: 1024 })).spool;
            inFlight.clear();
          }
        }
        await spool.close();
        const reopened = (await openSpool(dir, { segmentBytes: 1024 })).spool;
        expect(takeAll(reopened).map((e) => e.id)).toEqual(live.map((s) => batchId(s)));
        expect((await segmentFiles(dir)).length).toBeLessThanOrEqual(live.length);
        await reopened.close();
      }),
      { numRuns: 40 },
    );
  });
});

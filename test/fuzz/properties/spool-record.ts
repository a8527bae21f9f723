/**
 * The spool's on-disk records (agent/ship/spool-record.ts): segments of
 * records written by the real writer, then damaged byte-wise (torn tails,
 * flipped bits, corrupted lengths, inserted and deleted bytes), read back by
 * the recovery scanner.
 *
 * Properties: never throws; an intact segment reads back exactly (writer →
 * reader round trip, payloads included); records, skipped stretches and the
 * tail tile the segment with no gap or overlap; every record read back is one
 * that was written, at its own offset; damage confined to one record costs
 * that record only.
 */
import fc from 'fast-check';
import { checkRecordAt, encodeRecord, payloadOf, RECORD_HEADER_BYTES, scanSegment } from '../../../agent/ship/spool-record.js';
import { applyByteMutations, byteMutation, type ByteMutation } from '../lib/mutate.js';
import { callParser, ensure, type FuzzTarget } from '../lib/target.js';

interface Written {
  seq: number;
  enqueuedAt: number;
  id: string;
  payload: Uint8Array;
}

interface SegmentCase {
  written: Written[];
  mutations: ByteMutation[];
  /** Damage only inside this record (index into written), or anywhere when null. */
  confinedTo: number | null;
}

const written = fc.record({
  seq: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  enqueuedAt: fc.oneof(fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.constant(0)),
  id: fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/),
  payload: fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constant(new Uint8Array(0))),
});

const segmentCase: fc.Arbitrary<SegmentCase> = fc.record({
  written: fc.array(written, { maxLength: 6 }),
  mutations: fc.array(byteMutation, { maxLength: 5 }),
  confinedTo: fc.option(fc.nat(), { nil: null }),
});

function encodeAll(ws: readonly Written[]): { bytes: Buffer; offsets: number[] } {
  const parts: Buffer[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const w of ws) {
    const r = encodeRecord(w.seq, w.enqueuedAt, w.id, Buffer.from(w.payload));
    offsets.push(at);
    parts.push(r);
    at += r.length;
  }
  return { bytes: Buffer.concat(parts), offsets };
}

/** In-place damage (set and u16 only), kept inside [from, to). */
function confine(ms: readonly ByteMutation[], from: number, to: number): ByteMutation[] {
  const span = to - from;
  const out: ByteMutation[] = [];
  for (const m of ms) {
    if (m.op === 'set') out.push({ ...m, at: from + (m.at % span) });
    else if (m.op === 'u16' && span >= 2) out.push({ ...m, at: from + (m.at % (span - 1)) });
  }
  return out;
}

export const spoolRecordTarget: FuzzTarget<SegmentCase> = {
  name: 'spool-record',
  title: 'spool segment reader (writer → reader round trip, recovery after damage)',
  arbitrary: segmentCase,
  check({ written: ws, mutations, confinedTo }) {
    const { bytes, offsets } = encodeAll(ws);
    const byOffset = new Map(offsets.map((o, i) => [o, ws[i] as Written]));

    // Round trip.
    const clean = callParser('scanSegment', () => scanSegment(bytes));
    ensure(clean !== undefined && clean.skipped.length === 0 && clean.tail === null, 'an intact segment reported damage');
    ensure(clean.records.length === ws.length, () => `read ${clean.records.length} of ${ws.length} records`);
    clean.records.forEach((r, i) => {
      const w = ws[i] as Written;
      ensure(
        r.seq === w.seq && r.enqueuedAt === w.enqueuedAt && r.id === w.id && r.offset === offsets[i],
        () => `record ${i} read back differently`,
      );
      const payload = payloadOf(bytes.subarray(r.offset, r.offset + r.size), { seq: w.seq, id: w.id });
      ensure(payload !== null && Buffer.compare(payload, Buffer.from(w.payload)) === 0, () => `record ${i}: payload differs`);
    });

    // Damage.
    let damaged: Buffer;
    let spared: Set<number> | null = null;
    if (confinedTo !== null && ws.length > 0) {
      const i = confinedTo % ws.length;
      const from = offsets[i] as number;
      const to = from + RECORD_HEADER_BYTES + (ws[i] as Written).payload.length;
      damaged = applyByteMutations(bytes, confine(mutations, from, to));
      spared = new Set(offsets.filter((_, k) => k !== i));
    } else {
      damaged = applyByteMutations(bytes, mutations);
    }
    const scan = callParser('scanSegment', () => scanSegment(damaged));
    ensure(scan !== undefined, 'no answer');
    const pieces = [
      ...scan.records.map((r) => ({ offset: r.offset, bytes: r.size })),
      ...scan.skipped,
      ...(scan.tail ? [scan.tail] : []),
    ].sort((a, b) => a.offset - b.offset);
    let at = 0;
    for (const p of pieces) {
      ensure(p.offset === at && p.bytes > 0, () => `gap or overlap at ${at} (next piece at ${p.offset}, ${p.bytes} bytes)`);
      at += p.bytes;
    }
    ensure(at === damaged.length, () => `pieces cover ${at} of ${damaged.length} bytes`);
    for (const r of scan.records) {
      ensure(checkRecordAt(damaged, r.offset).ok, 'a record read back fails its own check');
      if (spared) {
        const w = byOffset.get(r.offset);
        ensure(w !== undefined && w.id === r.id && w.seq === r.seq, () => `read a record at ${r.offset} that was never written there`);
      }
    }
    if (spared) {
      const found = new Set(scan.records.map((r) => r.offset));
      for (const o of spared) ensure(found.has(o), () => `damage elsewhere cost the intact record at offset ${o}`);
    }
  },
};

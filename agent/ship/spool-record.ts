// The on-disk record of one spooled batch, and the scanner that reads a
// segment back. No file I/O here: the spool hands in bytes and gets offsets.
//
//   offset  size  field
//   ------  ----  ------------------------------------------------------------
//        0     4  magic 0x45575331 ("EWS1"), big-endian like every integer
//        4     4  payload length in bytes
//        8     4  CRC-32 (zlib) of bytes [4,8) ++ [12, 92 + length)
//       12     8  seq: the spool's write index when the batch was appended
//       20     8  enqueuedAt, ms since the epoch
//       28    64  batch id, ASCII, NUL-padded (ids are [A-Za-z0-9_-]{8,64})
//       92     n  payload (opaque; the shipper puts gzip JSON in it)
//
// The CRC covers the length field and everything after the CRC, so a torn
// write, a flipped bit or a corrupted length are all caught; only the magic is
// unprotected, and it only serves to find the next record after damage.

import { crc32 } from 'node:zlib';

export const RECORD_MAGIC = 0x45575331;
export const RECORD_HEADER_BYTES = 92;
const ID_FIELD_BYTES = 64;
const MAX_PAYLOAD_BYTES = 0xffff_ffff;

export const BATCH_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

export interface SpoolRecord {
  seq: number;
  enqueuedAt: number;
  id: string;
  /** Offset of the record's first byte in its segment. */
  offset: number;
  /** Header plus payload: what the record occupies on disk. */
  size: number;
  payloadLength: number;
}

export function recordSize(payloadLength: number): number {
  return RECORD_HEADER_BYTES + payloadLength;
}

function checksum(record: Buffer, payloadLength: number): number {
  const lengthField = record.subarray(4, 8);
  const rest = record.subarray(12, RECORD_HEADER_BYTES + payloadLength);
  return crc32(rest, crc32(lengthField));
}

/** Contract: `id` matches BATCH_ID_PATTERN (the spool checks it first). */
export function encodeRecord(seq: number, enqueuedAt: number, id: string, payload: Buffer): Buffer {
  if (payload.length > MAX_PAYLOAD_BYTES) throw new RangeError('payload longer than 4 GiB');
  const record = Buffer.alloc(recordSize(payload.length));
  record.writeUInt32BE(RECORD_MAGIC, 0);
  record.writeUInt32BE(payload.length, 4);
  record.writeBigUInt64BE(BigInt(seq), 12);
  record.writeBigUInt64BE(BigInt(Math.max(0, Math.trunc(enqueuedAt))), 20);
  record.write(id, 28, ID_FIELD_BYTES, 'ascii');
  payload.copy(record, RECORD_HEADER_BYTES);
  record.writeUInt32BE(checksum(record, payload.length), 8);
  return record;
}

export type RecordCheck =
  | { ok: true; record: SpoolRecord }
  | { ok: false; reason: 'short header' | 'bad magic' | 'length beyond end of file' | 'crc mismatch' | 'bad id' };

/** Checks the record starting at `offset` of a segment's bytes. */
export function checkRecordAt(segment: Buffer, offset: number): RecordCheck {
  if (segment.length - offset < RECORD_HEADER_BYTES) return { ok: false, reason: 'short header' };
  if (segment.readUInt32BE(offset) !== RECORD_MAGIC) return { ok: false, reason: 'bad magic' };
  const payloadLength = segment.readUInt32BE(offset + 4);
  if (segment.length - offset < recordSize(payloadLength)) return { ok: false, reason: 'length beyond end of file' };
  const record = segment.subarray(offset, offset + recordSize(payloadLength));
  if (checksum(record, payloadLength) !== record.readUInt32BE(8)) return { ok: false, reason: 'crc mismatch' };
  const idField = record.subarray(28, 28 + ID_FIELD_BYTES);
  const nul = idField.indexOf(0);
  const id = idField.subarray(0, nul === -1 ? ID_FIELD_BYTES : nul).toString('ascii');
  if (!BATCH_ID_PATTERN.test(id)) return { ok: false, reason: 'bad id' };
  return {
    ok: true,
    record: {
      seq: Number(record.readBigUInt64BE(12)),
      enqueuedAt: Number(record.readBigUInt64BE(20)),
      id,
      offset,
      size: record.length,
      payloadLength,
    },
  };
}

/** Verifies a record read back whole (at take time) and returns its payload, or null if it is not the expected batch intact. */
export function payloadOf(record: Buffer, expected: { seq: number; id: string }): Buffer | null {
  const check = checkRecordAt(record, 0);
  if (!check.ok || check.record.size !== record.length) return null;
  if (check.record.seq !== expected.seq || check.record.id !== expected.id) return null;
  return record.subarray(RECORD_HEADER_BYTES);
}

/** A stretch of a segment that held no valid record. */
export interface DamagedRange {
  offset: number;
  bytes: number;
  reason: string;
}

export interface SegmentScan {
  records: SpoolRecord[];
  /** Unreadable stretches followed by a valid record: skipped, left in place. */
  skipped: DamagedRange[];
  /** Unreadable tail (a torn append, or damage with nothing valid after it): the spool truncates it. */
  tail: DamagedRange | null;
}

/**
 * Reads every valid record of a segment. After damage it resynchronises on the
 * next offset holding a whole record with a valid CRC, so a bad record in the
 * middle costs that record only, never the durable batches behind it.
 */
export function scanSegment(segment: Buffer): SegmentScan {
  const records: SpoolRecord[] = [];
  const skipped: DamagedRange[] = [];
  let offset = 0;
  while (offset < segment.length) {
    const check = checkRecordAt(segment, offset);
    if (check.ok) {
      records.push(check.record);
      offset += check.record.size;
      continue;
    }
    const next = findNextRecord(segment, offset + 1);
    if (next === null) return { records, skipped, tail: { offset, bytes: segment.length - offset, reason: check.reason } };
    skipped.push({ offset, bytes: next - offset, reason: check.reason });
    offset = next;
  }
  return { records, skipped, tail: null };
}

const MAGIC_BYTES = Buffer.from([0x45, 0x57, 0x53, 0x31]);

function findNextRecord(segment: Buffer, from: number): number | null {
  for (let at = segment.indexOf(MAGIC_BYTES, from); at !== -1; at = segment.indexOf(MAGIC_BYTES, at + 1)) {
    if (checkRecordAt(segment, at).ok) return at;
  }
  return null;
}

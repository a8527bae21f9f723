/**
 * The times a telemetry record may carry, judged against the receiver's
 * clock. The schema says a time is well formed; these bounds say it is
 * believable: a record that fails them is rejected on its own (counted by
 * reason) and the rest of its batch is kept.
 *
 *   observation: firstSeen ≤ lastSeen                      else first_after_last
 *                lastSeen ≤ now + clock skew               else in_future
 *                lastSeen − firstSeen ≤ max span           else span_too_long
 *   heartbeat:   time ≤ now + clock skew                   else in_future
 *
 * Why the span bound: an agent aggregates one client, host, key and action
 * per flush interval, so a correct record spans at most the flush interval
 * plus the longest single request or tunnel in it. A record spanning years
 * would attest a key at any time and never age out of the store.
 */
import type { TelemetryRecord } from './telemetry.js';

export const RECORD_REJECTIONS = ['first_after_last', 'in_future', 'span_too_long'] as const;
export type RecordRejection = (typeof RECORD_REJECTIONS)[number];

export interface TimeBounds {
  nowMs: number;
  /** How far ahead of the receiver's clock a time may be (the signature's clock-skew window). */
  clockSkewMs: number;
  /** The longest observation span believed. */
  maxSpanMs: number;
}

/** The first bound a record breaks, or null. Times the schema accepted always parse. */
export function recordTimeProblem(r: TelemetryRecord, b: TimeBounds): RecordRejection | null {
  const latest = b.nowMs + b.clockSkewMs;
  if (r.type === 'heartbeat') return Date.parse(r.time) > latest ? 'in_future' : null;
  const first = Date.parse(r.firstSeen);
  const last = Date.parse(r.lastSeen);
  if (first > last) return 'first_after_last';
  if (last > latest) return 'in_future';
  if (last - first > b.maxSpanMs) return 'span_too_long';
  return null;
}

export interface ScreenedRecords {
  accepted: TelemetryRecord[];
  /** Rejected records by reason (only reasons that occurred). */
  rejected: Partial<Record<RecordRejection, number>>;
  rejectedCount: number;
}

/** Splits a batch's records into those within the bounds and counts of the others. */
export function screenRecords(records: readonly TelemetryRecord[], b: TimeBounds): ScreenedRecords {
  const accepted: TelemetryRecord[] = [];
  const rejected: Partial<Record<RecordRejection, number>> = {};
  let rejectedCount = 0;
  for (const r of records) {
    const problem = recordTimeProblem(r, b);
    if (problem === null) {
      accepted.push(r);
      continue;
    }
    rejected[problem] = (rejected[problem] ?? 0) + 1;
    rejectedCount++;
  }
  return { accepted, rejected, rejectedCount };
}

// The spool's public types and its option validation (fail fast at open).

export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
const MIN_SEGMENT_BYTES = 1024;

export interface SpoolOptions {
  /** The spool's own directory; created if absent. One process owns it. */
  dir: string;
  /** Cap on the record bytes (92-byte header + payload) of live batches. */
  maxBytes: number;
  /** A segment file is closed and a new one started past this size. Default 16 MiB. */
  segmentBytes?: number;
  /** Wall clock in ms; stamps enqueuedAt and dead-letter times. */
  now?: () => number;
  /** Called synchronously; a listener that throws is ignored. */
  onEvent?: (e: SpoolEvent) => void;
}

export type SpoolEvent =
  /** overflow: maxBytes reached. corrupt: the record failed its CRC when read back at take. */
  | { kind: 'dropped'; id: string; bytes: number; reason: 'overflow' | 'corrupt' }
  /** At open. reason starts with "truncated: " (torn tail, cut off) or "skipped: " (damage mid-segment, records after it kept). */
  | { kind: 'truncated'; segment: string; offset: number; bytes: number; reason: string }
  | { kind: 'dead-lettered'; id: string; reason: string }
  /** At open, last event: batches now pending, of which inFlight were in flight before. */
  | { kind: 'recovered'; pending: number; inFlight: number }
  /** At open: state.json was missing or corrupt, every intact record is pending again (duplicates possible). */
  | { kind: 'state-reset'; reason: string };

export interface SpoolEntry {
  id: string;
  payload: Buffer;
  enqueuedAt: number;
  /** Failed sends so far (release count); 0 on the first take. */
  attempts: number;
}

export type SpoolErrorCode =
  'SPOOL_INVALID_OPTIONS' | 'SPOOL_CLOSED' | 'SPOOL_INVALID_ID' | 'SPOOL_INVALID_PAYLOAD' | 'SPOOL_DUPLICATE_ID' | 'SPOOL_BATCH_TOO_LARGE';

export class SpoolError extends Error {
  override readonly name = 'SpoolError';
  constructor(
    readonly code: SpoolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function validateSpoolOptions(opts: SpoolOptions): void {
  const fail = (why: string): never => {
    throw new SpoolError('SPOOL_INVALID_OPTIONS', `spool: ${why}`);
  };
  if (typeof opts.dir !== 'string' || opts.dir === '') fail('dir must be a non-empty path');
  if (!Number.isSafeInteger(opts.maxBytes) || opts.maxBytes <= 0) fail('maxBytes must be a positive integer');
  const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < MIN_SEGMENT_BYTES)
    fail(`segmentBytes must be an integer ≥ ${MIN_SEGMENT_BYTES}`);
  if (opts.now !== undefined && typeof opts.now !== 'function') fail('now must be a function');
  if (opts.onEvent !== undefined && typeof opts.onEvent !== 'function') fail('onEvent must be a function');
}

/**
 * Every way the detector refuses or fails on its own inputs and outputs, as a
 * closed union, and the one place that maps a failure to its log level and
 * message, its metric label and (for ingest) its HTTP answer. The telemetry
 * answers come from the wire contract (protocol/telemetry-status.ts), which
 * the agent's shipper reads with the same table.
 *
 *   ingest refusals      ─▶ HTTP answer (status, X-Egress-Witness-Error, Retry-After) + batches metric label + warn
 *   CloudTrail input     ─▶ file marked failed / object and message left to the queue + log event and level + message
 *   delivery failures    ─▶ retried or parked in the outbox + deliveries metric label + warn / error
 */
import type { Logger } from '../../common/log/logger.js';
import { REFUSAL_HEADER, TELEMETRY_REFUSALS, type TelemetryRefusal } from '../../protocol/telemetry-status.js';

export type IngestFailure =
  | { kind: 'unknown-gateway'; gatewayId: string }
  | { kind: 'missing-gateway' }
  | { kind: 'bad-signature'; why: 'missing' | 'malformed' | 'mismatch' }
  | { kind: 'stale-signature' }
  | { kind: 'bad-token' }
  | { kind: 'too-large'; limitBytes: number; decoded: boolean }
  | { kind: 'malformed'; reason: string }
  | { kind: 'overloaded'; pool: string }
  | { kind: 'store-unavailable' }
  | { kind: 'body-timeout'; timeoutMs: number }
  | { kind: 'not-found' }
  | { kind: 'method-not-allowed' }
  | { kind: 'internal-error' };

export type CloudTrailInputFailure =
  /** A file of cloudtrail.watch_dir that cannot be read or decided: marked failed, not read again unless rewritten. */
  | { kind: 'cloudtrail-file-failed'; path: string; reason: string }
  /** A log file in the bucket whose content is unusable (corrupt, not JSON, too large, gone): its message goes to the DLQ. */
  | { kind: 'cloudtrail-object-poison'; bucket: string; key: string; reason: string }
  /** A log file in the bucket that could not be read or decided this time: read again when its message is visible. */
  | { kind: 'cloudtrail-object-failed'; bucket: string; key: string; reason: string }
  /** A queue message that is not an S3 notification: left for the redrive policy. */
  | { kind: 'cloudtrail-message-invalid'; reason: string };

export type DeliveryFailure =
  /** Not delivered this time; tried again after a backoff. */
  | { kind: 'delivery-retry'; sink: string; reason: string; attempt: number; retryInMs: number }
  /** Refused for good (the item itself), or given up after the attempts allowed. */
  | { kind: 'delivery-refused'; sink: string; reason: string; kept: string }
  /** The destination's configuration is wrong (every item alike): retried until fixed. */
  | { kind: 'delivery-misconfigured'; sink: string; reason: string; fix: string }
  /** A call, or one item of an answered call, not delivered this time; `next` says what happens to it. */
  | { kind: 'delivery-failed'; sink: string; subject: string; reason: string; next: string };

export type DetectorFailure = IngestFailure | CloudTrailInputFailure | DeliveryFailure;

/** Logs a failure at its level with its sentence and label; `fields` add what an operator searches by. */
export function logFailure(logger: Logger, event: string, f: DetectorFailure, fields: Record<string, unknown> = {}): void {
  logger[failureLevel(f)]({ event, failure: failureLabel(f), ...fields }, failureMessage(f));
}

export interface IngestFailureAnswer {
  status: number;
  /** The X-Egress-Witness-Error value (the wire contract's refusal name); null on the event routes' own refusals. */
  refusal: TelemetryRefusal | null;
  /** Sent to the client as `error`: says what is wrong, never a secret. */
  error: string;
  retryAfterSeconds?: number;
}

/** What the detector says about an ingest failure, over HTTP. */
export function ingestAnswer(f: IngestFailure): IngestFailureAnswer {
  if (f.kind === 'bad-token') return { status: 401, refusal: null, error: failureMessage(f) };
  const refusal: TelemetryRefusal = f.kind;
  const spec: { status: number; retryAfterSeconds?: number } = TELEMETRY_REFUSALS[refusal];
  const answer: IngestFailureAnswer = { status: spec.status, refusal, error: failureMessage(f) };
  if (spec.retryAfterSeconds !== undefined) answer.retryAfterSeconds = spec.retryAfterSeconds;
  return answer;
}

export const INGEST_REFUSAL_HEADER = REFUSAL_HEADER;

/**
 * The egress_witness_detector_ingested_batches_total label of a refused telemetry batch (the
 * names predate this module and stay), or null for answers that are not about a batch.
 */
export function ingestBatchLabel(f: IngestFailure): string | null {
  switch (f.kind) {
    case 'unknown-gateway':
    case 'missing-gateway':
    case 'bad-signature':
    case 'stale-signature':
      return 'unauthorized';
    case 'too-large':
      return 'too_large';
    case 'malformed':
      return 'invalid';
    case 'overloaded':
      return 'overloaded';
    case 'store-unavailable':
      return 'store_error';
    case 'bad-token':
    case 'body-timeout':
    case 'not-found':
    case 'method-not-allowed':
    case 'internal-error':
      return null;
  }
}

/** The log event of a CloudTrail input failure (the names operators alert on). */
export function cloudTrailFailureEvent(f: CloudTrailInputFailure): string {
  switch (f.kind) {
    case 'cloudtrail-file-failed':
      return 'cloudtrail_file_failed';
    case 'cloudtrail-object-poison':
      return 'cloudtrail_object_poison';
    case 'cloudtrail-object-failed':
      return 'cloudtrail_object_failed';
    case 'cloudtrail-message-invalid':
      return 'cloudtrail_sqs_message_invalid';
  }
}

/** Metric label of any failure (bounded: the kind). */
export function failureLabel(f: DetectorFailure): string {
  return f.kind;
}

export function failureLevel(f: DetectorFailure): 'warn' | 'error' {
  switch (f.kind) {
    case 'store-unavailable':
    case 'internal-error':
    case 'cloudtrail-file-failed':
    case 'cloudtrail-object-poison':
    case 'cloudtrail-object-failed':
    case 'delivery-refused':
    case 'delivery-misconfigured':
      return 'error';
    default:
      return 'warn';
  }
}

/** The one sentence that says what failed and, where a person can fix it, which key. */
export function failureMessage(f: DetectorFailure): string {
  switch (f.kind) {
    case 'unknown-gateway':
      return `unknown gateway "${f.gatewayId.slice(0, 63)}"`;
    case 'missing-gateway':
      return 'missing x-egress-witness-gateway header';
    case 'bad-signature':
      return `signature ${f.why}`;
    case 'stale-signature':
      return 'signature stale (timestamp outside the clock-skew window: check the clocks)';
    case 'bad-token':
      return 'missing or wrong bearer token (ingest.token_file)';
    case 'too-large':
      return f.decoded ? `decompressed body exceeds ${f.limitBytes} bytes` : `body exceeds ${f.limitBytes} bytes (ingest.max_body_bytes)`;
    case 'malformed':
      return f.reason;
    case 'overloaded':
      return `overloaded (${f.pool}), retry later`;
    case 'store-unavailable':
      return 'store unavailable';
    case 'body-timeout':
      return `request body not received within ${f.timeoutMs} ms (ingest.body_timeout)`;
    case 'not-found':
      return 'not found: POST /v1/telemetry, /v1/cloudtrail or /v1/guardduty';
    case 'method-not-allowed':
      return 'method not allowed';
    case 'internal-error':
      return 'internal error';
    case 'cloudtrail-file-failed':
      return `cannot read CloudTrail file ${f.path}: ${f.reason}; marked failed, read again only if it is rewritten`;
    case 'cloudtrail-object-poison':
      return `cannot read CloudTrail object s3://${f.bucket}/${f.key}: ${f.reason}; its message is left for the queue's redrive policy (dead-letter queue)`;
    case 'cloudtrail-object-failed':
      return `could not read CloudTrail object s3://${f.bucket}/${f.key}: ${f.reason}; it is read again when its message is visible again`;
    case 'cloudtrail-message-invalid':
      return `an SQS message that is not an S3 notification (${f.reason}); left for the queue's redrive policy`;
    case 'delivery-retry':
      return `${f.sink}: delivery failed (${f.reason}); attempt ${f.attempt}, retrying in ${Math.round(f.retryInMs / 1000)} s`;
    case 'delivery-refused':
      return `${f.sink}: giving up on one delivery (${f.reason}); ${f.kept}`;
    case 'delivery-misconfigured':
      return `${f.sink}: every delivery is refused (${f.reason}): check ${f.fix}; nothing is dropped, deliveries are retried`;
    case 'delivery-failed':
      return `${f.sink}: ${f.subject} not delivered (${f.reason}); ${f.next}`;
  }
}

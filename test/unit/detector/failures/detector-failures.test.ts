// The detector's failure union: each ingest failure has one answer, and the agent's reading of
// that answer (the same wire contract) is what the failure means — the two sides cannot drift.
import { describe, expect, it } from 'vitest';
import { classifyTelemetryAnswer } from '../../../../protocol/telemetry-status.js';
import {
  cloudTrailFailureEvent,
  failureLabel,
  failureLevel,
  failureMessage,
  ingestAnswer,
  ingestBatchLabel,
  type CloudTrailInputFailure,
  type DetectorFailure,
  type IngestFailure,
} from '../../../../detector/failures/detector-failures.js';

const INGEST: readonly IngestFailure[] = [
  { kind: 'unknown-gateway', gatewayId: 'gw-other' },
  { kind: 'missing-gateway' },
  { kind: 'bad-signature', why: 'mismatch' },
  { kind: 'stale-signature' },
  { kind: 'bad-token' },
  { kind: 'too-large', limitBytes: 1024, decoded: false },
  { kind: 'malformed', reason: 'body is not valid JSON' },
  { kind: 'overloaded', pool: 'gateway gw1' },
  { kind: 'store-unavailable' },
  { kind: 'body-timeout', timeoutMs: 10_000 },
  { kind: 'not-found' },
  { kind: 'method-not-allowed' },
  { kind: 'internal-error' },
];

describe('detector failures', () => {
  it('answers every telemetry refusal so that the agent reads it as meant', () => {
    const read = Object.fromEntries(
      INGEST.map((f) => {
        const a = ingestAnswer(f);
        return [
          f.kind,
          { status: a.status, action: classifyTelemetryAnswer(a.status, a.refusal ?? undefined).action, retryAfter: a.retryAfterSeconds },
        ];
      }),
    );
    expect(read).toEqual({
      'unknown-gateway': { status: 401, action: 'permanent', retryAfter: undefined },
      'missing-gateway': { status: 401, action: 'permanent', retryAfter: undefined },
      'bad-signature': { status: 401, action: 'permanent', retryAfter: undefined },
      'stale-signature': { status: 401, action: 'permanent', retryAfter: undefined },
      'bad-token': { status: 401, action: 'permanent', retryAfter: undefined },
      'too-large': { status: 413, action: 'drop-batch', retryAfter: undefined },
      malformed: { status: 400, action: 'drop-batch', retryAfter: undefined },
      overloaded: { status: 503, action: 'retry', retryAfter: 1 },
      'store-unavailable': { status: 503, action: 'retry', retryAfter: 5 },
      'body-timeout': { status: 408, action: 'retry', retryAfter: undefined },
      'not-found': { status: 404, action: 'permanent', retryAfter: undefined },
      'method-not-allowed': { status: 405, action: 'permanent', retryAfter: undefined },
      'internal-error': { status: 500, action: 'retry', retryAfter: undefined },
    });
  });

  it('names the refusal in the header, except on the event routes own bearer-token refusal', () => {
    expect(ingestAnswer({ kind: 'unknown-gateway', gatewayId: 'gw-other' })).toEqual({
      status: 401,
      refusal: 'unknown-gateway',
      error: 'unknown gateway "gw-other"',
    });
    expect(ingestAnswer({ kind: 'bad-token' }).refusal).toBeNull();
  });

  it('keeps the batch outcome labels the metric has always had', () => {
    expect(Object.fromEntries(INGEST.map((f) => [f.kind, ingestBatchLabel(f)]))).toEqual({
      'unknown-gateway': 'unauthorized',
      'missing-gateway': 'unauthorized',
      'bad-signature': 'unauthorized',
      'stale-signature': 'unauthorized',
      'bad-token': null,
      'too-large': 'too_large',
      malformed: 'invalid',
      overloaded: 'overloaded',
      'store-unavailable': 'store_error',
      'body-timeout': null,
      'not-found': null,
      'method-not-allowed': null,
      'internal-error': null,
    });
  });

  it('gives every failure a level and a message; messages name the key where a key fixes it', () => {
    const others: DetectorFailure[] = [
      { kind: 'cloudtrail-file-failed', path: '/ct/a.json.gz', reason: 'larger than cloudtrail.max_file_bytes (10 bytes)' },
      { kind: 'delivery-misconfigured', sink: 'webhook', reason: 'http-404', fix: 'findings.webhook' },
      { kind: 'delivery-retry', sink: 'webhook', reason: 'ECONNREFUSED', attempt: 2, retryInMs: 2_000 },
      { kind: 'delivery-failed', sink: 'Security Hub', subject: 'finding f1', reason: 'InternalFailure', next: 'it will be retried' },
    ];
    for (const f of [...INGEST, ...others]) {
      expect(['warn', 'error']).toContain(failureLevel(f));
      expect(failureMessage(f).length).toBeGreaterThan(5);
    }
    expect(failureMessage({ kind: 'too-large', limitBytes: 1024, decoded: false })).toContain('ingest.max_body_bytes');
    expect(failureMessage(others[0]!)).toContain('/ct/a.json.gz');
    expect(failureMessage(others[1]!)).toContain('findings.webhook');
    expect(failureMessage(others[3]!)).toBe('Security Hub: finding f1 not delivered (InternalFailure); it will be retried');
    expect(failureLevel(others[3]!)).toBe('warn');
    expect(failureLevel({ kind: 'delivery-refused', sink: 'Security Hub', reason: 'InvalidInput', kept: 'parked' })).toBe('error');
    expect(failureLevel({ kind: 'store-unavailable' })).toBe('error');
    expect(failureLevel({ kind: 'malformed', reason: 'x' })).toBe('warn');
  });

  it('CloudTrail inputs: each failure has its log event, its level, and a message that says what happens to the input', () => {
    const cases: [CloudTrailInputFailure, string, 'warn' | 'error', RegExp][] = [
      [
        { kind: 'cloudtrail-file-failed', path: '/ct/b.json', reason: 'not JSON' },
        'cloudtrail_file_failed',
        'error',
        /read again only if it is rewritten/,
      ],
      [
        { kind: 'cloudtrail-object-poison', bucket: 'trail', key: 'AWSLogs/x.json.gz', reason: 'corrupt gzip' },
        'cloudtrail_object_poison',
        'error',
        /s3:\/\/trail\/AWSLogs\/x\.json\.gz.*dead-letter queue/,
      ],
      [
        { kind: 'cloudtrail-object-failed', bucket: 'trail', key: 'AWSLogs/y.json.gz', reason: 'AccessDenied' },
        'cloudtrail_object_failed',
        'error',
        /AccessDenied; it is read again when its message is visible again/,
      ],
      [{ kind: 'cloudtrail-message-invalid', reason: 'no Records' }, 'cloudtrail_sqs_message_invalid', 'warn', /redrive policy/],
    ];
    for (const [f, event, level, message] of cases) {
      expect(cloudTrailFailureEvent(f)).toBe(event);
      expect(failureLevel(f)).toBe(level);
      expect(failureMessage(f)).toMatch(message);
      expect(failureLabel(f)).toBe(f.kind);
    }
  });
});

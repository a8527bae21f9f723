// The telemetry status contract: one table read by both sides. Every refusal the detector can
// give is classified by the agent as the table says, and answers without the refusal header
// (older detectors, a reverse proxy in the way) fall back on the status alone.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  classifyTelemetryAnswer,
  isTelemetryRefusal,
  TELEMETRY_REFUSAL_NAMES,
  TELEMETRY_REFUSALS,
  type TelemetryRefusal,
} from '../../../protocol/telemetry-status.js';

describe('classifyTelemetryAnswer', () => {
  it('2xx is delivered (stored or duplicate), with or without a header', () => {
    for (const status of [200, 201, 202, 204, 299])
      expect(classifyTelemetryAnswer(status, undefined)).toEqual({ action: 'delivered', status });
    expect(classifyTelemetryAnswer(200, 'malformed')).toEqual({ action: 'delivered', status: 200 });
  });

  const expected: Record<TelemetryRefusal, ReturnType<typeof classifyTelemetryAnswer>> = {
    malformed: { action: 'drop-batch', status: 400, refusal: 'malformed', split: false },
    'too-large': { action: 'drop-batch', status: 413, refusal: 'too-large', split: true },
    'bad-signature': { action: 'permanent', status: 401, refusal: 'bad-signature', wait: 'slow' },
    'stale-signature': { action: 'permanent', status: 401, refusal: 'stale-signature', wait: 'slow' },
    'unknown-gateway': { action: 'permanent', status: 401, refusal: 'unknown-gateway', wait: 'backoff' },
    'missing-gateway': { action: 'permanent', status: 401, refusal: 'missing-gateway', wait: 'backoff' },
    'not-found': { action: 'permanent', status: 404, refusal: 'not-found', wait: 'backoff' },
    'method-not-allowed': { action: 'permanent', status: 405, refusal: 'method-not-allowed', wait: 'backoff' },
    'body-timeout': { action: 'retry', status: 408, refusal: 'body-timeout' },
    overloaded: { action: 'retry', status: 503, refusal: 'overloaded' },
    'store-unavailable': { action: 'retry', status: 503, refusal: 'store-unavailable' },
    'internal-error': { action: 'retry', status: 500, refusal: 'internal-error' },
  };

  it.each(TELEMETRY_REFUSAL_NAMES)('the refusal %s, answered with its own status, is read as the table says', (refusal) => {
    const { status } = TELEMETRY_REFUSALS[refusal];
    expect(classifyTelemetryAnswer(status, refusal)).toEqual(expected[refusal]);
    // Header names are case-insensitive on the wire; values are compared trimmed and lower-cased.
    expect(classifyTelemetryAnswer(status, ` ${refusal.toUpperCase()} `)).toEqual(expected[refusal]);
  });

  it('only a gateway the detector does not know, or a wrong path, waits the capped backoff; signatures wait slowly', () => {
    const waits = Object.fromEntries(
      TELEMETRY_REFUSAL_NAMES.map((r) => [r, classifyTelemetryAnswer(TELEMETRY_REFUSALS[r].status, r)])
        .filter(([, v]) => (v as { action: string }).action === 'permanent')
        .map(([r, v]) => [r, (v as { wait: string }).wait]),
    );
    expect(waits).toEqual({
      'bad-signature': 'slow',
      'stale-signature': 'slow',
      'unknown-gateway': 'backoff',
      'missing-gateway': 'backoff',
      'not-found': 'backoff',
      'method-not-allowed': 'backoff',
    });
  });

  it.each([
    [400, { action: 'drop-batch', status: 400, refusal: null, split: false }],
    [422, { action: 'drop-batch', status: 422, refusal: null, split: false }],
    [413, { action: 'drop-batch', status: 413, refusal: null, split: true }],
    [401, { action: 'permanent', status: 401, refusal: null, wait: 'slow' }],
    [403, { action: 'permanent', status: 403, refusal: null, wait: 'slow' }],
    [404, { action: 'permanent', status: 404, refusal: null, wait: 'backoff' }],
    [405, { action: 'permanent', status: 405, refusal: null, wait: 'backoff' }],
    [408, { action: 'retry', status: 408, refusal: null }],
    [429, { action: 'retry', status: 429, refusal: null }],
    [500, { action: 'retry', status: 500, refusal: null }],
    [502, { action: 'retry', status: 502, refusal: null }],
    [503, { action: 'retry', status: 503, refusal: null }],
    [301, { action: 'retry', status: 301, refusal: null }],
    [418, { action: 'retry', status: 418, refusal: null }],
  ] as const)('without the header, %i is read by its status', (status, verdict) => {
    expect(classifyTelemetryAnswer(status, undefined)).toEqual(verdict);
  });

  it('a header that names an unknown refusal, or one of another status, is ignored (the status decides)', () => {
    expect(classifyTelemetryAnswer(401, 'no-such-refusal')).toEqual({ action: 'permanent', status: 401, refusal: null, wait: 'slow' });
    // "malformed" is a 400: on a 503 the header cannot turn a retry into a dropped batch.
    expect(classifyTelemetryAnswer(503, 'malformed')).toEqual({ action: 'retry', status: 503, refusal: null });
    expect(classifyTelemetryAnswer(413, 'unknown-gateway')).toEqual({ action: 'drop-batch', status: 413, refusal: null, split: true });
  });

  it('an impossible status is retried, never dropped', () => {
    for (const status of [0, 99, 600, 1.5, Number.NaN]) expect(classifyTelemetryAnswer(status, 'malformed').action).toBe('retry');
  });

  it('never drops a batch unless the status is 400, 413 or 422 (whatever the header says)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 700 }), fc.option(fc.constantFrom(...TELEMETRY_REFUSAL_NAMES, 'x', '')), (status, header) => {
        const v = classifyTelemetryAnswer(status, header ?? undefined);
        if (v.action === 'drop-batch') expect([400, 413, 422]).toContain(status);
        if (v.action === 'delivered') expect(status >= 200 && status <= 299).toBe(true);
      }),
    );
  });

  it('knows its own refusal names and no others', () => {
    for (const r of TELEMETRY_REFUSAL_NAMES) expect(isTelemetryRefusal(r)).toBe(true);
    for (const r of ['toString', '__proto__', 'Malformed', '', 42, null]) expect(isTelemetryRefusal(r)).toBe(false);
  });
});

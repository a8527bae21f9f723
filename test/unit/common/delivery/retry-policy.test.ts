import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BACKOFF,
  MAX_RETRY_AFTER_MS,
  backoffPolicyProblems,
  classifyNetworkError,
  classifyResponse,
  nextDelayMs,
  parseHttpDate,
  parseRetryAfterMs,
  type BackoffPolicy,
  type SendOutcome,
} from '../../../../common/delivery/retry-policy.js';

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);

describe('classifyResponse', () => {
  it.each<[number, SendOutcome]>([
    [200, { kind: 'success' }],
    [202, { kind: 'success' }],
    [204, { kind: 'success' }],
    [400, { kind: 'permanent', reason: 'bad-request', status: 400 }],
    [413, { kind: 'permanent', reason: 'payload-too-large', status: 413 }],
    [422, { kind: 'permanent', reason: 'unprocessable-content', status: 422 }],
    [401, { kind: 'unauthorized', status: 401 }],
    [403, { kind: 'unauthorized', status: 403 }],
    [404, { kind: 'retryable', reason: 'http-404' }], // a misrouted URL is config, not data
    [408, { kind: 'retryable', reason: 'http-408' }],
    [429, { kind: 'retryable', reason: 'http-429' }],
    [500, { kind: 'retryable', reason: 'http-500' }],
    [502, { kind: 'retryable', reason: 'http-502' }],
    [503, { kind: 'retryable', reason: 'http-503' }],
    [504, { kind: 'retryable', reason: 'http-504' }],
    [301, { kind: 'retryable', reason: 'http-301' }],
    [405, { kind: 'retryable', reason: 'http-405' }],
    [99, { kind: 'retryable', reason: 'http-invalid-status' }],
    [600, { kind: 'retryable', reason: 'http-invalid-status' }],
  ])('status %i → %j', (status, expected) => {
    expect(classifyResponse(status, {}, NOW)).toEqual(expected);
  });

  it.each<[string, number | undefined]>([
    ['120', 120_000],
    [' 7 ', 7_000],
    ['0', 0],
    ['99999', MAX_RETRY_AFTER_MS],
    ['Sun, 01 Jun 2025 12:00:30 GMT', 30_000], // IMF-fixdate
    ['Sunday, 01-Jun-25 12:01:00 GMT', 60_000], // RFC 850
    ['Sun Jun  1 12:00:05 2025', 5_000], // asctime, read as GMT
    ['Sun, 01 Jun 2025 11:00:00 GMT', 0], // in the past
    ['Sun, 01 Jun 2025 14:00:00 GMT', MAX_RETRY_AFTER_MS],
    ['-5', undefined],
    ['1.5', undefined],
    ['soon', undefined],
    ['Sun, 31 Feb 2025 12:00:00 GMT', undefined],
    ['', undefined],
  ])('Retry-After %j → retryAfterMs %j', (header, expected) => {
    const outcome = classifyResponse(503, { 'retry-after': header }, NOW);
    const withoutHint: SendOutcome = { kind: 'retryable', reason: 'http-503' };
    expect(outcome).toEqual(expected === undefined ? withoutHint : { ...withoutHint, retryAfterMs: expected });
  });

  it('ignores Retry-After on outcomes that are not retried', () => {
    expect(classifyResponse(413, { 'retry-after': '10' }, NOW)).toEqual({ kind: 'permanent', reason: 'payload-too-large', status: 413 });
    expect(parseRetryAfterMs(undefined, NOW)).toBeUndefined();
  });

  it('reads two-digit RFC 850 years within 50 years of now', () => {
    // now is 2025: 2075 is 50 years ahead and still taken literally, 2076 is read as 1976.
    expect(parseHttpDate('Wednesday, 01-Jan-25 00:00:00 GMT', NOW)).toBe(Date.UTC(2025, 0, 1));
    expect(parseHttpDate('Tuesday, 01-Jan-75 00:00:00 GMT', NOW)).toBe(Date.UTC(2075, 0, 1));
    expect(parseHttpDate('Thursday, 01-Jan-76 00:00:00 GMT', NOW)).toBe(Date.UTC(1976, 0, 1));
  });
});

describe('classifyNetworkError', () => {
  it.each<[unknown, string]>([
    [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'ECONNREFUSED'],
    [
      new TypeError('fetch failed', { cause: Object.assign(new Error('timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }) }),
      'UND_ERR_CONNECT_TIMEOUT',
    ],
    [Object.assign(new Error('aborted'), { name: 'AbortError' }), 'AbortError'],
    [Object.assign(new Error('weird'), { code: 'not a code!' }), 'network-error'],
    ['a string', 'network-error'],
    [null, 'network-error'],
  ])('%s → reason %s', (err, reason) => {
    expect(classifyNetworkError(err)).toEqual({ kind: 'retryable', reason });
  });
});

describe('nextDelayMs', () => {
  const policy: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000, multiplier: 2, jitter: 0.5, unauthorizedMs: 120_000 };
  const retryable: SendOutcome = { kind: 'retryable', reason: 'http-503' };

  it.each<[number, number, number]>([
    // attempt, random, delay: base·(1 − jitter) + base·jitter·random
    [1, 0, 500],
    [1, 0.999999, 999],
    [2, 0, 1_000],
    [3, 0.5, 3_000],
    [6, 0, 15_000], // 32 s, capped at 30 s
    [50, 1, 30_000],
    [0, 0, 500], // attempt < 1 counts as the first retry
  ])('attempt %i with random %d waits %i ms', (attempt, random, delay) => {
    expect(nextDelayMs(policy, attempt, retryable, () => random)).toBe(delay);
  });

  it('honours Retry-After, even beyond maxMs, but not beyond the Retry-After cap', () => {
    expect(nextDelayMs(policy, 1, { kind: 'retryable', reason: 'http-429', retryAfterMs: 45_000 }, () => 0)).toBe(45_000);
    expect(nextDelayMs(policy, 5, { kind: 'retryable', reason: 'http-429', retryAfterMs: 100 }, () => 1)).toBe(16_000);
    expect(nextDelayMs(policy, 1, { kind: 'retryable', reason: 'x', retryAfterMs: 10 * MAX_RETRY_AFTER_MS }, () => 0)).toBe(
      MAX_RETRY_AFTER_MS,
    );
  });

  it('waits unauthorizedMs after 401/403 and nothing after success or a permanent failure', () => {
    expect(nextDelayMs(policy, 1, { kind: 'unauthorized', status: 401 }, () => 0.5)).toBe(120_000);
    expect(nextDelayMs(policy, 3, { kind: 'success' }, () => 0.5)).toBe(0);
    expect(nextDelayMs(policy, 3, { kind: 'permanent', reason: 'bad-request', status: 400 }, () => 0.5)).toBe(0);
  });

  it('jitter 0 is deterministic and jitter 1 is full jitter', () => {
    expect(nextDelayMs({ ...policy, jitter: 0 }, 2, retryable, () => 0.3)).toBe(2_000);
    expect(nextDelayMs({ ...policy, jitter: 1 }, 2, retryable, () => 0)).toBe(0);
    expect(nextDelayMs({ ...policy, jitter: 1 }, 2, retryable, () => 0.25)).toBe(500);
  });

  const arbPolicy = fc
    .record({
      initialMs: fc.integer({ min: 0, max: 60_000 }),
      extraMaxMs: fc.integer({ min: 0, max: 600_000 }),
      multiplier: fc.double({ min: 1, max: 10, noNaN: true }),
      jitter: fc.double({ min: 0, max: 1, noNaN: true }),
      unauthorizedMs: fc.integer({ min: 0, max: 3_600_000 }),
    })
    .map(({ extraMaxMs, ...p }): BackoffPolicy => ({ ...p, maxMs: p.initialMs + extraMaxMs }));
  const arbRandom = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
  const arbRetryAfter = fc.option(fc.integer({ min: 0, max: 2 * MAX_RETRY_AFTER_MS }), { nil: undefined });

  it('stays within [0, maxMs], or at least the Retry-After when one is given (property)', () => {
    fc.assert(
      fc.property(arbPolicy, fc.integer({ min: 0, max: 1_000 }), arbRandom, arbRetryAfter, (p, attempt, r, retryAfterMs) => {
        const outcome: SendOutcome =
          retryAfterMs === undefined ? { kind: 'retryable', reason: 'x' } : { kind: 'retryable', reason: 'x', retryAfterMs };
        const delay = nextDelayMs(p, attempt, outcome, () => r);
        expect(Number.isInteger(delay)).toBe(true);
        if (retryAfterMs === undefined) {
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(p.maxMs);
        } else {
          expect(delay).toBeGreaterThanOrEqual(Math.min(retryAfterMs, MAX_RETRY_AFTER_MS));
          expect(delay).toBeLessThanOrEqual(Math.max(p.maxMs, Math.min(retryAfterMs, MAX_RETRY_AFTER_MS)));
        }
      }),
    );
  });

  it('does not shrink from one attempt to the next for the same random draw, so not in expectation either (property)', () => {
    fc.assert(
      fc.property(arbPolicy, fc.integer({ min: 1, max: 200 }), arbRandom, (p, attempt, r) => {
        const delay = (n: number): number => nextDelayMs(p, n, { kind: 'retryable', reason: 'x' }, () => r);
        expect(delay(attempt + 1)).toBeGreaterThanOrEqual(delay(attempt));
      }),
    );
  });

  it('has a usable default policy, and names what is wrong with a bad one', () => {
    expect(backoffPolicyProblems(DEFAULT_BACKOFF)).toEqual([]);
    expect(backoffPolicyProblems({ initialMs: -1, maxMs: 10, multiplier: 0.5, jitter: 2, unauthorizedMs: Number.NaN })).toEqual([
      'initialMs must be ≥ 0',
      'multiplier must be ≥ 1',
      'jitter must be within 0..1',
      'unauthorizedMs must be ≥ 0',
    ]);
  });
});

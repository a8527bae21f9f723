import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, nextDelayMs } from '../../../../common/delivery/retry-policy.js';
import {
  classifyCallFailure,
  classifyFailedFinding,
  readImportAnswer,
  type CallFailure,
} from '../../../../detector/securityhub/import-outcome.js';
import { callFailure } from '../../../../detector/securityhub/securityhub-api.js';

const NOW = Date.parse('2024-05-01T12:00:00Z');

function failure(over: Partial<CallFailure>): CallFailure {
  return { name: 'Error', status: null, code: null, retryAfter: null, unreadable: false, message: '', ...over };
}

describe('classifyCallFailure', () => {
  it.each([
    [{ name: 'ThrottlingException', status: 400 }, 'throttled', 'retryable'],
    [{ name: 'TooManyRequestsException', status: 429 }, 'throttled', 'retryable'],
    [{ name: 'LimitExceededException', status: 429 }, 'throttled', 'retryable'],
    [{ name: 'Whatever', status: 429 }, 'throttled', 'retryable'],
    [{ name: 'AccessDeniedException', status: 403 }, 'unauthorized', 'unauthorized'],
    [{ name: 'InvalidAccessException', status: 401 }, 'unauthorized', 'unauthorized'],
    [{ name: 'CredentialsProviderError', status: null }, 'unauthorized', 'unauthorized'],
    [{ name: 'InvalidInputException', status: 400 }, 'rejected', 'permanent'],
    [{ name: 'InternalException', status: 500 }, 'failure', 'retryable'],
    [{ name: 'ServiceUnavailable', status: 503 }, 'failure', 'retryable'],
    [{ name: 'Error', code: 'ECONNREFUSED' }, 'failure', 'retryable'],
    [{ name: 'SyntaxError', status: 200, unreadable: true }, 'invalid_response', 'retryable'],
    [{ name: 'InvalidAnswer', status: 200, unreadable: true }, 'invalid_response', 'retryable'],
    [{ name: 'Error', status: 502, unreadable: true }, 'invalid_response', 'retryable'],
  ] as const)('%j is %s (%s)', (f, label, kind) => {
    const r = classifyCallFailure(failure(f), NOW);
    expect(r.label).toBe(label);
    expect(r.outcome.kind).toBe(kind);
  });

  it('honours Retry-After on throttling: never sooner, whatever the backoff says', () => {
    const r = classifyCallFailure(failure({ name: 'TooManyRequestsException', status: 429, retryAfter: '7' }), NOW);
    expect(r.outcome).toEqual({ kind: 'retryable', reason: 'TooManyRequestsException (429)', retryAfterMs: 7000 });
    // First retry: backoff alone would be 0.5–1 s.
    expect(nextDelayMs(DEFAULT_BACKOFF, 1, r.outcome, () => 0)).toBe(7000);
    expect(nextDelayMs(DEFAULT_BACKOFF, 1, classifyCallFailure(failure({ status: 429 }), NOW).outcome, () => 0)).toBe(500);
  });
});

describe('classifyFailedFinding', () => {
  it.each([
    ['InvalidInput', 'permanent'],
    ['InvalidInputException', 'permanent'],
    ['FindingSizeExceeded', 'permanent'],
    ['InvalidAccess', 'unauthorized'],
    ['AccessDeniedException', 'unauthorized'],
    ['InternalFailure', 'retryable'],
    ['ThrottlingException', 'retryable'],
    ['SomethingNew', 'retryable'],
  ])('%s is %s', (code, kind) => {
    expect(classifyFailedFinding(code).kind).toBe(kind);
  });
});

describe('readImportAnswer', () => {
  const ids = ['a', 'b', 'c'];
  it('reads the failed findings of a consistent answer', () => {
    expect(
      readImportAnswer(
        { SuccessCount: 2, FailedCount: 1, FailedFindings: [{ Id: 'b', ErrorCode: 'InternalFailure', ErrorMessage: 'x' }] },
        ids,
      ),
    ).toEqual({ ok: true, failed: [{ id: 'b', code: 'InternalFailure', message: 'x' }] });
    expect(readImportAnswer({ SuccessCount: 3, FailedCount: 0 }, ids)).toEqual({ ok: true, failed: [] });
  });

  it.each([
    [{}, 'SuccessCount or FailedCount missing'],
    [{ SuccessCount: 3 }, 'SuccessCount or FailedCount missing'],
    [{ SuccessCount: 7, FailedCount: 0 }, 'counts do not add up'],
    [{ SuccessCount: 2, FailedCount: 1, FailedFindings: [] }, 'counts do not add up'],
    [{ SuccessCount: 2, FailedCount: 1, FailedFindings: [{ Id: 'z', ErrorCode: 'X' }] }, 'not sent'],
    [{ SuccessCount: 2, FailedCount: 1, FailedFindings: 'b' }, 'not a list'],
  ])('does not believe %j', (answer, reason) => {
    const r = readImportAnswer(answer, ids);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toContain(reason);
  });
});

describe('callFailure', () => {
  it('reads a service error: type, status, Retry-After', () => {
    const err = Object.assign(new Error('slow down'), {
      name: 'TooManyRequestsException',
      $metadata: { httpStatusCode: 429 },
      $response: { statusCode: 429, headers: { 'retry-after': '3' } },
    });
    expect(callFailure(err)).toEqual({
      name: 'TooManyRequestsException',
      status: 429,
      code: null,
      retryAfter: '3',
      unreadable: false,
      message: 'slow down',
    });
  });

  it('reads a socket error by its code, and an unreadable body', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(callFailure(refused)).toMatchObject({ status: null, code: 'ECONNREFUSED', unreadable: false });
    const garbled = Object.assign(new SyntaxError('Unexpected token <'), {
      $metadata: { httpStatusCode: 200 },
      $responseBodyText: '<html>',
    });
    expect(classifyCallFailure(callFailure(garbled), NOW).label).toBe('invalid_response');
  });
});

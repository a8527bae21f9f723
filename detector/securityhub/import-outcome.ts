/**
 * What a BatchImportFindings answer means for the findings sent, in one
 * place. Pure: the SDK's error is read into a CallFailure by the API wrapper.
 *
 *   the call                                             label              findings
 *   answered, counts consistent                          success            per finding, below
 *   429, Throttling/TooManyRequests/LimitExceeded         throttled          retried, not before Retry-After
 *   401/403, AccessDenied/InvalidAccess/credentials      unauthorized       retried slowly (configuration)
 *   400 InvalidInput/Validation/Serialization             rejected           halved until the bad finding stands alone
 *   2xx that cannot be read, counts that do not add up   invalid_response   retried
 *   5xx, network errors, anything else                   failure            retried
 *
 *   a finding in FailedFindings                                              outcome
 *   InvalidInput…, Validation…, FindingSizeExceeded…                         permanent: parked until it changes
 *   …Access…, …Denied…, …Auth… (Security Hub or the product not enabled)     unauthorized: retried slowly
 *   anything else (throttling, internal errors, unknown codes)               retryable
 */
import { parseRetryAfterMs, type SendOutcome } from '../../common/delivery/retry-policy.js';

/** A call that got no usable answer, as the API wrapper read it from the SDK's error. */
export interface CallFailure {
  /** The error's name: the service's error type (`ThrottlingException`), or the SDK's / the socket's. */
  name: string;
  /** The HTTP status, when an answer came. */
  status: number | null;
  /** The network error code (`ECONNREFUSED`, …) when no answer came. */
  code: string | null;
  retryAfter: string | null;
  /** The answer came but could not be read (not JSON, wrong shape). */
  unreadable: boolean;
  message: string;
}

export type CallLabel = 'success' | 'throttled' | 'unauthorized' | 'rejected' | 'failure' | 'invalid_response';

const THROTTLING = /^(Throttling|ThrottlingException|TooManyRequestsException|LimitExceededException|RequestLimitExceeded|SlowDown)$/;
const UNAUTHORIZED =
  /^(AccessDenied|AccessDeniedException|InvalidAccessException|UnrecognizedClientException|InvalidSignatureException|ExpiredTokenException|InvalidClientTokenId|CredentialsProviderError|MissingAuthenticationTokenException)$/;
const REJECTED = /^(InvalidInputException|ValidationException|SerializationException)$/;

export function classifyCallFailure(f: CallFailure, nowMs: number): { label: CallLabel; outcome: SendOutcome } {
  const reason = f.status !== null ? `${f.name} (${f.status})` : f.code !== null ? f.code : f.name;
  if (f.status === 429 || THROTTLING.test(f.name)) {
    const retryAfterMs = parseRetryAfterMs(f.retryAfter ?? undefined, nowMs);
    return {
      label: 'throttled',
      outcome: retryAfterMs === undefined ? { kind: 'retryable', reason } : { kind: 'retryable', reason, retryAfterMs },
    };
  }
  if (f.status === 401 || f.status === 403 || UNAUTHORIZED.test(f.name))
    return { label: 'unauthorized', outcome: { kind: 'unauthorized', status: f.status ?? 403 } };
  if (f.unreadable || (f.status !== null && f.status >= 200 && f.status < 300))
    return { label: 'invalid_response', outcome: { kind: 'retryable', reason: `unreadable answer: ${reason}` } };
  if (f.status === 400 && REJECTED.test(f.name)) return { label: 'rejected', outcome: { kind: 'permanent', reason, status: 400 } };
  return { label: 'failure', outcome: { kind: 'retryable', reason } };
}

export function classifyFailedFinding(errorCode: string): SendOutcome {
  if (/InvalidInput|Validation|SizeExceeded|TooLarge/i.test(errorCode)) return { kind: 'permanent', reason: errorCode, status: 400 };
  if (/Access|Denied|Auth|Forbidden/i.test(errorCode)) return { kind: 'unauthorized', status: 403 };
  return { kind: 'retryable', reason: errorCode };
}

export interface FailedFinding {
  id: string;
  code: string;
  message: string;
}

/**
 * Checks an answer against the batch sent: SuccessCount + FailedCount must be the batch's size and
 * every failed Id one that was sent. An answer that does not add up is not believed: the whole batch
 * is sent again (an import repeated with the same UpdatedAt changes nothing in Security Hub).
 */
export function readImportAnswer(
  answer: { SuccessCount?: unknown; FailedCount?: unknown; FailedFindings?: unknown },
  sentIds: readonly string[],
): { ok: true; failed: FailedFinding[] } | { ok: false; reason: string } {
  const { SuccessCount: success, FailedCount: failedCount, FailedFindings: list = [] } = answer;
  if (typeof success !== 'number' || typeof failedCount !== 'number') return { ok: false, reason: 'SuccessCount or FailedCount missing' };
  if (!Array.isArray(list)) return { ok: false, reason: 'FailedFindings is not a list' };
  if (success + failedCount !== sentIds.length || list.length !== failedCount)
    return { ok: false, reason: `counts do not add up: ${success} + ${failedCount} for ${sentIds.length} findings, ${list.length} listed` };
  const sent = new Set(sentIds);
  const failed: FailedFinding[] = [];
  for (const item of list as unknown[]) {
    const f = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof f['Id'] !== 'string' || !sent.has(f['Id'])) return { ok: false, reason: 'a failed finding names an Id that was not sent' };
    failed.push({
      id: f['Id'],
      code: typeof f['ErrorCode'] === 'string' ? f['ErrorCode'] : 'Unknown',
      message: typeof f['ErrorMessage'] === 'string' ? f['ErrorMessage'] : '',
    });
  }
  return { ok: true, failed };
}

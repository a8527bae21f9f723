// What a send's result means for the batch, and how long to wait before the
// next try. Pure: the sender passes in the status, headers, clock and random
// source. Shared by every sender with retries (the agent's telemetry shipper,
// the detector's Security Hub export): SendOutcome, BackoffPolicy and
// nextDelayMs are generic; classifyResponse is the telemetry protocol's
// reading of HTTP statuses.
//
// The rule behind classifyResponse: a batch is given up on (permanent → dead
// letter) only when the detector blames the batch's own content. Anything
// that would fail for every batch alike — a wrong URL, a proxy in the way, a
// detector being deployed — is configuration, and is retried: dead-lettering
// on it would empty the spool while the operator fixes the config.
//
//   2xx                       success
//   401, 403                  unauthorized   slow retry (policy.unauthorizedMs)
//   400, 422                  permanent      dead-letter the batch
//   413                       permanent      never retried: the shipper splits the batch in two,
//                                            or dead-letters it when it holds one record
//   408, 429, 5xx             retryable      Retry-After honoured
//   404 and everything else   retryable      (config, not data; see above)

export type SendOutcome =
  | { kind: 'success' }
  | { kind: 'retryable'; reason: string; retryAfterMs?: number }
  | { kind: 'permanent'; reason: string; status: number }
  | { kind: 'unauthorized'; status: number }
  /**
   * The destination refuses every item alike until an operator fixes a config key (a wrong URL
   * path, an unknown sender id): nothing is given up, the sender retries with the capped backoff.
   */
  | { kind: 'misconfigured'; reason: string; status: number };

export interface BackoffPolicy {
  /** Delay before the first retry, before jitter. */
  initialMs: number;
  /** Cap on the exponential delay (a server's Retry-After may exceed it). */
  maxMs: number;
  /** Growth per failed attempt, ≥ 1. */
  multiplier: number;
  /** 0 = none, 0.5 = equal jitter, 1 = full jitter: the delay is drawn from [base·(1−jitter), base]. */
  jitter: number;
  /** Fixed wait after 401/403: credentials are fixed by a human or a rotation, not by hammering. */
  unauthorizedMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  initialMs: 1_000,
  maxMs: 60_000,
  multiplier: 2,
  jitter: 0.5,
  unauthorizedMs: 300_000,
};

/** A server cannot park the shipper for longer than this with Retry-After. */
export const MAX_RETRY_AFTER_MS = 10 * 60_000;

const PERMANENT: ReadonlyMap<number, string> = new Map([
  [400, 'bad-request'],
  [413, 'payload-too-large'],
  [422, 'unprocessable-content'],
]);

export function classifyResponse(status: number, headers: { 'retry-after'?: string | undefined }, nowMs: number): SendOutcome {
  if (!Number.isInteger(status) || status < 100 || status > 599) return { kind: 'retryable', reason: 'http-invalid-status' };
  if (status >= 200 && status <= 299) return { kind: 'success' };
  if (status === 401 || status === 403) return { kind: 'unauthorized', status };
  const permanent = PERMANENT.get(status);
  if (permanent !== undefined) return { kind: 'permanent', reason: permanent, status };
  const retryAfterMs = parseRetryAfterMs(headers['retry-after'], nowMs);
  const reason = `http-${status}`;
  return retryAfterMs === undefined ? { kind: 'retryable', reason } : { kind: 'retryable', reason, retryAfterMs };
}

/** Any failure to get a response is worth retrying; the reason is the error's code (`ECONNREFUSED`, `UND_ERR_CONNECT_TIMEOUT`, …). */
export function classifyNetworkError(err: unknown): SendOutcome {
  return { kind: 'retryable', reason: networkErrorCode(err) };
}

function networkErrorCode(err: unknown): string {
  // undici's fetch wraps the socket error: TypeError('fetch failed') with a cause.
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code)) return code;
  }
  if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) return err.name;
  return 'network-error';
}

/**
 * Retry-After as delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or
 * asctime, all GMT), in ms from nowMs, capped at MAX_RETRY_AFTER_MS. A date
 * in the past gives 0; anything unparseable gives undefined (use backoff).
 */
export function parseRetryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  const at = parseHttpDate(text, nowMs);
  if (at === undefined) return undefined;
  return Math.min(Math.max(0, at - nowMs), MAX_RETRY_AFTER_MS);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850_DATE =
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME_DATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/** RFC 9110 §5.6.7. Returns ms since the epoch, or undefined. `nowMs` resolves RFC 850's two-digit years. */
export function parseHttpDate(text: string, nowMs: number): number | undefined {
  let m = IMF_FIXDATE.exec(text);
  if (m !== null) return utc(m[3], m[2], m[1], m[4], m[5], m[6]);
  m = RFC850_DATE.exec(text);
  if (m !== null) {
    // RFC 9110: a two-digit year more than 50 years ahead means the past century.
    const yy = Number(m[3]);
    const year = 2000 + yy > new Date(nowMs).getUTCFullYear() + 50 ? 1900 + yy : 2000 + yy;
    return utc(String(year), m[2], m[1], m[4], m[5], m[6]);
  }
  m = ASCTIME_DATE.exec(text);
  if (m !== null) return utc(m[6], m[1], m[2], m[3], m[4], m[5]);
  return undefined;
}

function utc(...parts: [string?, string?, string?, string?, string?, string?]): number | undefined {
  const [yearText, monthName, ...rest] = parts;
  const month = MONTHS.indexOf(monthName ?? '');
  const [year, day, hour, minute, second] = [yearText, ...rest].map((p) => Number(p?.trim() ?? Number.NaN));
  if (month === -1 || year === undefined || day === undefined || hour === undefined || minute === undefined || second === undefined)
    return undefined;
  if (![year, day, hour, minute, second].every(Number.isInteger) || hour > 23 || minute > 59 || second > 60) return undefined;
  const ms = Date.UTC(year, month, day, hour, minute, Math.min(second, 59));
  // Date.UTC rolls 31 Feb over into March; a real date survives the round trip.
  return new Date(ms).getUTCDate() === day ? ms : undefined;
}

/**
 * Delay before the next try. `attempt` counts the failed sends so far,
 * this one included (1 for the first retry). Retryable: exponential
 * initialMs·multiplier^(attempt−1) capped at maxMs, with jitter, and never
 * sooner than the server's retryAfterMs; misconfigured: the same curve, with no
 * Retry-After. Unauthorized: policy.unauthorizedMs.
 * Success and permanent: 0 (nothing to wait for; permanent is not retried).
 */
export function nextDelayMs(policy: BackoffPolicy, attempt: number, outcome: SendOutcome, random: () => number): number {
  switch (outcome.kind) {
    case 'success':
    case 'permanent':
      return 0;
    case 'unauthorized':
      return policy.unauthorizedMs;
    case 'misconfigured':
    case 'retryable': {
      const n = Number.isFinite(attempt) ? Math.max(1, Math.floor(attempt)) : 1;
      const base = policy.initialMs <= 0 ? 0 : Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** (n - 1));
      const jitter = clamp01(policy.jitter);
      const delay = Math.floor(base * (1 - jitter) + base * jitter * clamp01(random()));
      const retryAfterMs = outcome.kind === 'retryable' ? outcome.retryAfterMs : undefined;
      const floor = retryAfterMs === undefined ? 0 : Math.ceil(Math.min(Math.max(0, retryAfterMs), MAX_RETRY_AFTER_MS));
      return Math.max(delay, floor);
    }
  }
}

/** Problems with a policy (for config validation); empty when it is usable. */
export function backoffPolicyProblems(policy: BackoffPolicy): string[] {
  const problems: string[] = [];
  const nonNegative = (v: number): boolean => Number.isFinite(v) && v >= 0;
  if (!nonNegative(policy.initialMs)) problems.push('initialMs must be ≥ 0');
  if (!nonNegative(policy.maxMs) || policy.maxMs < policy.initialMs) problems.push('maxMs must be ≥ initialMs');
  if (!Number.isFinite(policy.multiplier) || policy.multiplier < 1) problems.push('multiplier must be ≥ 1');
  if (!(policy.jitter >= 0 && policy.jitter <= 1)) problems.push('jitter must be within 0..1');
  if (!nonNegative(policy.unauthorizedMs)) problems.push('unauthorizedMs must be ≥ 0');
  return problems;
}

function clamp01(v: number): number {
  return Number.isNaN(v) ? 0 : Math.min(1, Math.max(0, v));
}

/**
 * Log redaction by key name, at any depth: authorization headers, session
 * tokens, signatures and anything named like a secret never reach the log.
 * Access key IDs are not secrets but are masked (first 4 … last 4) in logs.
 */
const SECRET_KEY =
  /secret|password|passwd|authorization|security-token|securitytoken|session_token|sessiontoken|signature|private_?key|^token$|x-amz-security-token|proxy-authorization|cookie/i;
const ACCESS_KEY_FIELD = /^access_?key(_?id)?$/i;
/** Deeper values are not walked but replaced: a secret must never slip through by nesting. */
const MAX_DEPTH = 10;
export const TRUNCATED = '[truncated: nested too deep]';

export const REDACTED = '[redacted]';

/**
 * Text that looks like credential material wherever it appears: SigV4 and SigV2
 * signing parts (algorithm, `Credential=`, `Signature=`, the `X-Amz-…` query
 * names), an HTTP authorization scheme with its value, or a whole access key ID.
 * A run of 40 or more base64 characters in both cases with a digit, `/` or `+`
 * (a secret access key, a session token) is checked apart (BASE64_RUN): host
 * names are lower-case and long operation names (`DeregisterTransitGateway…`)
 * have neither digits nor symbols, so neither matches.
 */
const SECRET_TEXT =
  /aws4-hmac-sha256|aws4-ecdsa-p256-sha256|credential=|signature=|x-amz-signature|x-amz-security-token|x-amz-credential|awsaccesskeyid|(?:bearer|basic|digest|negotiate)\s+\S{8}|\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AGPA|ANPA|ANVA|APKA|ASCA)[A-Z0-9]{16}\b/i;
const BASE64_RUN = /[A-Za-z0-9+/]{40,}/g;

/**
 * One free-text value that may have come from outside (a host, a path
 * template, a reason) as it may be logged: `[redacted]` when any of it looks
 * like a signature, a session token, a secret or an access key ID. For lines
 * of fixed, known keys that skip the key-name walk: the keys are safe by
 * construction, the values are checked here.
 */
export function redactText(value: string): string {
  if (SECRET_TEXT.test(value)) return REDACTED;
  if (value.length < 40) return value;
  BASE64_RUN.lastIndex = 0;
  for (let m = BASE64_RUN.exec(value); m !== null; m = BASE64_RUN.exec(value)) {
    if (/[A-Z]/.test(m[0]) && /[a-z]/.test(m[0]) && /[0-9+/]/.test(m[0])) return REDACTED;
  }
  return value;
}

export function maskAccessKeyId(id: string): string {
  return id.length > 8 ? `${id.slice(0, 4)}…${id.slice(-4)}` : '…';
}

/** Returns a copy of `value` with secret-named keys replaced; leaves other values untouched. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return TRUNCATED;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1));
  if (value instanceof Date || Buffer.isBuffer(value)) return value;
  if (value instanceof Error) return redactError(value, depth);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (SECRET_KEY.test(k) && !k.endsWith('_file') && !k.endsWith('File')) out[k] = v === null || v === undefined ? v : REDACTED;
    else if (ACCESS_KEY_FIELD.test(k) && typeof v === 'string') out[k] = maskAccessKeyId(v);
    else out[k] = redactDeep(v, depth + 1);
  }
  return out;
}

/** An Error as a plain object (type, message, stack, code, cause and own properties), redacted like the rest. */
function redactError(err: Error, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.name, message: err.message, stack: err.stack };
  for (const [k, v] of Object.entries(err)) out[k] = v;
  if (err.cause !== undefined) out.cause = err.cause;
  return redactDeep(out, depth + 1) as Record<string, unknown>;
}

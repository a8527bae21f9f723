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

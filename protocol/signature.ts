/**
 * Batch authentication: `X-Egress-Witness-Signature: t=<unix seconds>,v1=<hex>`
 * where v1 = HMAC-SHA256(secret, `${t}.` + body) over the body bytes exactly
 * as sent (gzip-compressed). Timestamps outside the skew window are rejected,
 * which bounds replays; the detector also dedupes on batchId.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-egress-witness-signature';
export const GATEWAY_HEADER = 'x-egress-witness-gateway';
export const BATCH_HEADER = 'x-egress-witness-batch';

export function computeSignature(secret: Buffer, timestamp: number, body: Uint8Array): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

export function signatureHeader(secret: Buffer, timestamp: number, body: Uint8Array): string {
  return `t=${timestamp},v1=${computeSignature(secret, timestamp, body)}`;
}

export type SignatureCheck = { ok: true; timestamp: number } | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'mismatch' };

export function parseSignatureHeader(header: string | undefined): { t: number; v1: string[] } | null {
  if (!header) return null;
  let t: number | null = null;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/i.test(v)) v1.push(v.toLowerCase());
  }
  return t === null || v1.length === 0 ? null : { t, v1 };
}

/** Verifies the header against the body; several v1 values allow key rotation on the sender. */
export function verifySignature(
  secret: Buffer,
  header: string | undefined,
  body: Uint8Array,
  nowSeconds: number,
  skewSeconds: number,
): SignatureCheck {
  if (!header) return { ok: false, reason: 'missing' };
  const parsed = parseSignatureHeader(header);
  if (!parsed) return { ok: false, reason: 'malformed' };
  if (Math.abs(nowSeconds - parsed.t) > skewSeconds) return { ok: false, reason: 'stale' };
  const expected = Buffer.from(computeSignature(secret, parsed.t, body), 'hex');
  for (const candidate of parsed.v1) {
    if (timingSafeEqual(expected, Buffer.from(candidate, 'hex'))) return { ok: true, timestamp: parsed.t };
  }
  return { ok: false, reason: 'mismatch' };
}

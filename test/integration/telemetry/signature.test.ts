// Batch signatures (protocol/signature.ts) and the test receiver's checks:
// a valid signature passes both the library and the independent HMAC, a
// tampered body or a stale timestamp fails both, and the receiver answers
// 401 / 400 / 200 / duplicate as the wire format says.
import { afterEach, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { computeSignature, signatureHeader, verifySignature } from '../../../protocol/signature.js';
import { SCHEMA_VERSION, type TelemetryBatch } from '../../../protocol/telemetry.js';
import {
  independentSignatureCheck,
  startTelemetryReceiver,
  SIGNATURE_SKEW_SECONDS,
  type TelemetryReceiver,
} from '../../helpers/telemetry-receiver.js';

const SECRET = Buffer.from('unit-test-secret-0123456789abcdef', 'utf8');
const NOW_S = 1_750_000_000;

function batch(id = 'batch-0001'): TelemetryBatch {
  return {
    schemaVersion: SCHEMA_VERSION,
    batchId: id,
    gatewayId: 'gw-test',
    agent: { version: '0.0.0-test', startedAt: '2025-06-15T00:00:00.000Z' },
    sequence: 0,
    egressCidrs: ['203.0.113.0/28'],
    sentAt: new Date().toISOString(),
    records: [
      {
        type: 'heartbeat',
        schema: SCHEMA_VERSION,
        gatewayId: 'gw-test',
        time: new Date().toISOString(),
        agentVersion: '0.0.0-test',
        startedAt: '2025-06-15T00:00:00.000Z',
        uptimeSeconds: 1,
        counts: { observed: 0 },
        spool: { batches: 0, bytes: 0 },
      },
    ],
  };
}

describe('protocol/signature.ts', () => {
  const body = gzipSync(JSON.stringify(batch()));

  it('is HMAC-SHA256(secret, t + "." + body) in hex, as an independent computation finds', () => {
    const byHand = createHmac('sha256', SECRET)
      .update(Buffer.concat([Buffer.from(`${NOW_S}.`), body]))
      .digest('hex');
    expect(computeSignature(SECRET, NOW_S, body)).toBe(byHand);
    expect(signatureHeader(SECRET, NOW_S, body)).toBe(`t=${NOW_S},v1=${byHand}`);
  });

  it('verifies a fresh signature with both checks', () => {
    const header = signatureHeader(SECRET, NOW_S, body);
    expect(verifySignature(SECRET, header, body, NOW_S + 10, SIGNATURE_SKEW_SECONDS)).toEqual({ ok: true, timestamp: NOW_S });
    expect(independentSignatureCheck(SECRET, header, body, NOW_S + 10)).toEqual({ ok: true, t: NOW_S });
  });

  it('rejects a tampered body (one flipped byte) with both checks', () => {
    const header = signatureHeader(SECRET, NOW_S, body);
    const tampered = Buffer.from(body);
    tampered[tampered.length - 5]! ^= 0x01;
    expect(verifySignature(SECRET, header, tampered, NOW_S, SIGNATURE_SKEW_SECONDS)).toEqual({ ok: false, reason: 'mismatch' });
    expect(independentSignatureCheck(SECRET, header, tampered, NOW_S).ok).toBe(false);
  });

  it('rejects the same body signed with another secret', () => {
    const header = signatureHeader(Buffer.from('another-secret-0123456789abcdef'), NOW_S, body);
    expect(verifySignature(SECRET, header, body, NOW_S, SIGNATURE_SKEW_SECONDS)).toEqual({ ok: false, reason: 'mismatch' });
    expect(independentSignatureCheck(SECRET, header, body, NOW_S).ok).toBe(false);
  });

  it('rejects a timestamp more than 5 minutes old (or ahead), accepts one at the edge', () => {
    const header = signatureHeader(SECRET, NOW_S, body);
    expect(verifySignature(SECRET, header, body, NOW_S + 301, SIGNATURE_SKEW_SECONDS)).toEqual({ ok: false, reason: 'stale' });
    expect(verifySignature(SECRET, header, body, NOW_S - 301, SIGNATURE_SKEW_SECONDS)).toEqual({ ok: false, reason: 'stale' });
    expect(independentSignatureCheck(SECRET, header, body, NOW_S + 301).ok).toBe(false);
    expect(verifySignature(SECRET, header, body, NOW_S + 300, SIGNATURE_SKEW_SECONDS).ok).toBe(true);
    expect(independentSignatureCheck(SECRET, header, body, NOW_S + 300).ok).toBe(true);
  });

  it('reports a missing or malformed header', () => {
    expect(verifySignature(SECRET, undefined, body, NOW_S, SIGNATURE_SKEW_SECONDS)).toEqual({ ok: false, reason: 'missing' });
    expect(verifySignature(SECRET, `t=${NOW_S},v1=zz`, body, NOW_S, SIGNATURE_SKEW_SECONDS)).toEqual({ ok: false, reason: 'malformed' });
    expect(verifySignature(SECRET, `v1=${computeSignature(SECRET, NOW_S, body)}`, body, NOW_S, SIGNATURE_SKEW_SECONDS)).toEqual({
      ok: false,
      reason: 'malformed',
    });
  });

  it('accepts any of several v1 values (key rotation on the sender)', () => {
    const good = computeSignature(SECRET, NOW_S, body);
    const other = computeSignature(Buffer.from('old-secret-0123456789abcdef'), NOW_S, body);
    expect(verifySignature(SECRET, `t=${NOW_S},v1=${other},v1=${good}`, body, NOW_S, SIGNATURE_SKEW_SECONDS).ok).toBe(true);
  });
});

describe('the test receiver', () => {
  let receiver: TelemetryReceiver | null = null;
  afterEach(async () => {
    await receiver?.stop();
    receiver = null;
  });

  async function post(r: TelemetryReceiver, body: Buffer, headers: Record<string, string>): Promise<number> {
    const res = await request(r.url, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...headers },
    });
    await res.body.text();
    return res.statusCode;
  }

  function signedHeaders(b: TelemetryBatch, body: Buffer, t = Math.floor(Date.now() / 1000), secret = SECRET): Record<string, string> {
    return {
      'x-egress-witness-gateway': b.gatewayId,
      'x-egress-witness-batch': b.batchId,
      'x-egress-witness-signature': signatureHeader(secret, t, body),
    };
  }

  it('stores a valid batch once and counts a resend as a duplicate (both answered 200)', async () => {
    receiver = await startTelemetryReceiver({ secret: SECRET });
    const b = batch('batch-dup-1');
    const body = gzipSync(JSON.stringify(b));
    expect(await post(receiver, body, signedHeaders(b, body))).toBe(200);
    expect(await post(receiver, body, signedHeaders(b, body))).toBe(200);
    expect(receiver.batches.map((x) => x.batch.batchId)).toEqual(['batch-dup-1']);
    expect(receiver.duplicates).toEqual(['batch-dup-1']);
    expect(receiver.heartbeats()).toHaveLength(1);
    expect(receiver.verifierDisagreements).toBe(0);
  });

  it('answers 401 to a tampered body, a stale timestamp and a wrong secret, and stores nothing', async () => {
    receiver = await startTelemetryReceiver({ secret: SECRET });
    const b = batch('batch-bad-sig');
    const body = gzipSync(JSON.stringify(b));
    const tampered = gzipSync(JSON.stringify({ ...b, sequence: 7 }));
    expect(await post(receiver, tampered, signedHeaders(b, body))).toBe(401);
    expect(await post(receiver, body, signedHeaders(b, body, Math.floor(Date.now() / 1000) - 301))).toBe(401);
    expect(await post(receiver, body, signedHeaders(b, body, undefined, Buffer.from('not-the-right-secret-at-all')))).toBe(401);
    expect(await post(receiver, body, { 'x-egress-witness-gateway': 'gw-test', 'x-egress-witness-batch': b.batchId })).toBe(401);
    expect(receiver.attempts.map((a) => a.reason)).toEqual(['mismatch', 'stale', 'mismatch', 'missing']);
    expect(receiver.batches).toHaveLength(0);
    expect(receiver.verifierDisagreements).toBe(0);
  });

  it('answers 400 to a signed but invalid batch, a body that is not gzip, or headers that do not match', async () => {
    receiver = await startTelemetryReceiver({ secret: SECRET });
    const invalid = { ...batch('batch-invalid'), gatewayId: 'GW UPPER' };
    const invalidBody = gzipSync(JSON.stringify(invalid));
    expect(await post(receiver, invalidBody, signedHeaders(invalid, invalidBody))).toBe(400);
    const plain = Buffer.from(JSON.stringify(batch('batch-plain')));
    expect(await post(receiver, plain, signedHeaders(batch('batch-plain'), plain))).toBe(400);
    const b = batch('batch-header');
    const body = gzipSync(JSON.stringify(b));
    expect(await post(receiver, body, { ...signedHeaders(b, body), 'x-egress-witness-batch': 'batch-other' })).toBe(400);
    expect(receiver.batches).toHaveLength(0);
  });

  it('plays a script (503 with Retry-After, then 200) and survives stop/start on the same port', async () => {
    receiver = await startTelemetryReceiver({ secret: SECRET });
    receiver.script({ status: 503, headers: { 'retry-after': '2' }, times: 2 });
    const b = batch('batch-script');
    const body = gzipSync(JSON.stringify(b));
    const res = await request(receiver.url, { method: 'POST', body, headers: { 'content-encoding': 'gzip', ...signedHeaders(b, body) } });
    await res.body.text();
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(await post(receiver, body, signedHeaders(b, body))).toBe(503);
    const port = receiver.port;
    await receiver.stop();
    await expect(post(receiver, body, signedHeaders(b, body))).rejects.toThrow();
    await receiver.start();
    expect(receiver.port).toBe(port);
    expect(await post(receiver, body, signedHeaders(b, body))).toBe(200);
    expect(receiver.attempts.map((a) => a.status)).toEqual([503, 503, 200]);
  });
});

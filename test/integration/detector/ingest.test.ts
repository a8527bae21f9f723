/**
 * POST /v1/telemetry over loopback HTTP with real signatures, as the agent
 * sends them: what is stored, what is refused and with which status, and
 * that an agent cannot widen its own egress CIDRs.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import { signatureHeader } from '../../../protocol/signature.js';
import {
  cloudTrailRecord,
  EXTERNAL_IP,
  GW1_IP,
  newAccessKeyId,
  parseJson,
  sleep,
  startDetector,
  waitFor,
  type DetectorHarness,
  type HttpAnswer,
} from '../../helpers/detector.js';

const MAX_BODY = 64 * 1024;
const WIDE = 10 * 365 * 86_400_000;

let h: DetectorHarness;

beforeAll(async () => {
  h = await startDetector({ config: { ingest: { max_body_bytes: '64KiB' }, correlation: { grace: '300ms', window: '60s' } } });
});

afterAll(async () => {
  await h?.cleanup();
});

/** gw1 saw `key` from routed client 10.20.3.4 a few seconds ago. */
function sightingOf(key: string, at = Date.now() - 5_000) {
  return observation({ accessKeyId: key, at, span: 2_000 });
}

async function sightings(key: string) {
  return await h.app.db.keySightings(key, Date.now() - WIDE, Date.now() + WIDE);
}

function expectRefused(a: HttpAnswer, status: number, reason: RegExp): void {
  expect(a.status, a.text).toBe(status);
  expect(a.json).toMatchObject({ accepted: false });
  expect(String(a.json.error)).toMatch(reason);
}

describe('POST /v1/telemetry: accepted batches', () => {
  it('stores a validly signed batch and answers 200 only after storing it', async () => {
    const key = newAccessKeyId();
    const hbAt = Date.now() - 1_000;
    const batch = h.batch('gw1', [sightingOf(key), heartbeat('gw1', hbAt)]);
    const before = await h.metric('egress_witness_detector_ingested_batches_total', { outcome: 'stored' });
    const a = await h.signedPost(batch);
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ accepted: true, duplicate: false, batchId: batch.batchId, records: 2 });
    const s = await sightings(key);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({
      gatewayId: 'gw1',
      clientIp: '10.20.3.4',
      network: 'vpc-prod',
      accessKeyId: key,
      service: 'sts',
      region: 'us-east-1',
      mode: 'inspect',
      count: 3,
    });
    expect(await h.app.db.lastHeartbeatMs('gw1')).toBe(new Date(new Date(hbAt).toISOString()).getTime());
    expect(await h.metric('egress_witness_detector_ingested_batches_total', { outcome: 'stored' })).toBe(before + 1);
    expect(await h.metric('egress_witness_detector_ingested_records_total', { type: 'observation' })).toBeGreaterThanOrEqual(1);
  });

  it('attributes records to the signing gateway, whatever gatewayId a record claims', async () => {
    const key = newAccessKeyId();
    const a = await h.signedPost(h.batch('gw1', [observation({ accessKeyId: key, gatewayId: 'gw4', at: Date.now() - 3_000 })]));
    expect(a.status, a.text).toBe(200);
    expect((await sightings(key)).map((s) => s.gatewayId)).toEqual(['gw1']);
  });

  it('acknowledges a duplicate batch id with duplicate: true and stores it once', async () => {
    const key = newAccessKeyId();
    const batch = h.batch('gw1', [sightingOf(key)]);
    const first = await h.signedPost(batch);
    expect(first.status).toBe(200);
    const before = await h.metric('egress_witness_detector_ingested_batches_total', { outcome: 'duplicate' });
    const again = await h.signedPost(batch);
    expect(again.status, again.text).toBe(200);
    expect(again.json).toMatchObject({ accepted: true, duplicate: true, batchId: batch.batchId });
    // The same batchId with other content (a resend is byte-identical; this is not) is still not stored twice.
    const altered = await h.signedPost({ ...batch, records: [sightingOf(key), sightingOf(key)] });
    expect(altered.json).toMatchObject({ duplicate: true });
    expect(await sightings(key)).toHaveLength(1);
    expect(await h.metric('egress_witness_detector_ingested_batches_total', { outcome: 'duplicate' })).toBe(before + 2);
  });

  it("deduplicates per gateway: gw4's batch reusing gw1's batchId is stored, and a repeat of it is a duplicate", async () => {
    const key1 = newAccessKeyId();
    const key4 = newAccessKeyId();
    const first = h.batch('gw1', [sightingOf(key1)]);
    expect((await h.signedPost(first)).json).toMatchObject({ accepted: true, duplicate: false });
    const reused = h.batch('gw4', [observation({ accessKeyId: key4, at: Date.now() - 5_000, span: 2_000 })], { batchId: first.batchId });
    const a = await h.signedPost(reused);
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ accepted: true, duplicate: false, batchId: first.batchId, records: 1 });
    expect((await sightings(key4)).map((s) => s.gatewayId)).toEqual(['gw4']);
    expect((await h.signedPost(reused)).json).toMatchObject({ accepted: true, duplicate: true });
    expect(await sightings(key4)).toHaveLength(1);
    expect(await sightings(key1)).toHaveLength(1);
  });

  it('ignores egress CIDRs a batch declares beyond its configured ones: stored, logged, counted, never used', async () => {
    const key = newAccessKeyId();
    const batch = h.batch('gw1', [sightingOf(key)], { egressCidrs: ['203.0.113.0/28', '198.51.100.0/24', '0.0.0.0/0'] });
    const before = await h.metric('egress_witness_detector_declared_cidrs_ignored_total', { gateway: 'gw1' });
    const a = await h.signedPost(batch);
    expect(a.status, a.text).toBe(200);
    expect(await sightings(key)).toHaveLength(1);
    expect(await h.metric('egress_witness_detector_declared_cidrs_ignored_total', { gateway: 'gw1' })).toBe(before + 1);
    const log = h.logs.find('declared_cidrs_ignored').at(-1);
    expect(log).toMatchObject({ gateway_id: 'gw1', declared: ['198.51.100.0/24', '0.0.0.0/0'] });

    // A call with that key from an address only the batch claimed is not attested by gw1.
    const record = cloudTrailRecord({ key, sourceIp: EXTERNAL_IP, time: Date.now() - 10_000 });
    const ct = await h.postJson('/v1/cloudtrail', record);
    expect(ct.status, ct.text).toBe(200);
    const d = await waitFor(
      async () =>
        (await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 1000 })).find((x) => x.subjectId === record.eventID),
      'the decision',
    );
    expect(d).toMatchObject({ disposition: 'finding', rule: 'external', gatewayId: null, sourceIp: EXTERNAL_IP });
    // …while the same key from gw1's configured address is.
    const ok = cloudTrailRecord({ key, sourceIp: GW1_IP, time: Date.now() - 10_000 });
    await h.postJson('/v1/cloudtrail', ok);
    const d2 = await waitFor(
      async () => (await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 1000 })).find((x) => x.subjectId === ok.eventID),
      'the decision',
    );
    expect(d2).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw1' });
  });
});

describe('POST /v1/telemetry: refused batches store nothing', () => {
  it('401 for a signature made with another key, and for a body changed after signing', async () => {
    const key = newAccessKeyId();
    const batch = h.batch('gw1', [sightingOf(key)]);
    const before = await h.metric('egress_witness_detector_ingested_batches_total', { outcome: 'unauthorized' });
    expectRefused(await h.signedPost(batch, { secret: Buffer.from('not-the-gateway-secret-at-all', 'utf8') }), 401, /signature mismatch/);
    expectRefused(await h.signedPost(batch, { secret: h.secrets.get('gw4')! }), 401, /signature mismatch/);
    expectRefused(await h.signedPost(batch, { tamper: 'signature' }), 401, /signature mismatch/);
    expectRefused(await h.signedPost(batch, { tamper: 'body' }), 401, /signature mismatch/);
    expect(await sightings(key)).toHaveLength(0);
    expect(await h.metric('egress_witness_detector_ingested_batches_total', { outcome: 'unauthorized' })).toBe(before + 4);
    expect(h.logs.find('telemetry_rejected').at(-1)).toMatchObject({ outcome: 'unauthorized', gateway_id: 'gw1', batch_id: batch.batchId });
  });

  it('401 for a timestamp 10 minutes old (a replayed request) or 10 minutes ahead', async () => {
    const key = newAccessKeyId();
    const batch = h.batch('gw1', [sightingOf(key)]);
    const now = Math.floor(Date.now() / 1000);
    expectRefused(await h.signedPost(batch, { t: now - 600 }), 401, /stale/);
    expectRefused(await h.signedPost(batch, { t: now + 600 }), 401, /stale/);
    expect(await sightings(key)).toHaveLength(0);
    // Within the skew window the same batch is fine.
    expect((await h.signedPost(batch, { t: now - 60 })).status).toBe(200);
  });

  it('401 for an unknown gateway, a missing gateway header and a missing signature', async () => {
    const key = newAccessKeyId();
    const batch = h.batch('gw1', [sightingOf(key)]);
    expectRefused(
      await h.signedPost({ ...batch, gatewayId: 'gw-rogue' }, { secret: h.secrets.get('gw1')! }),
      401,
      /unknown gateway "gw-rogue"/,
    );
    const body = gzipSync(JSON.stringify(batch));
    const noGw = await rawPost('/v1/telemetry', body, {
      'content-encoding': 'gzip',
      'x-egress-witness-signature': 't=1,v1=' + '0'.repeat(64),
    });
    expectRefused(noGw, 401, /missing x-egress-witness-gateway/);
    const noSig = await rawPost('/v1/telemetry', body, { 'content-encoding': 'gzip', 'x-egress-witness-gateway': 'gw1' });
    expectRefused(noSig, 401, /signature missing/);
    expect(await sightings(key)).toHaveLength(0);
  });

  it('413 for a body over ingest.max_body_bytes, declared or streamed', async () => {
    const before = await h.metric('egress_witness_detector_ingested_batches_total', { outcome: 'too_large' });
    const big = randomBytes(MAX_BODY + 1024);
    const declared = await h.signedPost({ raw: big });
    expect(declared.status, declared.text).toBe(413);
    expect(declared.json.error).toMatch(/ingest\.max_body_bytes/);
    const streamed = await chunkedPost('/v1/telemetry', [randomBytes(40 * 1024), randomBytes(40 * 1024)]);
    expect(streamed.status).toBe(413);
    expect(await h.metric('egress_witness_detector_ingested_batches_total', { outcome: 'too_large' })).toBe(before + 2);
  });

  it('413 for a gzip bomb: a small signed body that decompresses past the limit', async () => {
    const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(MAX_BODY);
    const a = await h.signedPost({ raw: bomb });
    expectRefused(a, 413, /decompressed body exceeds/);
  });

  it('413 for a gzip body that inflates past ingest.max_body_bytes, however small it is sent', async () => {
    // Parsed JSON costs many times its text on the heap: a signed body may not inflate past what a plain one may be.
    const batch = h.batch('gw1', [sightingOf(newAccessKeyId())]);
    const padded = Buffer.from(JSON.stringify({ ...batch, pad: Array.from({ length: 40_000 }, () => ({})) }));
    expect(padded.length).toBeGreaterThan(MAX_BODY);
    const body = gzipSync(padded);
    expect(body.length).toBeLessThan(MAX_BODY / 8);
    expectRefused(await h.signedPost({ raw: body }), 413, /decompressed body exceeds/);
    // The same batch inflating to less than the budget is taken.
    const fits = await h.signedPost({ raw: gzipSync(JSON.stringify(batch)) });
    expect(fits.status).toBe(200);
  });

  it('400 for undecodable bodies: bad gzip, unknown encoding, invalid JSON', async () => {
    expectRefused(await h.signedPost({ raw: Buffer.from('definitely not gzip') }), 400, /not valid gzip/);
    expectRefused(await h.signedPost({ raw: Buffer.from('{}') }, { contentEncoding: 'br' }), 400, /unsupported content-encoding "br"/);
    expectRefused(await h.signedPost({ raw: gzipSync('{"schemaVersion": 1, "records": [') }), 400, /not valid JSON/);
  });

  it('400 with the offending path for a batch that fails the schema', async () => {
    const key = newAccessKeyId();
    const bad = h.batch('gw1', [sightingOf(key), { ...sightingOf(key), count: 0 }]);
    expectRefused(await h.signedPost(bad), 400, /^records\[1\]\.count: /);
    const badKey = h.batch('gw1', [{ ...sightingOf(key), accessKeyId: 'asia-lower-case' }]);
    expectRefused(await h.signedPost(badKey), 400, /^records\[0\]\.accessKeyId: not an access key id/);
    expectRefused(await h.signedPost(h.batch('gw1', [], { schemaVersion: 99 })), 400, /schemaVersion 99 is not supported/);
    expect(await sightings(key)).toHaveLength(0);
  });

  it('400 when the batch names another gateway than the one that signed it, or another batch id than its header', async () => {
    const key = newAccessKeyId();
    const forGw4 = h.batch('gw4', [sightingOf(key)]);
    expectRefused(await h.signedPost(forGw4, { gatewayId: 'gw1' }), 400, /batch gatewayId "gw4" does not match the signing gateway "gw1"/);
    const b = h.batch('gw1', [sightingOf(key)]);
    expectRefused(await h.signedPost(b, { batchHeader: 'another-batch-id' }), 400, /does not match batchId/);
    expect(await sightings(key)).toHaveLength(0);
  });

  it('only POST on known paths', async () => {
    const get = await rawRequest('GET', '/v1/telemetry');
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect((await rawRequest('POST', '/v1/nothing')).status).toBe(404);
  });
});

describe('declared CIDRs against a gateway configured with several CIDRs', () => {
  let split: DetectorHarness;
  beforeAll(async () => {
    split = await startDetector({ gateways: [{ id: 'gw1', egress_cidrs: ['203.0.113.0/29', '203.0.113.8/29'] }] });
  });
  afterAll(async () => {
    await split?.cleanup();
  });

  it('a declared CIDR inside one configured CIDR is no widening', async () => {
    const a = await split.signedPost(split.batch('gw1', [heartbeat('gw1', Date.now())], { egressCidrs: ['203.0.113.8/30'] }));
    expect(a.status).toBe(200);
    expect(split.logs.find('declared_cidrs_ignored')).toEqual([]);
  });

  // Regression: coveredBy() in detector/ingest/telemetry-ingest.ts tests each configured
  // entry alone, so 203.0.113.0/28 — exactly the two configured /29s — is logged and counted as widened.
  it('a declared CIDR covered by adjacent configured CIDRs together is no widening', async () => {
    const a = await split.signedPost(split.batch('gw1', [heartbeat('gw1', Date.now())], { egressCidrs: ['203.0.113.0/28'] }));
    expect(a.status).toBe(200);
    expect(split.logs.find('declared_cidrs_ignored')).toEqual([]);
    expect(await split.metric('egress_witness_detector_declared_cidrs_ignored_total', { gateway: 'gw1' })).toBe(0);
  });
});

describe('overload', () => {
  let small: DetectorHarness;
  beforeAll(async () => {
    small = await startDetector({ config: { ingest: { max_concurrent: 1 } } });
  });
  afterAll(async () => {
    await small?.cleanup();
  });

  it('answers 503 with Retry-After while max_concurrent requests are in progress, and recovers', async () => {
    // One request whose body never finishes holds the only slot.
    const held = net.connect(small.ports.ingest, '127.0.0.1');
    await new Promise<void>((resolve) => held.once('connect', resolve));
    held.on('error', () => undefined);
    held.write(
      `POST /v1/telemetry HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 5000\r\nX-Egress-Witness-Gateway: gw1\r\nX-Egress-Witness-Signature: ${freshSignature()}\r\n\r\n${'x'.repeat(100)}`,
    );
    const key = newAccessKeyId();
    const batch = small.batch('gw1', [observation({ accessKeyId: key, at: Date.now() - 2_000 })]);
    const busy = await waitFor(
      async () => {
        const a = await small.signedPost(batch);
        return a.status === 503 ? a : null;
      },
      'a 503 while the slot is held',
      5_000,
    );
    expect(busy.headers['retry-after']).toBe('1');
    expect(busy.json.error).toMatch(/overloaded/);
    expect(await small.metric('egress_witness_detector_ingested_batches_total', { outcome: 'overloaded' })).toBeGreaterThanOrEqual(1);
    expect(await small.app.db.keySightings(key, 0, Date.now() + 1e9)).toHaveLength(0);

    held.destroy();
    const ok = await waitFor(
      async () => {
        const a = await small.signedPost(batch);
        return a.status === 200 ? a : null;
      },
      'a 200 once the slot is free',
      5_000,
    );
    expect(ok.json).toMatchObject({ accepted: true, duplicate: false });
    await sleep(10);
  });
});

/** A signature header of the right shape with a fresh timestamp (made with some key: it passes the checks that need no body). */
function freshSignature(): string {
  return signatureHeader(randomBytes(32), Math.floor(Date.now() / 1000), Buffer.from('body'));
}

function rawRequest(method: string, path: string): Promise<HttpAnswer> {
  return rawPost(path, null, {}, method);
}

function rawPost(path: string, body: Buffer | null, headers: Record<string, string>, method = 'POST'): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: h.ports.ingest,
        method,
        path,
        agent: false,
        headers: body ? { ...headers, 'content-length': String(body.length) } : headers,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text) }));
      },
    );
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** A chunked POST (no Content-Length), so only the streaming limit can stop it. */
function chunkedPost(path: string, chunks: Buffer[]): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: h.ports.ingest,
        method: 'POST',
        path,
        agent: false,
        // A signature header of the right shape: the size limit is checked once the cheap checks pass.
        headers: { 'content-encoding': 'gzip', 'x-egress-witness-gateway': 'gw1', 'x-egress-witness-signature': freshSignature() },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
    for (const c of chunks) req.write(c);
    req.end();
  });
}

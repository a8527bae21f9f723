/**
 * What the detector scenarios feed a detector: CloudTrail log files as the
 * trail writes them (gzipped `{"Records": […]}`) and the gateway's telemetry
 * as an agent ships it (gzipped, HMAC-signed batches posted to
 * /v1/telemetry).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { BATCH_HEADER, GATEWAY_HEADER, SIGNATURE_HEADER, signatureHeader } from '../../protocol/signature.js';
import { benchCloudTrailRecord } from './cloudtrail-record.js';

/** The gateway the scenarios' detectors are configured with. */
export const BENCH_GATEWAY = 'gw-bench';
/** Its egress addresses, and an address outside them. */
export const GATEWAY_SOURCE_IP = '203.0.113.5';
export const OUTSIDE_SOURCE_IP = '198.51.100.7';

/**
 * A log file of `records` events, the newest at `at` and one a second before it over 10 minutes,
 * signed with `keyOf(i)`; 90 % from the gateway's egress address, 10 % from outside it.
 */
export function trailLogFile(records: number, at: number, keyOf: (i: number) => string): Buffer {
  const out = [];
  for (let i = 0; i < records; i++)
    out.push(
      benchCloudTrailRecord({
        eventId: randomUUID(),
        requestId: randomUUID(),
        eventTimeMs: at - (i % 600) * 1000,
        accessKeyId: keyOf(i),
        sourceIp: i % 10 === 0 ? OUTSIDE_SOURCE_IP : GATEWAY_SOURCE_IP,
        sessionCreatedMs: at - 3_600_000,
      }),
    );
  return gzipSync(JSON.stringify({ Records: out }), { level: 6 });
}

/** One telemetry batch of the bench gateway, gzipped as the agent sends it. */
export function telemetryBatch(sequence: number, records: readonly unknown[]): { batchId: string; body: Buffer } {
  const now = Date.now();
  const batchId = randomBytes(16).toString('base64url');
  const batch = {
    schemaVersion: 1,
    batchId,
    gatewayId: BENCH_GATEWAY,
    agent: { version: '0.1.0', startedAt: new Date(now - 3_600_000).toISOString() },
    sequence,
    egressCidrs: ['203.0.113.0/28'],
    sentAt: new Date(now).toISOString(),
    records,
  };
  return { batchId, body: gzipSync(JSON.stringify(batch), { level: 1 }) };
}

/** Posts one batch, signed with `secret`, to a detector's ingest port; resolves to the HTTP status. */
export function postTelemetryBatch(
  port: number,
  secret: string,
  batch: { batchId: string; body: Buffer },
  agent?: http.Agent,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/telemetry',
        ...(agent ? { agent } : {}),
        headers: {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'content-length': String(batch.body.length),
          [GATEWAY_HEADER]: BENCH_GATEWAY,
          [SIGNATURE_HEADER]: signatureHeader(Buffer.from(secret, 'utf8'), Math.floor(Date.now() / 1000), batch.body),
          [BATCH_HEADER]: batch.batchId,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(batch.body);
  });
}

/**
 * The detector benches' corpus for replay: observations (one gateway, STS, six hours), a heartbeat
 * every 1,000 of them, and gzipped CloudTrail log files whose records use the same keys, 90 % from
 * the gateway's address and 10 % from outside.
 */
import { createWriteStream } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { benchCloudTrailRecord } from './cloudtrail-record.js';

export const CORPUS_T0 = Date.parse('2026-11-25T00:00:00Z');
export const CORPUS_SPAN_MS = 6 * 3_600_000;

/** A temporary access key id, distinct per `i` and per `seed` (each scenario its own keys). */
export function corpusKey(i: number, seed: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let s = '';
  let n = i + seed;
  for (let j = 0; j < 16; j++) {
    s += alphabet[n % 32];
    n = Math.floor(n / 32) + j * 7;
  }
  return `ASIA${s}`;
}

/** A bench observation record (an inspected STS call, 3 uses over 2 s from `t`) by `clientIp` with `accessKeyId`. */
export function benchObservation(t: number, accessKeyId: string, clientIp: string): Record<string, unknown> {
  return {
    type: 'observation',
    schema: 1,
    gatewayId: 'gw-bench',
    firstSeen: new Date(t).toISOString(),
    lastSeen: new Date(t + 2_000).toISOString(),
    count: 3,
    clientIp,
    network: 'vpc-prod',
    mode: 'inspect',
    host: 'sts.us-east-1.amazonaws.com',
    port: 443,
    aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
    accessKeyId,
    keyKind: 'temporary',
    action: 'GetCallerIdentity',
    bytesUp: 1_100,
    bytesDown: 1_200,
    outcome: 'ok',
  };
}

/** Observation `i` of `n` (spread evenly over the span), made by `clientIp` with `accessKeyId`; with a heartbeat every 1,000. */
export function observationLine(i: number, n: number, accessKeyId: string, clientIp: string): string {
  const t = CORPUS_T0 + Math.floor((i * CORPUS_SPAN_MS) / n);
  let line = `${JSON.stringify(benchObservation(t, accessKeyId, clientIp))}\n`;
  if (i % 1_000 === 0)
    line += `${JSON.stringify({ type: 'heartbeat', schema: 1, gatewayId: 'gw-bench', time: new Date(t).toISOString(), agentVersion: 'bench', startedAt: new Date(CORPUS_T0).toISOString(), uptimeSeconds: (t - CORPUS_T0) / 1000, counts: {}, spool: { batches: 0, bytes: 0 } })}\n`;
  return line;
}

/** `n` lines to a file, written in 1 MiB pieces. */
export async function writeLines(path: string, n: number, line: (i: number) => string): Promise<void> {
  const out = createWriteStream(path);
  let buf = '';
  for (let i = 0; i < n; i++) {
    buf += line(i);
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
      buf = '';
    }
  }
  await new Promise<void>((resolve) => out.end(buf, () => resolve()));
}

/** A gzipped log file of `m` records over the span; record `i` uses key number (7i mod keys), named by `identity`. */
export function cloudTrailLog(m: number, keys: number, identity: (k: number) => { accessKeyId: string; instanceId?: string }): Buffer {
  const records = [];
  for (let i = 0; i < m; i++) {
    const t = CORPUS_T0 + Math.floor((i * CORPUS_SPAN_MS) / m);
    records.push(
      benchCloudTrailRecord({
        eventId: `bench-${i}`,
        requestId: `r-${i}`,
        eventTimeMs: t,
        ...identity((i * 7) % keys),
        sourceIp: i % 10 === 0 ? '198.51.100.7' : '203.0.113.5',
        sessionCreatedMs: t,
      }),
    );
  }
  return gzipSync(JSON.stringify({ Records: records }));
}

/**
 * The detector's correlation rate: `egress-witness replay` (a child process,
 * as an operator runs it) loads N agent observations (1 M in a full run)
 * into memory and decides M CloudTrail records against them. Reported:
 * records correlated per second (normalize + decide + print, loading
 * excluded), and the load rate of the observations.
 *
 * Data: 20,000 instance-role keys seen by one gateway from 250 routed
 * clients over six hours; 90 % of the CloudTrail events come from the
 * gateway's egress address (attested), 10 % from outside (findings).
 */
import { createWriteStream, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { benchCloudTrailRecord } from '../lib/cloudtrail-record.js';
import { runReplay } from '../lib/replay-run.js';
import type { Scenario } from '../lib/scenario.js';

const T0 = Date.parse('2026-11-25T00:00:00Z');
const SPAN_MS = 6 * 3_600_000;

function key(i: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let s = '';
  let n = i + 1_000_003;
  for (let j = 0; j < 16; j++) {
    s += alphabet[n % 32];
    n = Math.floor(n / 32) + j * 7;
  }
  return `ASIA${s}`;
}

async function writeObservations(path: string, n: number, keys: number): Promise<void> {
  const out = createWriteStream(path);
  let buf = '';
  for (let i = 0; i < n; i++) {
    const t = T0 + Math.floor((i * SPAN_MS) / n);
    buf += `${JSON.stringify({
      type: 'observation',
      schema: 1,
      gatewayId: 'gw-bench',
      firstSeen: new Date(t).toISOString(),
      lastSeen: new Date(t + 2_000).toISOString(),
      count: 3,
      clientIp: `10.20.${i % 250}.4`,
      network: 'vpc-prod',
      mode: 'inspect',
      host: 'sts.us-east-1.amazonaws.com',
      port: 443,
      aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
      accessKeyId: key(i % keys),
      keyKind: 'temporary',
      action: 'GetCallerIdentity',
      bytesUp: 1_100,
      bytesDown: 1_200,
      outcome: 'ok',
    })}\n`;
    if (i % 1_000 === 0) {
      buf += `${JSON.stringify({ type: 'heartbeat', schema: 1, gatewayId: 'gw-bench', time: new Date(t).toISOString(), agentVersion: 'bench', startedAt: new Date(T0).toISOString(), uptimeSeconds: (t - T0) / 1000, counts: {}, spool: { batches: 0, bytes: 0 } })}\n`;
    }
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
      buf = '';
    }
  }
  await new Promise<void>((resolve) => out.end(buf, () => resolve()));
}

function cloudTrail(m: number, keys: number): Buffer {
  const records = [];
  for (let i = 0; i < m; i++) {
    const t = T0 + Math.floor((i * SPAN_MS) / m);
    const k = key((i * 7) % keys);
    records.push(
      benchCloudTrailRecord({
        eventId: `bench-${i}`,
        requestId: `r-${i}`,
        eventTimeMs: t,
        accessKeyId: k,
        sourceIp: i % 10 === 0 ? '198.51.100.7' : '203.0.113.5',
        sessionCreatedMs: t,
      }),
    );
  }
  return gzipSync(JSON.stringify({ Records: records }));
}

const scenario: Scenario = {
  name: 'detector-correlation',
  order: 90,
  title: 'detector: CloudTrail records correlated per second by replay against 1 M observations',
  async run(ctx) {
    const observations = ctx.args.quick ? 50_000 : 1_000_000;
    const events = ctx.args.quick ? 10_000 : 200_000;
    const keys = 20_000;
    const dir = ctx.tmp;
    ctx.log(`detector-correlation: writing ${observations} observations and ${events} CloudTrail records`);
    await writeObservations(join(dir, 'replay-observations.ndjson'), observations, keys);
    writeFileSync(join(dir, 'replay-cloudtrail.json.gz'), cloudTrail(events, keys));
    const { stderr, wallSeconds: wall } = await runReplay(dir, 'replay', [
      '--cloudtrail',
      join(dir, 'replay-cloudtrail.json.gz'),
      '--telemetry',
      join(dir, 'replay-observations.ndjson'),
    ]);
    const m =
      /(\d+) telemetry records \(\d+ invalid\) loaded in ([\d.]+) s, (\d+) CloudTrail records .* correlated in ([\d.]+) s \((\d+) records\/s\)/.exec(
        stderr,
      );
    if (!m) throw new Error(`replay summary not understood: ${stderr.slice(-300)}`);
    const base = { scenario: 'detector-correlation', peer: null, subject: 'detector replay' };
    ctx.record({
      ...base,
      metric: 'CloudTrail records correlated/s',
      unit: 'records/s',
      better: 'higher',
      value: Number(m[5]),
      note: `${m[3]} records against ${m[1]} observations (normalize + decide + print; goal ≥ 50,000/s)`,
    });
    ctx.record({
      ...base,
      metric: 'observations loaded/s',
      unit: 'records/s',
      better: 'higher',
      value: Number(m[1]) / Number(m[2]),
      note: `NDJSON read and validated into the in-memory index; whole replay ${wall.toFixed(1)} s`,
    });
  },
};

export default scenario;

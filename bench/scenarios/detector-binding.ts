/**
 * The correlation rate with instance binding: `egress-witness replay
 * --inventory` (a child process) loads N observations (1 M in a full run)
 * and an inventory of 100,000 instances (describe-instances JSON), then
 * decides M CloudTrail records, each key's client checked against its
 * instance's address at the event's time. Reported: records correlated per
 * second (normalize + decide + print, loading excluded; goal ≥ 50,000/s).
 *
 * Data: 20,000 instance-role keys, key k belonging to instance k and seen by
 * one gateway from that instance's address; every 50th key only from another
 * instance's (wrong-client). 90 % of the events come from the gateway's
 * address, 10 % from outside.
 */
import { createWriteStream, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { benchCloudTrailRecord } from '../lib/cloudtrail-record.js';
import { runReplay } from '../lib/replay-run.js';
import type { Scenario } from '../lib/scenario.js';

const T0 = Date.parse('2026-11-25T00:00:00Z');
const SPAN_MS = 6 * 3_600_000;
const INSTANCES = 100_000;
const KEYS = 20_000;

const instanceId = (j: number) => `i-0${j.toString(16).padStart(16, '0')}`;
const addressOf = (j: number) => `10.${64 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`;
/** The client that presents key k: its own instance, or for every 50th key another one. */
const clientOf = (k: number) => addressOf(k % 50 === 1 ? (k + KEYS) % INSTANCES : k);

function key(i: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let s = '';
  let n = i + 2_000_003;
  for (let j = 0; j < 16; j++) {
    s += alphabet[n % 32];
    n = Math.floor(n / 32) + j * 7;
  }
  return `ASIA${s}`;
}

async function writeLines(path: string, n: number, line: (i: number) => string): Promise<void> {
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

function observation(i: number, n: number): string {
  const t = T0 + Math.floor((i * SPAN_MS) / n);
  const k = i % KEYS;
  let line = `${JSON.stringify({
    type: 'observation',
    schema: 1,
    gatewayId: 'gw-bench',
    firstSeen: new Date(t).toISOString(),
    lastSeen: new Date(t + 2_000).toISOString(),
    count: 3,
    clientIp: clientOf(k),
    network: 'vpc-prod',
    mode: 'inspect',
    host: 'sts.us-east-1.amazonaws.com',
    port: 443,
    aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
    accessKeyId: key(k),
    keyKind: 'temporary',
    action: 'GetCallerIdentity',
    bytesUp: 1_100,
    bytesDown: 1_200,
    outcome: 'ok',
  })}\n`;
  if (i % 1_000 === 0)
    line += `${JSON.stringify({ type: 'heartbeat', schema: 1, gatewayId: 'gw-bench', time: new Date(t).toISOString(), agentVersion: 'bench', startedAt: new Date(T0).toISOString(), uptimeSeconds: (t - T0) / 1000, counts: {}, spool: { batches: 0, bytes: 0 } })}\n`;
  return line;
}

/** describe-instances output: one reservation per 100 instances, each launched a day before the data. */
function inventory(): string {
  const reservations = [];
  for (let r = 0; r < INSTANCES / 100; r++) {
    const instances = [];
    for (let j = r * 100; j < (r + 1) * 100; j++) {
      const ip = addressOf(j);
      instances.push({
        InstanceId: instanceId(j),
        InstanceType: 't3.micro',
        LaunchTime: new Date(T0 - 86_400_000).toISOString(),
        PrivateIpAddress: ip,
        State: { Code: 16, Name: 'running' },
        NetworkInterfaces: [{ PrivateIpAddress: ip, PrivateIpAddresses: [{ Primary: true, PrivateIpAddress: ip }], Ipv6Addresses: [] }],
      });
    }
    reservations.push({ ReservationId: `r-0${r.toString(16).padStart(16, '0')}`, OwnerId: '123456789012', Instances: instances });
  }
  return JSON.stringify({ Reservations: reservations });
}

function cloudTrail(m: number): Buffer {
  const records = [];
  for (let i = 0; i < m; i++) {
    const t = T0 + Math.floor((i * SPAN_MS) / m);
    const k = (i * 7) % KEYS;
    records.push(
      benchCloudTrailRecord({
        eventId: `bench-${i}`,
        requestId: `r-${i}`,
        eventTimeMs: t,
        accessKeyId: key(k),
        sourceIp: i % 10 === 0 ? '198.51.100.7' : '203.0.113.5',
        sessionCreatedMs: t,
        instanceId: instanceId(k),
      }),
    );
  }
  return gzipSync(JSON.stringify({ Records: records }));
}

const scenario: Scenario = {
  name: 'detector-binding',
  order: 91,
  title: 'detector: CloudTrail records correlated per second by replay against 1 M observations and a 100,000-instance inventory',
  async run(ctx) {
    const observations = ctx.args.quick ? 50_000 : 1_000_000;
    const events = ctx.args.quick ? 10_000 : 200_000;
    const dir = ctx.tmp;
    ctx.log(`detector-binding: writing ${observations} observations, ${INSTANCES} instances and ${events} CloudTrail records`);
    await writeLines(join(dir, 'binding-observations.ndjson'), observations, (i) => observation(i, observations));
    writeFileSync(join(dir, 'binding-instances.json'), inventory());
    writeFileSync(join(dir, 'binding-cloudtrail.json.gz'), cloudTrail(events));
    const { stderr, wallSeconds: wall } = await runReplay(dir, 'binding', [
      '--cloudtrail',
      join(dir, 'binding-cloudtrail.json.gz'),
      '--telemetry',
      join(dir, 'binding-observations.ndjson'),
      '--inventory',
      join(dir, 'binding-instances.json'),
    ]);
    const m =
      /(\d+) telemetry records \(\d+ invalid\) loaded in [\d.]+ s, (\d+) instances in the inventory, (\d+) CloudTrail records .* correlated in [\d.]+ s \((\d+) records\/s\).*decisions (\{[^}]*\})/.exec(
        stderr,
      );
    if (!m) throw new Error(`replay summary not understood: ${stderr.slice(-300)}`);
    const decisions = JSON.parse(m[5] ?? '{}') as Record<string, number>;
    const wrong = decisions['finding/wrong-client'] ?? 0;
    const own = decisions['suppressed/attested'] ?? 0;
    if (wrong === 0 || own === 0) throw new Error(`the data did not reach instance binding: ${m[5]}`);
    ctx.record({
      scenario: 'detector-binding',
      peer: null,
      subject: 'detector replay --inventory',
      metric: 'CloudTrail records correlated/s',
      unit: 'records/s',
      better: 'higher',
      value: Number(m[4]),
      note: `${m[3]} records against ${m[1]} observations and ${m[2]} instances (${own} attested, ${wrong} wrong-client; goal ≥ 50,000/s); whole replay ${wall.toFixed(1)} s`,
    });
  },
};

export default scenario;

/**
 * Forensics give the daemon's answer: for random corpora (CloudTrail events,
 * observations, heartbeats, GuardDuty findings, an instance inventory file
 * read by the daemon's Inventory and by `replay --inventory`) the decisions the daemon's
 * pipeline stores in a real SQLite file — telemetry ingested as batches,
 * recent findings held for their grace period and decided when it ends — equal
 * what `replay` prints from the same inputs written as files, record for record.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/log/logger.js';
import { validateBatch, validateRecord, type Heartbeat, type Observation } from '../../../protocol/telemetry.js';
import type { DetectorConfig } from '../../../detector/config/schema.js';
import { buildCorrelationContext } from '../../../detector/correlation-context.js';
import { DecisionPipeline } from '../../../detector/engine/pipeline.js';
import { createDetectorMetrics } from '../../../detector/metrics/metrics.js';
import { replay } from '../../../detector/replay/replay.js';
import { Inventory } from '../../../detector/inventory/inventory.js';
import { decisionRecord } from '../../../detector/decisions/record.js';
import {
  AWS_RANGES_FIXTURE,
  DEFAULT_GATEWAYS,
  EXTERNAL_IP,
  GW1_IP,
  GW2_IP,
  GW3_IP,
  GW4_IP,
  INSIDE_AWS_IP,
  cloudTrailRecord,
  openSuiteStore,
  validDetectorConfig,
  type JsonDoc,
} from '../../helpers/detector.js';

const T0 = Date.parse('2024-05-01T12:00:00Z');
const SEC = 1000;
const MIN = 60 * SEC;
const iso = (ms: number) => new Date(ms).toISOString();
const KEYS = ['ASIAPROPKEYAAAAAAAA1', 'ASIAPROPKEYAAAAAAAA2', 'ASIAPROPKEYAAAAAAAA3'];
const SOURCES = [GW1_IP, GW2_IP, GW3_IP, GW4_IP, '203.0.113.11', EXTERNAL_IP, INSIDE_AWS_IP, 'AWS Internal', 'ec2.amazonaws.com'];
const FIXTURES = [
  'instance-role-imdsv2-sts-getcalleridentity',
  'instance-role-imdsv1-ec2-describeinstances',
  'instance-role-session-name-only',
  'vpc-endpoint-private-source',
  'iam-user-akia',
  'instance-identity-aws-ec2-instance',
];
const GATEWAY_IDS = DEFAULT_GATEWAYS.map((g) => g.id);
/** The fixtures' instances (role session names) and one that holds no key here. */
const INSTANCES = ['i-0a1b2c3d4e5f67890', 'i-0123456789abcdef0', 'i-0fedcba987654321f', 'i-0def4567890abcdef'];
const CLIENTS = ['10.20.3.4', '10.20.7.7', '10.20.9.9'];
/** Clients of this network are NAT-ed before the gateway (inventory.translated_networks). */
const TRANSLATED = 'branch-nat';
/** Offsets from T0 in seconds: everything happens within 12 minutes (the window is 5). */
const offset = fc.integer({ min: 0, max: 12 * 60 });

const observationArb = fc.record({
  gatewayId: fc.constantFrom(...GATEWAY_IDS),
  key: fc.option(fc.constantFrom(...KEYS), { freq: 4 }),
  at: offset,
  span: fc.integer({ min: 0, max: 90 }),
  routed: fc.boolean(),
  client: fc.constantFrom(...CLIENTS),
  translated: fc.boolean(),
  tunnel: fc.boolean(),
  service: fc.constantFrom('sts', 'ec2'),
  outcome: fc.constantFrom('ok', 'ok', 'upstream_error', 'denied'),
});
const heartbeatArb = fc.record({ gatewayId: fc.constantFrom(...GATEWAY_IDS), at: offset });
const eventArb = fc.record({
  id: fc.integer({ min: 0, max: 40 }),
  fixture: fc.constantFrom(...FIXTURES),
  key: fc.constantFrom(...KEYS),
  source: fc.constantFrom(...SOURCES),
  at: offset,
  /** A routed client that presented the event's key at an inspecting gateway around its time. */
  presented: fc.option(
    fc.record({
      client: fc.constantFrom(...CLIENTS, '10.20.3.4'),
      translated: fc.boolean(),
      lag: fc.integer({ min: -60, max: 60 }),
    }),
    { freq: 2 },
  ),
});
const findingArb = fc.record({
  id: fc.integer({ min: 0, max: 6 }),
  version: fc.integer({ min: 0, max: 1 }),
  key: fc.constantFrom(...KEYS),
  remoteIp: fc.constantFrom(GW1_IP, GW2_IP, GW3_IP, EXTERNAL_IP, '203.0.113.11'),
  first: offset,
  length: fc.integer({ min: 0, max: 20 * 60 }),
});
/** An inventory entry: an address of an instance, for all time or for a dated span around the events. */
const holdingArb = fc.record({
  instance: fc.constantFrom(...INSTANCES, 'i-0a1b2c3d4e5f67890', 'i-0a1b2c3d4e5f67890'),
  address: fc.constantFrom(...CLIENTS, '10.20.3.4'),
  dated: fc.option(fc.record({ from: fc.integer({ min: -30 * 60, max: 12 * 60 }), length: fc.integer({ min: 0, max: 20 * 60 }) }), {
    freq: 3,
  }),
});
const corpusArb = fc.record({
  inventory: fc.array(holdingArb, { minLength: 1, maxLength: 6 }),
  observations: fc.array(observationArb, { maxLength: 30 }),
  heartbeats: fc.array(heartbeatArb, { maxLength: 12 }),
  events: fc.array(eventArb, { minLength: 1, maxLength: 25 }),
  findings: fc.array(findingArb, { maxLength: 6 }),
});
type Corpus = ArbValue<typeof corpusArb>;
type ArbValue<A> = A extends fc.Arbitrary<infer V> ? V : never;

function observation(o: ArbValue<typeof observationArb>): Observation {
  const tunnel = o.tunnel;
  const region = o.service === 'sts' ? 'us-east-1' : 'eu-west-1';
  return {
    type: 'observation',
    schema: 1,
    gatewayId: o.gatewayId,
    firstSeen: iso(T0 + o.at * SEC),
    lastSeen: iso(T0 + (o.at + o.span) * SEC),
    count: 3,
    clientIp: o.routed ? o.client : '192.168.77.7',
    network: o.routed ? (o.translated ? TRANSLATED : 'vpc-prod') : null,
    mode: tunnel ? 'tunnel' : 'inspect',
    host: `${o.service}.${region}.amazonaws.com`,
    port: 443,
    resolvedIp: '52.94.133.131',
    aws: { service: o.service, region, partition: 'aws' },
    accessKeyId: tunnel ? null : o.key,
    keyKind: !tunnel && o.key ? 'temporary' : null,
    accountId: !tunnel && o.key ? '111122223333' : null,
    sessionToken: !tunnel && o.key ? true : null,
    signatureVersion: !tunnel && o.key ? 'v4' : null,
    auth: !tunnel && o.key ? 'header' : null,
    action: tunnel ? null : 'GetCallerIdentity',
    bytesUp: 100,
    bytesDown: 200,
    durationMs: 40,
    outcome: o.outcome,
  };
}

const GATEWAY_OF: Record<string, string> = { [GW1_IP]: 'gw1', [GW3_IP]: 'gw3', [GW4_IP]: 'gw4' };

/** The corpus's observations, with the clients that presented events' keys (at the gateway of the source, if any). */
function observations(corpus: Corpus): Observation[] {
  const presented = corpus.events.flatMap((e) =>
    e.presented
      ? [
          observation({
            gatewayId: GATEWAY_OF[e.source] ?? 'gw1',
            key: e.key,
            at: Math.max(0, e.at + e.presented.lag),
            span: 5,
            routed: true,
            client: e.presented.client,
            translated: e.presented.translated,
            tunnel: false,
            service: 'sts',
            outcome: 'ok',
          }),
        ]
      : [],
  );
  return [...corpus.observations.map(observation), ...presented];
}

function heartbeat(h: { gatewayId: string; at: number }): Heartbeat {
  return {
    type: 'heartbeat',
    schema: 1,
    gatewayId: h.gatewayId,
    time: iso(T0 + h.at * SEC),
    agentVersion: '0.1.0',
    startedAt: iso(T0 - 3_600_000),
    uptimeSeconds: 3600 + h.at,
    counts: { observed: 1, aggregated: 1, dropped: 0, notAws: 0 },
    spool: { batches: 0, bytes: 0 },
    inspect: h.gatewayId !== 'gw2',
  };
}

function finding(f: ArbValue<typeof findingArb>): JsonDoc {
  const id = `f${f.id}`.padEnd(32, '0');
  return {
    schemaVersion: '2.0',
    accountId: '111122223333',
    region: 'us-east-1',
    partition: 'aws',
    id,
    arn: `arn:aws:guardduty:us-east-1:111122223333:detector/12abc34d567e8fa901bc2d34e56789f0/finding/${id}`,
    type: 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
    resource: {
      resourceType: 'AccessKey',
      accessKeyDetails: {
        accessKeyId: f.key,
        principalId: 'AROAEXAMPLEROLEID7ABC:i-0a1b2c3d4e5f67890',
        userName: 'app-server-role',
        userType: 'AssumedRole',
      },
      instanceDetails: { instanceId: 'i-0a1b2c3d4e5f67890' },
    },
    service: {
      serviceName: 'guardduty',
      detectorId: '12abc34d567e8fa901bc2d34e56789f0',
      action: {
        actionType: 'AWS_API_CALL',
        awsApiCallAction: { api: 'GetCallerIdentity', serviceName: 'sts.amazonaws.com', remoteIpDetails: { ipAddressV4: f.remoteIp } },
      },
      eventFirstSeen: iso(T0 + f.first * SEC),
      eventLastSeen: iso(T0 + (f.first + f.length) * SEC),
      archived: false,
      count: 3,
    },
    severity: 8,
    createdAt: iso(T0 + 50 * MIN),
    updatedAt: iso(T0 + (50 + f.version) * MIN),
  };
}

/** The inventory as an address list file: dated entries are closed spans, the others held throughout. */
function inventoryFile(corpus: Corpus): JsonDoc[] {
  return corpus.inventory.map((h) => ({
    instanceId: h.instance,
    privateIps: [h.address],
    ...(h.dated ? { firstSeen: iso(T0 + h.dated.from * SEC), lastSeen: iso(T0 + (h.dated.from + h.dated.length) * SEC) } : {}),
  }));
}

function cloudTrail(corpus: Corpus): JsonDoc[] {
  return corpus.events.map((e) =>
    cloudTrailRecord({ fixture: e.fixture, key: e.key, sourceIp: e.source, time: T0 + e.at * SEC, eventId: `evt-${e.id}` }),
  );
}

const logger = createLogger({ level: 'silent', name: 'daemon' });

/** What the daemon decides: the suite's store (SQLite, or PostgreSQL) through the pipeline, the clock moving past the grace period. */
async function daemonDecisions(config: DetectorConfig, corpus: Corpus, dir: string) {
  const { store, close: closeStore } = await openSuiteStore(dir);
  const { registry, policy } = await buildCorrelationContext(config);
  const lastEvent = Math.max(...corpus.events.map((e) => T0 + e.at * SEC));
  let clock = lastEvent + SEC;
  const metrics = createDetectorMetrics(new Registry(), { version: '0.0.0', nodeVersion: process.version });
  // The daemon's inventory, as it reads its files at start.
  const inventory = new Inventory(
    { files: [join(dir, 'inventory.json')], ec2: null, translated_networks: config.inventory.translated_networks },
    { metrics, logger, now: () => clock, retentionMs: () => config.store.retention },
  );
  await inventory.load();
  const pipeline = new DecisionPipeline({
    store,
    registry: () => registry,
    policy: () => policy,
    inventory: () => inventory.view(),
    graceMs: () => config.correlation.grace,
    sink: { emit: () => Promise.resolve() },
    metrics,
    logger,
    now: () => clock,
    guardduty: { mode: () => 'report', target: () => ({ region: null, detectorId: null }), webhookKept: () => false, api: null },
  });
  try {
    const records = [...observations(corpus), ...corpus.heartbeats.map(heartbeat)];
    for (const [i, gatewayId] of GATEWAY_IDS.entries()) {
      const mine = records.filter((r) => r.gatewayId === gatewayId);
      if (mine.length === 0) continue;
      const batch = validateBatch({
        schemaVersion: 1,
        batchId: `batch-${gatewayId}-0001`,
        gatewayId,
        agent: { version: '0.1.0', startedAt: iso(T0 - 3_600_000) },
        sequence: i,
        egressCidrs: [],
        sentAt: iso(T0 + 41 * MIN),
        records: mine,
      });
      if (!batch.ok) throw new Error(batch.reason);
      await store.ingestBatch(gatewayId, batch.batch, clock);
    }
    /** Records the daemon counts as not made with instance credentials (decided, never stored). */
    const notInstance: string[] = [];
    // One record at a time, each its own evidence read (replay decides the whole file as one batch).
    for (const r of cloudTrail(corpus))
      if ((await pipeline.cloudtrail.processRecord(r, 'trail')) === 'not-instance-credential') notInstance.push(String(r.eventID));
    const pendingHeld = await store.pendingCount();
    clock = lastEvent + config.correlation.grace + MIN;
    await pipeline.cloudtrail.tick();
    expect(await store.pendingCount()).toBe(0);
    const guardduty: JsonDoc[] = [];
    for (const f of corpus.findings.map(finding)) {
      const r = await pipeline.guardduty.process(f);
      if (r.kind === 'decided') guardduty.push(JSON.parse(JSON.stringify(gdLine(r.decision))) as JsonDoc);
    }
    const cloudtrail = new Map<string, unknown>();
    for (const d of await store.listDecisions({ sinceMs: 0, disposition: null, limit: 100_000 }))
      if (d.kind === 'cloudtrail') cloudtrail.set(d.subjectId, undecided(JSON.parse(JSON.stringify(decisionRecord(d))) as JsonDoc));
    return { cloudtrail, notInstance, guardduty, pendingHeld };
  } finally {
    await pipeline.close();
    await closeStore();
  }
}

/** A decision record without its decidedAt: the one field the daemon and replay cannot share. */
function undecided(r: JsonDoc): JsonDoc {
  const { decidedAt, ...rest } = r;
  expect(typeof decidedAt).toBe('string');
  return rest;
}

function gdLine(d: { findingId: string; accessKeyId: unknown; remoteIp: unknown; decision: unknown; reason: unknown } & JsonDoc) {
  const { findingId, accessKeyId, remoteIp, decision, reason, gatewayId, spanStart, spanEnd, evidence } = d;
  return { findingId, accessKeyId, remoteIp, decision, reason, gatewayId, spanStart, spanEnd, evidence };
}

async function replayLines(config: DetectorConfig, corpus: Corpus, dir: string, guardduty: boolean): Promise<JsonDoc[]> {
  const lines: JsonDoc[] = [];
  await replay(
    config,
    {
      cloudtrail: [join(dir, 'trail.json')],
      telemetry: [join(dir, 'telemetry.ndjson')],
      guardduty: guardduty ? [join(dir, 'findings.json')] : [],
      inventory: [join(dir, 'inventory.json')],
      findings: false,
    },
    { line: (text) => lines.push(JSON.parse(text) as JsonDoc), progress: () => undefined },
  );
  return lines;
}

let tmp: string;
let config: DetectorConfig;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ew-replay-eq-'));
  await writeFile(join(tmp, 'ip-ranges.json'), JSON.stringify(AWS_RANGES_FIXTURE));
  config = validDetectorConfig({
    gateways: DEFAULT_GATEWAYS.map((g) => ({ ...g, secret_file: join(tmp, `${g.id}.key`) })),
    aws_ip_ranges: join(tmp, 'ip-ranges.json'),
    correlation: { window: '5m', heartbeat_stale: '2m', grace: '10m' },
    store: { path: join(tmp, 'unused.db') },
    inventory: { translated_networks: [TRANSLATED] },
  });
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('replay and the daemon decide alike', () => {
  it('for random corpora, every CloudTrail record and GuardDuty finding gets the same decision, record for record', async () => {
    let run = 0;
    let heldForGrace = 0;
    const rules = new Set<string>();
    const gdReasons = new Set<string>();
    const bindings = new Set<string>();
    await fc.assert(
      fc.asyncProperty(corpusArb, async (corpus) => {
        const dir = join(tmp, `run-${run++}`);
        await mkdir(dir);
        const telemetry = [...observations(corpus), ...corpus.heartbeats.map(heartbeat)];
        for (const r of telemetry) expect(validateRecord(JSON.parse(JSON.stringify(r))).ok).toBe(true);
        await writeFile(join(dir, 'telemetry.ndjson'), telemetry.map((r) => JSON.stringify(r)).join('\n') + '\n');
        await writeFile(join(dir, 'trail.json'), JSON.stringify({ Records: cloudTrail(corpus) }));
        await writeFile(join(dir, 'findings.json'), JSON.stringify(corpus.findings.map(finding)));
        await writeFile(join(dir, 'inventory.json'), JSON.stringify(inventoryFile(corpus)));

        const daemon = await daemonDecisions(config, corpus, dir);
        heldForGrace += daemon.pendingHeld;
        const lines = await replayLines(config, corpus, dir, false);
        // Record for record: each line is a decision the daemon stored (each once), or a record the
        // daemon counted as not made with instance credentials (in the order they came).
        const stored = new Map(daemon.cloudtrail);
        const ignored: string[] = [];
        for (const l of lines) {
          const id = String(l.id);
          rules.add(String(l.rule));
          for (const e of ((l.detail as JsonDoc).evidence as JsonDoc[]) ?? []) if (e.binding) bindings.add(String(e.binding));
          if (stored.has(id) && JSON.stringify(stored.get(id)) === JSON.stringify(undecided(l))) stored.delete(id);
          else {
            expect(l, `event ${id}: not what the daemon stored`).toMatchObject({ disposition: 'ignored', rule: 'not-instance-credential' });
            ignored.push(id);
          }
        }
        expect([...stored.values()], 'decisions the daemon stored that replay did not print').toEqual([]);
        expect(ignored).toEqual(daemon.notInstance);

        const gd = await replayLines(config, corpus, dir, true);
        for (const l of gd) gdReasons.add(String(l.rule));
        expect(gd.map((l) => l.detail as JsonDoc)).toEqual(daemon.guardduty);
        await rm(dir, { recursive: true, force: true });
      }),
      { numRuns: 40, seed: 20240501 },
    );
    // The corpora reached the paths that used to differ and the grace period.
    expect(heldForGrace).toBeGreaterThan(0);
    expect([...rules].sort()).toEqual(
      expect.arrayContaining(['attested', 'aws-internal', 'external', 'gateway-unattested', 'not-instance-credential', 'wrong-client']),
    );
    expect([...bindings].sort()).toEqual(['instance', 'other', 'translated', 'unknown']);
    expect(gdReasons).toContain('external-use-seen');
  }, 120_000);
});

/**
 * `egress-witness replay` as a child process (`node dist/cli/main.js`):
 * CloudTrail log files + agent NDJSON telemetry (the `telemetry.file` sink
 * format, validated here with protocol/telemetry.ts) → one JSON line per
 * CloudTrail record; `--findings` → aggregated findings; `--guardduty` →
 * one line per GuardDuty finding; progress and summary on stderr; bad input
 * reported clearly. `npm test` builds dist/ first.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateRecord, type Heartbeat, type Observation } from '../../protocol/telemetry.js';
import { decisionRecordJsonSchema, decisionRecordSchema } from '../../detector/decisions/record.js';
import { SqliteStore } from '../../detector/store/sqlite-store.js';
import {
  AWS_RANGES_FIXTURE,
  cloudTrailFixture,
  cloudTrailRecord,
  EXTERNAL_IP,
  GW1_IP,
  GW2_IP,
  GW3_IP,
  INSIDE_AWS_IP,
  type JsonDoc,
} from '../helpers/detector.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');
const GD_FINDINGS = fileURLToPath(new URL('../fixtures/guardduty/get-findings-response.json', import.meta.url));

const T = Date.parse('2024-05-01T12:01:07Z');
const FIRST = T;
const LAST = Date.parse('2024-05-01T12:41:07Z');
const SEC = 1000;
const MIN = 60 * SEC;
const KEY = 'ASIAIOSFODNN7EXAMPLE';
const STOLEN = 'ASIAY34FZKBOKMUTVV7A';
const UNSEEN = 'ASIAQNZGKIQY56JQ7WML';
const iso = (ms: number) => new Date(ms).toISOString();

let tmp: string;
let configPath: string;
let telemetryPath: string;
let trailGz: string;
let trailPlain: string;
const ids: Record<string, string> = {};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  lines: JsonDoc[];
}

function replay(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, 'replay', ...args], { cwd: tmp, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      const lines = stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as JsonDoc);
      resolve({ code, stdout, stderr, lines });
    });
  });
}

/** An observation with every field the agent's aggregator writes (agent/observe/model/aggregator.ts toRecord). */
function agentObservation(o: {
  gatewayId?: string;
  key: string | null;
  at: number;
  span?: number;
  clientIp?: string;
  network?: string | null;
  mode?: Observation['mode'];
  host?: string;
}): Observation {
  const span = o.span ?? 8 * SEC;
  const mode = o.mode ?? 'inspect';
  return {
    type: 'observation',
    schema: 1,
    gatewayId: o.gatewayId ?? 'gw1',
    firstSeen: iso(o.at),
    lastSeen: iso(o.at + span),
    count: 4,
    clientIp: o.clientIp ?? '10.20.3.4',
    network: o.network === undefined ? 'vpc-prod' : o.network,
    mode,
    host: o.host ?? 'sts.us-east-1.amazonaws.com',
    port: 443,
    resolvedIp: '52.94.133.131',
    aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
    accessKeyId: o.key,
    keyKind: o.key ? 'temporary' : null,
    accountId: o.key ? '111122223333' : null,
    sessionToken: o.key ? true : null,
    signatureVersion: o.key ? 'v4' : null,
    auth: o.key ? 'header' : null,
    action: mode === 'tunnel' ? null : 'GetCallerIdentity',
    bytesUp: 4_812,
    bytesDown: 3_220,
    durationMs: 410,
    outcome: 'ok',
    ...(mode === 'tunnel' ? {} : { status: { '2xx': 4 } }),
  };
}

function agentHeartbeat(gatewayId: string, at: number): Heartbeat {
  return {
    type: 'heartbeat',
    schema: 1,
    gatewayId,
    time: iso(at),
    agentVersion: '0.1.0',
    startedAt: '2024-05-01T08:00:00.000Z',
    uptimeSeconds: Math.round((at - Date.parse('2024-05-01T08:00:00.000Z')) / 1000),
    counts: { observed: 12, aggregated: 8, dropped: 0, notAws: 1 },
    spool: { batches: 0, bytes: 0 },
    inspect: gatewayId !== 'gw2',
  };
}

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  tmp = await mkdtemp(join(tmpdir(), 'ew-replay-'));
  await writeFile(join(tmp, 'ip-ranges.json'), JSON.stringify(AWS_RANGES_FIXTURE));
  configPath = join(tmp, 'det.yaml');
  await writeFile(
    configPath,
    [
      'gateways:',
      '  - id: gw1',
      '    egress_cidrs: [203.0.113.0/28]',
      `    secret_file: ${join(tmp, 'gw1.key')}`,
      '  - id: gw2',
      '    egress_cidrs: [198.51.100.0/29]',
      `    secret_file: ${join(tmp, 'gw2.key')}`,
      '    inspect: false',
      '  - id: gw3',
      '    egress_cidrs: [192.0.2.0/28]',
      `    secret_file: ${join(tmp, 'gw3.key')}`,
      `aws_ip_ranges: ${join(tmp, 'ip-ranges.json')}`,
      'correlation:',
      '  window: 5m',
      '  heartbeat_stale: 2m',
      '',
    ].join('\n'),
  );

  // Telemetry as the agents' telemetry.file sinks wrote it, with two damaged lines.
  const routedAt = (key: string) => [agentObservation({ key, at: FIRST - 20 * SEC }), agentObservation({ key, at: LAST - 40 * SEC })];
  const records: (Observation | Heartbeat)[] = [
    ...[FIRST - 60 * SEC, FIRST + 10 * MIN, FIRST + 20 * MIN, FIRST + 30 * MIN, LAST - 30 * SEC, LAST + 30 * SEC].map((t) =>
      agentHeartbeat('gw1', t),
    ),
    agentHeartbeat('gw2', T - 30 * SEC),
    agentObservation({ key: KEY, at: T - 20 * SEC }),
    agentObservation({ gatewayId: 'gw2', key: null, mode: 'tunnel', at: T + 60 * SEC }),
    ...routedAt('ASIAGDATTESTED234567'),
    ...routedAt('ASIAGDEXTERNAL234567'),
    ...routedAt('ASIAGDUNROUTED234567'),
    agentObservation({ key: 'ASIAGDUNROUTED234567', clientIp: '192.168.77.7', network: null, at: FIRST + 5 * MIN }),
  ];
  for (const r of records) {
    const v = validateRecord(JSON.parse(JSON.stringify(r)));
    expect(v.ok, JSON.stringify(v)).toBe(true);
  }
  const lines = records.map((r) => JSON.stringify(r));
  lines.splice(3, 0, '{"type":"observation","gatewayId":"gw1"', '{"type":"observation","schema":1,"gatewayId":"gw1"}', '');
  telemetryPath = join(tmp, 'gw.ndjson');
  await writeFile(telemetryPath, `${lines.join('\n')}\n`);

  // CloudTrail: a gzip log file (with garbage records) in an S3-like tree, and a plain one.
  const attested = cloudTrailRecord({ key: KEY, sourceIp: GW1_IP, time: T });
  const endpoint = cloudTrailRecord({ key: UNSEEN, sourceIp: GW2_IP, time: T + 62 * SEC });
  const silent = cloudTrailRecord({ key: UNSEEN, sourceIp: GW3_IP, time: T });
  const unattested = cloudTrailRecord({ key: UNSEEN, sourceIp: GW1_IP, time: T + 30 * SEC });
  const inside = cloudTrailRecord({ key: KEY, sourceIp: INSIDE_AWS_IP, time: T });
  const stolen = [0, 20, 40].map((s) => cloudTrailRecord({ key: STOLEN, sourceIp: EXTERNAL_IP, time: T + s * SEC }));
  const extUse = cloudTrailRecord({ key: 'ASIAGDEXTERNAL234567', sourceIp: EXTERNAL_IP, time: FIRST + 10 * MIN });
  Object.assign(ids, {
    attested: attested.eventID,
    endpoint: endpoint.eventID,
    silent: silent.eventID,
    unattested: unattested.eventID,
    inside: inside.eventID,
    extUse: extUse.eventID,
  });
  stolen.forEach((r, i) => {
    ids[`stolen${i}`] = String(r.eventID);
  });
  const dir = join(tmp, 'trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01');
  await mkdir(dir, { recursive: true });
  trailGz = join(dir, '111122223333_CloudTrail_us-east-1_20240501T1205Z_Ab12Cd34Ef56Gh78.json.gz');
  const garbage = (cloudTrailFixture('garbage') as unknown as unknown[]).slice(0, 4);
  await writeFile(trailGz, gzipSync(JSON.stringify({ Records: [attested, endpoint, ...garbage, silent, unattested, inside, ...stolen] })));
  trailPlain = join(tmp, 'extra.json');
  await writeFile(trailPlain, JSON.stringify({ Records: [extUse, attested, cloudTrailFixture('aws-internal')] }));
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('replay: one line per CloudTrail record', () => {
  let run: Run;
  beforeAll(async () => {
    run = await replay('--config', configPath, '--cloudtrail', trailGz, trailPlain, '--telemetry', telemetryPath);
  });

  it('exits 0 and prints each valid record once, as a decision record', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines).toHaveLength(10);
    for (const l of run.lines) {
      expect(Object.keys(l)).toEqual([
        'version',
        'kind',
        'id',
        'time',
        'decidedAt',
        'disposition',
        'rule',
        'accessKeyId',
        'sourceIp',
        'gatewayId',
        'detail',
      ]);
      expect(l).toMatchObject({
        version: 1,
        kind: 'cloudtrail',
        id: l.detail.eventId,
        disposition: l.detail.disposition,
        rule: l.detail.rule,
      });
      expect(Object.keys(l.detail)).toEqual(
        expect.arrayContaining(['eventId', 'eventTime', 'accessKeyId', 'sourceIPAddress', 'disposition', 'rule', 'gatewayId', 'reason']),
      );
    }
    expect(new Set(run.lines.map((l) => String(l.id))).size).toBe(10);
  });

  it('decides like the daemon: attested with evidence, endpoint-attested, unverified, unattested, inside AWS, external, aws-internal', () => {
    const by = (id: string): JsonDoc => run.lines.find((l) => l.id === id)!.detail as JsonDoc;
    expect(by(ids.attested!)).toMatchObject({
      eventTime: '2024-05-01T12:01:07Z',
      accessKeyId: KEY,
      sourceIPAddress: GW1_IP,
      disposition: 'suppressed',
      rule: 'attested',
      gatewayId: 'gw1',
    });
    expect(by(ids.attested!).evidence).toEqual([
      expect.objectContaining({
        gatewayId: 'gw1',
        clientIp: '10.20.3.4',
        network: 'vpc-prod',
        firstSeen: iso(T - 20 * SEC),
        lastSeen: iso(T - 12 * SEC),
        count: 4,
        deltaMs: 12 * SEC,
      }),
    ]);
    expect(by(ids.endpoint!)).toMatchObject({ disposition: 'suppressed', rule: 'endpoint-attested', gatewayId: 'gw2' });
    expect(by(ids.endpoint!).evidence[0]).toMatchObject({ gatewayId: 'gw2', mode: 'tunnel', service: 'sts', region: 'us-east-1' });
    expect(by(ids.silent!)).toMatchObject({ disposition: 'finding', rule: 'gateway-unverified', gatewayId: 'gw3', severity: 5 });
    expect(by(ids.silent!).evidence).toEqual([]);
    expect(by(ids.unattested!)).toMatchObject({ disposition: 'finding', rule: 'gateway-unattested', gatewayId: 'gw1', severity: 8 });
    expect(by(ids.inside!)).toMatchObject({ disposition: 'ignored', rule: 'inside-aws', gatewayId: null });
    expect(by(ids.stolen0!)).toMatchObject({ disposition: 'finding', rule: 'external', gatewayId: null, accessKeyId: STOLEN });
    expect(run.lines.filter((l) => l.rule === 'aws-internal')).toHaveLength(1);
  });

  it('reports progress and a summary on stderr, counting invalid telemetry lines and records', () => {
    expect(run.stderr).toMatch(
      /^replay: 16 telemetry records \(2 invalid\) loaded in \d+\.\d s, 10 CloudTrail records from 2 files \(4 invalid\) correlated in \d+\.\d s \(\d+ records\/s\); total \d+\.\d s; decisions \{.*\}\n$/,
    );
    const decisions = JSON.parse(/decisions (\{.*\})/.exec(run.stderr)![1]!) as Record<string, number>;
    expect(decisions).toEqual({
      'suppressed/attested': 1,
      'suppressed/endpoint-attested': 1,
      'finding/gateway-unverified': 1,
      'finding/gateway-unattested': 1,
      'ignored/inside-aws': 1,
      'finding/external': 4,
      'ignored/aws-internal': 1,
    });
    expect(decisions['finding/external']).toBe(run.lines.filter((l) => l.rule === 'external').length);
  });

  it('takes a folder and walks it for .json/.json.gz; --quiet keeps stderr empty', async () => {
    const r = await replay('--config', configPath, '--cloudtrail', join(tmp, 'trail'), '--telemetry', telemetryPath, '--quiet');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.lines).toHaveLength(8);
  });
});

describe('replay --findings', () => {
  it('prints findings aggregated per key, source and rule', async () => {
    const r = await replay('--config', configPath, '--cloudtrail', trailGz, trailPlain, '--telemetry', telemetryPath, '--findings');
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines.every((f) => f.type === 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS')).toBe(true);
    expect(r.lines.map((f) => String(f.egressWitness.rule)).sort()).toEqual([
      'external',
      'external',
      'gateway-unattested',
      'gateway-unverified',
    ]);
    const stolen = r.lines.find((f) => f.resource.accessKeyDetails.accessKeyId === STOLEN)!;
    expect(stolen).toMatchObject({
      severity: 8,
      service: {
        count: 3,
        eventFirstSeen: '2024-05-01T12:01:07Z',
        eventLastSeen: '2024-05-01T12:01:47Z',
        action: { awsApiCallAction: { remoteIpDetails: { ipAddressV4: EXTERNAL_IP } } },
      },
      egressWitness: { rule: 'external', eventIds: [ids.stolen0, ids.stolen1, ids.stolen2] },
    });
    expect(r.stderr).toMatch(/; 4 findings\n$/);
  });
});

describe('replay --guardduty', () => {
  it('prints one decision per GuardDuty finding with the reason and the evidence', async () => {
    const r = await replay('--config', configPath, '--guardduty', GD_FINDINGS, '--cloudtrail', trailPlain, '--telemetry', telemetryPath);
    expect(r.code, r.stderr).toBe(0);
    const fixture = (JSON.parse(readFileSync(GD_FINDINGS, 'utf8')) as { findings: { id: string }[] }).findings;
    expect(r.lines.map((l) => String(l.detail.findingId))).toEqual(fixture.map((f) => f.id));
    for (const l of r.lines) {
      expect(l).toMatchObject({ version: 1, kind: 'guardduty', disposition: l.detail.decision, rule: l.detail.reason });
      expect(String(l.id).startsWith(`${l.detail.findingId}@`)).toBe(true);
      expect(Object.keys(l.detail)).toEqual(
        expect.arrayContaining(['findingId', 'accessKeyId', 'remoteIp', 'decision', 'reason', 'gatewayId', 'evidence']),
      );
    }
    const by = (prefix: string): JsonDoc => r.lines.find((l) => (l.detail.findingId as string).startsWith(prefix))!.detail as JsonDoc;
    expect(by('a7ec')).toMatchObject({
      accessKeyId: 'ASIAGDATTESTED234567',
      remoteIp: GW1_IP,
      decision: 'archive',
      reason: 'attested',
      gatewayId: 'gw1',
    });
    expect(by('a7ec').evidence.start[0]).toMatchObject({ gatewayId: 'gw1', clientIp: '10.20.3.4' });
    expect(by('a7ec').evidence.end[0]).toMatchObject({ gatewayId: 'gw1', clientIp: '10.20.3.4' });
    expect(by('b2c4')).toMatchObject({ decision: 'keep', reason: 'external-use-seen' });
    expect(by('b2c4').evidence.externalEvents).toEqual([expect.objectContaining({ eventId: ids.extUse, sourceIPAddress: EXTERNAL_IP })]);
    expect(by('c3d5')).toMatchObject({ decision: 'keep', reason: 'gateway-silent', gatewayId: 'gw3' });
    expect(by('d4e6')).toMatchObject({ decision: 'keep', reason: 'not-a-gateway-address', gatewayId: null });
    expect(by('e5f7')).toMatchObject({ decision: 'keep', reason: 'unrouted-client', gatewayId: 'gw1' });
    expect(by('f6a8')).toMatchObject({ decision: 'keep', reason: 'malformed', accessKeyId: null, remoteIp: null });
    expect(by('1a2b')).toMatchObject({ decision: 'keep', reason: 'not-outside-aws-type' });
    expect(r.lines.some((l) => l.kind !== 'guardduty')).toBe(false);
    expect(r.stderr).toMatch(/GuardDuty \{.*"archive\/attested":1.*\}\n$/);
  });
});

describe('replay: bad input', () => {
  it('a missing CloudTrail or telemetry file: exit 1 naming the file', async () => {
    const [missingTrail, missingTelemetry] = await Promise.all([
      replay('--config', configPath, '--cloudtrail', join(tmp, 'nope.json.gz'), '--telemetry', telemetryPath),
      replay('--config', configPath, '--cloudtrail', trailGz, '--telemetry', join(tmp, 'missing.ndjson')),
    ]);
    expect(missingTrail.code).toBe(1);
    expect(missingTrail.stderr).toMatch(/^replay: .*nope\.json\.gz/m);
    expect(missingTrail.stderr).toMatch(/no such file/i);
    expect(missingTelemetry.code).toBe(1);
    expect(missingTelemetry.stderr).toMatch(/^replay: .*missing\.ndjson/m);
    expect(missingTelemetry.lines).toEqual([]);
  });

  it('a corrupt gzip file is skipped with a message; the others are still decided', async () => {
    const corrupt = join(tmp, 'corrupt.json.gz');
    await writeFile(corrupt, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef]));
    const r = await replay('--config', configPath, '--cloudtrail', corrupt, trailPlain, '--telemetry', telemetryPath);
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(3);
    expect(r.stderr).toMatch(/replay: skipped .*corrupt\.json\.gz: /);
  });

  it('a file of garbage lines is read as invalid records, not a crash', async () => {
    const junk = join(tmp, 'junk.json');
    await writeFile(junk, 'this is not\nCloudTrail at all\n{"eventVersion": "9.0"}\n');
    const r = await replay('--config', configPath, '--cloudtrail', junk, '--telemetry', telemetryPath);
    expect(r.code).toBe(0);
    expect(r.lines).toEqual([]);
    expect(r.stderr).toMatch(/0 CloudTrail records from 1 files \(3 invalid\)/);
  });

  it('usage errors: no input (exit 2) and an invalid config (exit 1 with the path)', async () => {
    const bad = join(tmp, 'bad.yaml');
    await writeFile(bad, 'gateways:\n  - id: GW_1\n    egress_cidrs: [203.0.113.0/33]\n    secret_file: /x\n');
    const [none, r] = await Promise.all([
      replay('--config', configPath, '--telemetry', telemetryPath),
      replay('--config', bad, '--cloudtrail', trailGz, '--no-telemetry'),
    ]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/give --cloudtrail/);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid detector configuration/);
    expect(r.stderr).toMatch(/gateways\[0\]\.id: /);
    expect(r.stderr).toMatch(/gateways\[0\]\.egress_cidrs\[0\]: /);
  });
});

/** The jq filters docs/detection.md#decision-records shows, in the order it shows them. */
function documentedJqFilters(): string[] {
  const text = readFileSync(join(root, 'docs/detection.md'), 'utf8');
  const section = text.slice(text.indexOf('## Decision records'), text.indexOf('## GuardDuty findings'));
  return [...section.matchAll(/\| jq (-[a-z]+) '([^']+)'/g)].map((m) => `${m[1]} ${m[2]}`);
}

/** What each documented filter computes, in JavaScript: checked against jq below and on the outputs. */
const JQ_EQUIVALENTS: Record<string, (lines: JsonDoc[]) => unknown[]> = {
  '-c select(.disposition == "finding" or .disposition == "keep") | {id, rule, sourceIp, gatewayId, reason: .detail.reason}': (lines) =>
    lines
      .filter((l) => l.disposition === 'finding' || l.disposition === 'keep')
      .map((l) => ({ id: l.id, rule: l.rule, sourceIp: l.sourceIp, gatewayId: l.gatewayId, reason: l.detail.reason })),
  '-c select(.disposition == "suppressed") | {id, gatewayId, evidence: [.detail.evidence[] | {gatewayId, clientIp, network}]}': (lines) =>
    lines
      .filter((l) => l.disposition === 'suppressed')
      .map((l) => ({
        id: l.id,
        gatewayId: l.gatewayId,
        evidence: (l.detail.evidence as JsonDoc[]).map((e) => ({ gatewayId: e.gatewayId, clientIp: e.clientIp, network: e.network })),
      })),
  '-sc group_by(.rule) | map({rule: .[0].rule, n: length})': (lines) => {
    const by = new Map<string, number>();
    for (const l of [...lines].sort((a, b) => String(a.rule).localeCompare(String(b.rule))))
      by.set(String(l.rule), (by.get(String(l.rule)) ?? 0) + 1);
    return [[...by].map(([rule, n]) => ({ rule, n }))];
  },
};

function jq(filter: string, input: string): unknown[] {
  const [flag, ...rest] = filter.split(' ');
  const out = execFileSync('jq', [flag!, rest.join(' ')], { input, encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as unknown);
}

describe('one decision record: replay and detector decisions print the same shape', () => {
  let cloudtrail: Run;
  let guardduty: Run;
  let stored: JsonDoc[];
  beforeAll(async () => {
    [cloudtrail, guardduty] = await Promise.all([
      replay('--config', configPath, '--cloudtrail', trailGz, trailPlain, '--telemetry', telemetryPath, '--quiet'),
      replay('--config', configPath, '--guardduty', GD_FINDINGS, '--cloudtrail', trailPlain, '--telemetry', telemetryPath, '--quiet'),
    ]);
    // The daemon's store, holding exactly these decisions, read back by `detector decisions`.
    const dbPath = join(tmp, 'records.db');
    const store = new SqliteStore(dbPath);
    for (const l of [...cloudtrail.lines, ...guardduty.lines])
      await store.saveDecision({
        kind: l.kind,
        subjectId: l.id,
        timeMs: Date.parse(l.time),
        decidedMs: Date.parse(l.decidedAt),
        disposition: l.disposition,
        rule: l.rule,
        accessKeyId: l.accessKeyId,
        sourceIp: l.sourceIp,
        gatewayId: l.gatewayId,
        detail: l.detail,
      });
    await store.close();
    const storeConfig = join(tmp, 'records.yaml');
    await writeFile(storeConfig, `${readFileSync(configPath, 'utf8')}store: {path: ${dbPath}}\n`);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [bin, 'detector', 'decisions', '--config', storeConfig, '--since', '1h'], (err, stdout, stderr) =>
        err ? reject(new Error(stderr)) : resolve(stdout),
      ),
    );
    stored = out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as JsonDoc);
  });

  it('every line of both outputs is a version 1 decision record, as docs/decision-record.schema.json says', () => {
    const all = [...cloudtrail.lines, ...guardduty.lines, ...stored];
    expect(cloudtrail.lines).toHaveLength(10);
    expect(all.length).toBe(2 * (10 + guardduty.lines.length));
    for (const l of all) expect(decisionRecordSchema.strict().safeParse(l)).toMatchObject({ success: true });
    expect(JSON.parse(readFileSync(join(root, 'docs/decision-record.schema.json'), 'utf8'))).toEqual(decisionRecordJsonSchema());
  });

  it('detector decisions prints, field for field and in the same order, what replay printed', () => {
    const byId = new Map(stored.map((l) => [String(l.id), l]));
    for (const l of [...cloudtrail.lines, ...guardduty.lines]) {
      expect(JSON.stringify(byId.get(String(l.id)))).toBe(JSON.stringify(l));
    }
  });

  it('the jq filters of docs/detection.md work on both outputs: no null reason, the evidence where it is', () => {
    const filters = documentedJqFilters();
    expect(filters.sort()).toEqual(Object.keys(JQ_EQUIVALENTS).sort());
    for (const [name, lines] of [
      ['replay', [...cloudtrail.lines, ...guardduty.lines]],
      ['detector decisions', stored],
    ] as [string, JsonDoc[]][]) {
      const input = lines.map((l) => JSON.stringify(l)).join('\n');
      for (const f of filters) {
        const got = jq(f, input);
        expect(got, `${name}: ${f}`).toEqual(JQ_EQUIVALENTS[f]!(lines));
        expect(got.length, `${name}: ${f}`).toBeGreaterThan(0);
      }
      const kept = jq(
        filters.find((f) => f.includes('reason'))!,
        input,
      ) as JsonDoc[];
      expect(kept.some((k) => k.reason === null || k.reason === undefined)).toBe(false);
      expect(kept.map((k): unknown => k.rule)).toEqual(expect.arrayContaining(['external', 'gateway-unverified', 'external-use-seen']));
    }
  });
});

describe('replay without telemetry', () => {
  it('refuses without --telemetry or --no-telemetry: exit 2, saying no evidence was given', async () => {
    const r = await replay('--config', configPath, '--cloudtrail', trailGz);
    expect(r.code).toBe(2);
    expect(r.lines).toEqual([]);
    expect(r.stderr).toMatch(/^replay: no evidence given: add --telemetry FILE… .*, or --no-telemetry to decide without it/);
  });

  it('--no-telemetry: a notice on stderr, and every decision about a gateway address says no evidence was given', async () => {
    const r = await replay('--config', configPath, '--cloudtrail', trailGz, '--no-telemetry');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^replay: --no-telemetry: no evidence given: /);
    const gateway = r.lines.filter((l) => l.gatewayId !== null);
    expect(gateway.length).toBeGreaterThan(0);
    for (const l of gateway) expect(String(l.detail.reason)).toMatch(/^no evidence given \(replay --no-telemetry\): /);
    for (const l of r.lines.filter((x) => x.gatewayId === null)) expect(String(l.detail.reason)).not.toMatch(/no evidence given/);
    expect(r.lines.filter((l) => l.rule === 'attested')).toEqual([]);
  });
});

describe('replay: errors that name the fix', () => {
  it('a missing input is a sentence naming the flag and the file, not an errno', async () => {
    const r = await replay('--config', configPath, '--cloudtrail', 'nope.json.gz', '--telemetry', telemetryPath);
    expect(r).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'replay: --cloudtrail nope.json.gz: no such file or folder (docs/operations.md#4-replay-offline-forensics)\n',
    });
  });

  it('an agent configuration file: says so, instead of listing every section as unknown', async () => {
    const agent = join(tmp, 'agent.yaml');
    await writeFile(agent, readFileSync(join(root, 'config/agent.example.yaml'), 'utf8'));
    const r = await replay('--config', agent, '--cloudtrail', trailGz, '--telemetry', telemetryPath);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${agent}: invalid detector configuration\n  (file): this is an agent configuration file (it has "gateway", "networks", "proxy", …), but replay needs a detector configuration file (docs/configuration.md#detector-file)\n`,
    );
  });
});

// End to end with real processes: an agent in inspect mode and a detector, each a child process of the built CLI.
// The AWS SDK calls a loopback "STS" through the agent; CloudTrail then reports that call twice — once from the
// gateway's egress address (must be suppressed as attested, with evidence) and once from an outside address
// (must become a finding).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createTestCa } from '../helpers/pki.js';
import { startFakeAws, type FakeAws } from '../helpers/fake-aws.js';
import { TunnelAgent } from '../helpers/tunnel-agent.js';
import { freePort } from '../helpers/telemetry-receiver.js';

const CLI = resolve('dist/cli/main.js');
const KEY = 'ASIAY34FZKBOKMUTVV7A';
const credentials = {
  accessKeyId: KEY,
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE-e2e-session-token',
};

let dir: string;
let fake: FakeAws;
const children: ChildProcess[] = [];
const ports: Record<string, number> = {};

function start(args: string[], log: string): ChildProcess {
  const out = join(dir, log);
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (c: Buffer) => writeFileSync(out, c, { flag: 'a' }));
  child.stderr?.on('data', (c: Buffer) => writeFileSync(out, c, { flag: 'a' }));
  children.push(child);
  return child;
}

async function until<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function get(port: number, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, text: await res.text() };
}

function cloudTrailRecord(source: string, eventTime: string): Record<string, unknown> {
  return {
    eventVersion: '1.11',
    userIdentity: {
      type: 'AssumedRole',
      principalId: 'AROAEXAMPLEROLEID0001:i-0a1b2c3d4e5f60718',
      arn: 'arn:aws:sts::609629065308:assumed-role/app-role/i-0a1b2c3d4e5f60718',
      accountId: '609629065308',
      accessKeyId: KEY,
      sessionContext: {
        sessionIssuer: {
          type: 'Role',
          principalId: 'AROAEXAMPLEROLEID0001',
          arn: 'arn:aws:iam::609629065308:role/app-role',
          accountId: '609629065308',
          userName: 'app-role',
        },
        attributes: { creationDate: eventTime, mfaAuthenticated: 'false' },
        ec2RoleDelivery: '2.0',
      },
    },
    eventTime,
    eventSource: 'sts.amazonaws.com',
    eventName: 'GetCallerIdentity',
    awsRegion: 'us-east-1',
    sourceIPAddress: source,
    userAgent: 'aws-sdk-js/3',
    requestParameters: null,
    responseElements: null,
    requestID: randomUUID(),
    eventID: randomUUID(),
    readOnly: true,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: '609629065308',
    eventCategory: 'Management',
    tlsDetails: { tlsVersion: 'TLSv1.3', clientProvidedHostHeader: 'sts.us-east-1.amazonaws.com' },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ew-e2e-'));
  for (const name of ['ingest', 'detAdmin', 'proxy', 'agentAdmin']) ports[name] = await freePort();
  const upstreamCa = await createTestCa('fake AWS CA');
  writeFileSync(join(dir, 'upstream-ca.pem'), upstreamCa.certPem);
  fake = await startFakeAws(await upstreamCa.issue({ dns: ['*.us-east-1.amazonaws.com'] }));
  execFileSync(process.execPath, [CLI, 'ca', 'init', '--out', join(dir, 'ca')]);
  writeFileSync(join(dir, 'gw.key'), 'e2e-shared-secret-0123456789abcdef\n', { mode: 0o600 });
  mkdirSync(join(dir, 'cloudtrail'));
  writeFileSync(
    join(dir, 'detector.yaml'),
    JSON.stringify({
      listen: `127.0.0.1:${ports.ingest}`,
      admin: { listen: `127.0.0.1:${ports.detAdmin}` },
      store: { path: join(dir, 'detector.db') },
      gateways: [{ id: 'gw-e2e', egress_cidrs: ['203.0.113.0/28'], secret_file: join(dir, 'gw.key'), inspect: true }],
      cloudtrail: { watch_dir: join(dir, 'cloudtrail'), poll_interval: '300ms' },
      correlation: { window: '5m', grace: '2s', heartbeat_stale: '2m' },
      findings: { file: join(dir, 'findings.jsonl') },
    }),
  );
  writeFileSync(
    join(dir, 'agent.yaml'),
    JSON.stringify({
      gateway: { id: 'gw-e2e', egress_cidrs: ['203.0.113.0/28'] },
      networks: [{ name: 'lab', cidrs: ['127.0.0.0/8'] }],
      proxy: { listen: `127.0.0.1:${ports.proxy}`, allow_destination_cidrs: ['127.0.0.1/32'] },
      inspect: { ca_cert: join(dir, 'ca', 'ca.pem'), ca_key: join(dir, 'ca', 'ca-key.pem') },
      upstream: { ca_file: join(dir, 'upstream-ca.pem'), resolve: { '*.amazonaws.com': `127.0.0.1:${fake.port}` } },
      telemetry: {
        detector_url: `http://127.0.0.1:${ports.ingest}/v1/telemetry`,
        secret_file: join(dir, 'gw.key'),
        spool_dir: join(dir, 'spool'),
        flush_interval: '300ms',
        heartbeat_interval: '1s',
      },
      admin: { listen: `127.0.0.1:${ports.agentAdmin}` },
    }),
  );
  start(['detector', '--config', join(dir, 'detector.yaml')], 'detector.log');
  start(['agent', '--config', join(dir, 'agent.yaml')], 'agent.log');
  await until('detector ready', async () => (await get(ports.detAdmin!, '/readyz')).status === 200);
  await until('agent ready', async () => (await get(ports.agentAdmin!, '/readyz')).status === 200);
}, 60_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('agent (inspect) + detector, as processes', () => {
  it('suppresses the call the gateway attested and raises a finding for the same key used from outside', async () => {
    const httpsAgent = new TunnelAgent({ host: '127.0.0.1', port: ports.proxy! }, { ca: readFileSync(join(dir, 'ca', 'ca.pem'), 'utf8') });
    const sts = new STSClient({ region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler({ httpsAgent }), maxAttempts: 1 });
    expect((await sts.send(new GetCallerIdentityCommand({}))).Account).toBe('123456789012');
    sts.destroy();
    httpsAgent.destroy();

    // the attestation reaches the detector (signed batch, stored)
    await until('observation stored by the detector', async () =>
      /egress_witness_detector_ingested_records_total\{type="observation"\} [1-9]/.test((await get(ports.detAdmin!, '/metrics')).text),
    );

    const now = new Date(Date.now() - 1_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const fromGateway = cloudTrailRecord('203.0.113.5', now);
    const fromOutside = cloudTrailRecord('198.51.100.77', now);
    const logDir = join(dir, 'cloudtrail', 'AWSLogs', '609629065308', 'CloudTrail', 'us-east-1', '2026', '11', '25');
    mkdirSync(logDir, { recursive: true });
    writeFileSync(
      join(logDir, '609629065308_CloudTrail_us-east-1_20261125T1200Z_e2e.json.gz'),
      gzipSync(JSON.stringify({ Records: [fromGateway, fromOutside] })),
    );

    const decisions = await until('both decisions final', () => {
      const out = execFileSync(process.execPath, [CLI, 'detector', 'decisions', '--config', join(dir, 'detector.yaml'), '--since', '1h'], {
        encoding: 'utf8',
      });
      const lines = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return lines.length >= 2 ? lines : null;
    });
    const suppressed = decisions.find((d) => d.id === fromGateway.eventID)!;
    const finding = decisions.find((d) => d.id === fromOutside.eventID)!;
    expect(suppressed).toMatchObject({
      disposition: 'suppressed',
      rule: 'attested',
      gatewayId: 'gw-e2e',
      accessKeyId: KEY,
      sourceIp: '203.0.113.5',
    });
    const evidence = (suppressed.detail as { evidence: Record<string, unknown>[] }).evidence;
    expect(evidence[0]).toMatchObject({
      gatewayId: 'gw-e2e',
      clientIp: '127.0.0.1',
      network: 'lab',
      service: 'sts',
      action: 'GetCallerIdentity',
      mode: 'inspect',
    });
    expect(finding).toMatchObject({ disposition: 'finding', rule: 'external', accessKeyId: KEY, sourceIp: '198.51.100.77' });

    await until(
      'finding written',
      () => existsSync(join(dir, 'findings.jsonl')) && readFileSync(join(dir, 'findings.jsonl'), 'utf8').includes('198.51.100.77'),
    );
    const written = readFileSync(join(dir, 'findings.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({
      type: 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
      severity: 8,
      resource: {
        resourceType: 'AccessKey',
        accessKeyDetails: { accessKeyId: KEY },
        instanceDetails: { instanceId: 'i-0a1b2c3d4e5f60718' },
      },
      service: { action: { awsApiCallAction: { api: 'GetCallerIdentity', remoteIpDetails: { ipAddressV4: '198.51.100.77' } } }, count: 1 },
      egressWitness: { rule: 'external' },
    });
  });

  it('both daemons stop cleanly on SIGTERM', async () => {
    const exits = children.map(
      (c) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code)))),
    );
    for (const c of children) c.kill('SIGTERM');
    expect(await Promise.all(exits)).toEqual([0, 0]);
  });
});

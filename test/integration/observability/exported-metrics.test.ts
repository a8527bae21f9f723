// The dashboard and the alerting rules name only metrics the daemons export: both daemons run on loopback (an
// inspecting agent shipping to a detector), do real work (an SDK call through the agent, a refusal, telemetry
// stored, CloudTrail events decided into a suppression and a finding), and their /metrics are scraped. A query
// naming a metric neither exports fails the check, as the last tests show.
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import net from 'node:net';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createInspectionCa } from '../../../agent/tls/ca.js';
import { writeCaFiles } from '../../../agent/tls/ca-files.js';
import { createTestCa } from '../../helpers/pki.js';
import { startFakeAws, type FakeAws } from '../../helpers/fake-aws.js';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { TunnelAgent } from '../../helpers/tunnel-agent.js';
import {
  cloudTrailEventBridge,
  cloudTrailRecord,
  EXTERNAL_IP,
  GW1_IP,
  metricValue,
  startDetector,
  waitFor,
  type DetectorHarness,
} from '../../helpers/detector.js';
import {
  dashboardQueries,
  exportedMetrics,
  PROMETHEUS_OWN_SERIES,
  ruleQueries,
  unknownMetrics,
  type Dashboard,
  type Query,
} from '../../helpers/promql.js';

const KEY = 'ASIAY34FZKBOKMUTVV7A';
const credentials = {
  accessKeyId: KEY,
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  sessionToken: 'example-session-token',
};

const dashboard = JSON.parse(readFileSync(resolve('observability/grafana/egress-witness.json'), 'utf8')) as Dashboard;
const rules = parse(readFileSync(resolve('observability/prometheus/egress-witness.rules.yml'), 'utf8')) as Parameters<
  typeof ruleQueries
>[0];

let dir: string;
let fake: FakeAws;
let detector: DetectorHarness;
let agent: TestAgent;
let agentText: string;
let detectorText: string;

async function scrape(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** A CONNECT the agent must refuse (a private destination): one refusal counted. */
function refusedConnect(port: number): Promise<string> {
  return new Promise((done, fail) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('CONNECT 10.1.2.3:443 HTTP/1.1\r\nHost: 10.1.2.3:443\r\n\r\n'));
    let head = '';
    s.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        s.destroy();
        done(head.split('\r\n')[0]!);
      }
    });
    s.on('error', fail);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ew-exported-'));
  detector = await startDetector({ config: { correlation: { grace: '0s' } } });
  const upstreamCa = await createTestCa('fake AWS CA');
  writeFileSync(join(dir, 'upstream-ca.pem'), upstreamCa.certPem);
  fake = await startFakeAws(await upstreamCa.issue({ dns: ['*.us-east-1.amazonaws.com'] }));
  const ca = await createInspectionCa({ permittedDomains: ['amazonaws.com', 'api.aws'] });
  const paths = await writeCaFiles(join(dir, 'ca'), ca);
  agent = await startAgent({
    gateway: { id: 'gw1', egress_cidrs: ['203.0.113.0/28'] },
    proxy: { allow_destination_cidrs: ['127.0.0.1/32'], max_tunnels: 50 },
    inspect: { ca_cert: paths.certPath, ca_key: paths.keyPath },
    upstream: { ca_file: join(dir, 'upstream-ca.pem'), resolve: { '*.amazonaws.com': `127.0.0.1:${fake.port}` } },
    telemetry: {
      detector_url: detector.url('/v1/telemetry'),
      secret_file: join(detector.dir, 'secrets', 'gw1.key'),
      spool_max_bytes: '1MiB',
    },
  });

  // Traffic: an inspected SDK call (key attributed) and a refused destination.
  const httpsAgent = new TunnelAgent({ host: '127.0.0.1', port: agent.proxyPort }, { ca: ca.certPem });
  const sts = new STSClient({ region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler({ httpsAgent }), maxAttempts: 1 });
  expect((await sts.send(new GetCallerIdentityCommand({}))).Account).toBe('123456789012');
  sts.destroy();
  httpsAgent.destroy();
  expect(await refusedConnect(agent.proxyPort)).toContain('403');

  // Telemetry shipped and stored, then CloudTrail: the same key from the gateway (attested) and from outside (finding).
  await agent.flush();
  await waitFor(
    async () => (await detector.metric('egress_witness_detector_ingested_records_total', { type: 'observation' })) > 0,
    'observation stored by the detector',
  );
  const now = Date.now() - 1_000;
  const answer = await detector.postJson('/v1/cloudtrail', [
    cloudTrailEventBridge(cloudTrailRecord({ key: KEY, sourceIp: GW1_IP, time: now })),
    cloudTrailEventBridge(cloudTrailRecord({ key: KEY, sourceIp: EXTERNAL_IP, time: now })),
  ]);
  expect(answer.status).toBe(200);
  await waitFor(async () => (await detector.metric('egress_witness_detector_findings_total')) > 0, 'a finding raised');

  agentText = await scrape(agent.adminPort);
  detectorText = await scrape(detector.ports.admin);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await detector?.cleanup();
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('metrics named by the dashboard and the alerting rules, against live daemons', () => {
  it('the daemons did the work the panels show', () => {
    expect(metricValue(agentText, 'egress_witness_aws_requests_total', { service: 'sts', mode: 'inspect' })).toBe(1);
    expect(metricValue(agentText, 'egress_witness_denied_total', { reason: 'private' })).toBe(1);
    expect(metricValue(agentText, 'egress_witness_telemetry_batches_total', { outcome: 'success' })).toBeGreaterThan(0);
    expect(metricValue(detectorText, 'egress_witness_detector_decisions_total', { disposition: 'suppressed', rule: 'attested' })).toBe(1);
    expect(metricValue(detectorText, 'egress_witness_detector_findings_total', { rule: 'external' })).toBe(1);
  });

  it('exports the caps and the CloudTrail position the alerts divide by', () => {
    expect(metricValue(agentText, 'egress_witness_tunnels_max')).toBe(50);
    expect(metricValue(agentText, 'egress_witness_spool_max_bytes')).toBe(1024 * 1024);
    const newest = metricValue(detectorText, 'egress_witness_detector_cloudtrail_newest_event_timestamp_seconds');
    expect(Math.abs(newest - Math.floor((Date.now() - 1_000) / 1000))).toBeLessThan(30);
  });

  const exported = (): Set<string> => new Set([...exportedMetrics(agentText), ...exportedMetrics(detectorText)]);

  it('every dashboard query names only metrics the agent or the detector exports', () => {
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThan(40);
    expect(unknownMetrics(queries, exported(), PROMETHEUS_OWN_SERIES)).toEqual([]);
  });

  it('every alerting rule names only metrics the agent or the detector exports', () => {
    const queries = ruleQueries(rules);
    expect(queries.length).toBe(27);
    expect(unknownMetrics(queries, exported(), PROMETHEUS_OWN_SERIES)).toEqual([]);
  });

  it('a panel querying a metric neither daemon exports fails the check', () => {
    const broken = structuredClone(dashboard) as Dashboard & { panels: { title?: string; targets?: { refId: string; expr: string }[] }[] };
    broken.panels.push({ title: 'Made up', targets: [{ refId: 'A', expr: 'sum(rate(egress_witness_made_up_total[$__rate_interval]))' }] });
    const renamed = JSON.parse(JSON.stringify(broken).replaceAll('egress_witness_tunnels_max', 'egress_witness_tunnel_max')) as Dashboard;
    expect(unknownMetrics(dashboardQueries(renamed), exported(), PROMETHEUS_OWN_SERIES)).toEqual([
      'panel "Open tunnels and cap" B: egress_witness_tunnel_max',
      'panel "Tunnel cap used" A: egress_witness_tunnel_max',
      'panel "Made up" A: egress_witness_made_up_total',
    ]);
  });

  it('one daemon alone does not export what the dashboard needs: both scrapes count', () => {
    const queries: Query[] = dashboardQueries(dashboard);
    const agentOnly = unknownMetrics(queries, exportedMetrics(agentText), PROMETHEUS_OWN_SERIES);
    const detectorOnly = unknownMetrics(queries, exportedMetrics(detectorText), PROMETHEUS_OWN_SERIES);
    expect(agentOnly.some((u) => u.endsWith('egress_witness_detector_decisions_total'))).toBe(true);
    expect(detectorOnly.some((u) => u.endsWith('egress_witness_tunnels_active'))).toBe(true);
  });

  it('counts the series of a histogram, and nothing that is not in the text', () => {
    const names = exportedMetrics(agentText);
    for (const s of ['', '_bucket', '_sum', '_count']) expect(names.has(`egress_witness_upstream_duration_seconds${s}`)).toBe(true);
    expect(names.has('egress_witness_upstream_duration_seconds_total')).toBe(false);
  });
});

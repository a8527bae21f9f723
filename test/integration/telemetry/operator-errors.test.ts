// The shipper's errors name the fix. A real detector (TLS on loopback, throwaway CA) and a real
// agent: an unknown gateway id, a detector certificate the agent does not trust, http:// against
// the TLS listener and a URL the detector answers 404 to. Each is logged at error level with the
// config key that fixes it, every batch stays in the spool, and none of them parks the agent for
// the five minutes a signature mismatch waits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Registry } from 'prom-client';
import { createAgentMetrics } from '../../../agent/metrics/metrics.js';
import { Shipper } from '../../../agent/ship/shipper.js';
import { Spool } from '../../../agent/ship/spool.js';
import { startAgent, type TestAgent } from '../../helpers/agent.js';
import { startDetector, type DetectorHarness } from '../../helpers/detector.js';
import { logSink } from '../../helpers/log-sink.js';
import { createTestCa } from '../../helpers/pki.js';
import { tempDir, waitFor, type TempDir } from './rig.js';

let detector: DetectorHarness;
let dir: TempDir;
let caFile: string;
const agents: TestAgent[] = [];

beforeAll(async () => {
  dir = await tempDir('ew-operator-errors-');
  const ca = await createTestCa('detector test CA');
  const leaf = await ca.issue({ ips: ['127.0.0.1'] });
  caFile = join(dir.path, 'detector-ca.pem');
  await writeFile(caFile, ca.certPem);
  detector = await startDetector({
    config: async (d) => {
      await writeFile(join(d, 'tls.crt'), leaf.certPem);
      await writeFile(join(d, 'tls.key'), leaf.keyPem, { mode: 0o600 });
      return { tls: { cert: join(d, 'tls.crt'), key: join(d, 'tls.key') } };
    },
  });
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await detector?.cleanup();
  await dir?.remove();
});

async function agentFor(opts: { gatewayId?: string; url: string; trust: boolean }): Promise<TestAgent> {
  const agent = await startAgent({
    gateway: { id: opts.gatewayId ?? 'gw1', egress_cidrs: ['203.0.113.0/28'] },
    ...(opts.trust ? { upstream: { ca_file: caFile } } : {}),
    telemetry: { detector_url: opts.url, secret_file: join(detector.dir, 'secrets', 'gw1.key'), heartbeat_interval: '1h' },
  });
  agents.push(agent);
  await agent.flush(); // one heartbeat batch to send
  return agent;
}

const https = (): string => `https://127.0.0.1:${detector.ports.ingest}/v1/telemetry`;

function misconfigured(agent: TestAgent): Record<string, unknown> | undefined {
  return agent.logs.find('telemetry_misconfigured')[0];
}

describe('shipper errors that name the fix', () => {
  it('a trusted TLS detector takes the batches (the baseline for the cases below)', async () => {
    const agent = await agentFor({ url: https(), trust: true });
    await waitFor(
      async () => (await detector.metric('egress_witness_detector_ingested_batches_total', { outcome: 'stored' })) >= 1,
      'a stored batch',
    );
    expect(agent.logs.find('telemetry_misconfigured')).toEqual([]);
  });

  it('an unknown gateway id names gateway.id and the detector gateways list, and does not wait five minutes', async () => {
    const agent = await agentFor({ gatewayId: 'gw-other', url: https(), trust: true });
    await waitFor(() => misconfigured(agent) !== undefined, 'the misconfiguration logged');
    const line = misconfigured(agent)!;
    expect(line).toMatchObject({ level: 'error', status: 401, refusal: 'unknown-gateway', fix: 'gateway.id' });
    expect(line.msg).toContain('does not know gateway "gw-other" (gateway.id)');
    expect(line.msg).toContain("detector's gateways list");
    expect(line.msg).toContain('or correct gateway.id (docs/configuration.md#gateways); batches stay in the spool');
    expect(line.msg).not.toContain('secret_file');
    expect(line.retry_in_ms as number).toBeLessThanOrEqual(60_000);
    expect(agent.logs.find('telemetry_unauthorized')).toEqual([]);
    expect((agent.app.status().spool as { batches: number }).batches).toBeGreaterThanOrEqual(1);
  });

  it('an untrusted detector certificate names upstream.ca_file (the agent has no telemetry.ca_file)', async () => {
    const agent = await agentFor({ url: https(), trust: false });
    await waitFor(() => misconfigured(agent) !== undefined, 'the misconfiguration logged');
    const line = misconfigured(agent)!;
    expect(line).toMatchObject({ level: 'error', problem: 'tls-untrusted', fix: 'upstream.ca_file' });
    expect(line.reason).toMatch(/CERT|VERIFY/);
    expect(line.msg).toContain("the detector's TLS certificate at 127.0.0.1:");
    expect(line.msg).toContain('upstream.ca_file');
    expect(line.msg).toContain('(docs/operations.md#detector-tls-in-five-commands); batches stay in the spool');
  });

  it('http:// against the TLS listener says the detector speaks TLS and to use https://', async () => {
    const agent = await agentFor({ url: `http://127.0.0.1:${detector.ports.ingest}/v1/telemetry`, trust: true });
    await waitFor(() => misconfigured(agent) !== undefined, 'the misconfiguration logged');
    const line = misconfigured(agent)!;
    expect(line).toMatchObject({ level: 'error', problem: 'plain-http-to-tls', fix: 'telemetry.detector_url' });
    expect(line.msg).toContain(
      'speaks TLS: telemetry.detector_url must start with https:// (it says http://; docs/operations.md#detector-tls-in-five-commands); batches stay',
    );
  });

  it('a 404 from the detector is a clear error naming telemetry.detector_url; the batch stays', async () => {
    // check-config refuses such a URL in the agent's file; the shipper still says what a 404 means.
    const logs = logSink();
    const spool = await Spool.open({ dir: join(dir.path, 'spool-404'), maxBytes: 1 << 20 });
    const batch = {
      schemaVersion: 1,
      batchId: 'not-found-batch-1',
      gatewayId: 'gw1',
      agent: { version: 't', startedAt: new Date().toISOString() },
      sequence: 0,
      egressCidrs: [],
      sentAt: new Date().toISOString(),
      records: [],
    };
    await spool.append(batch.batchId, gzipSync(JSON.stringify(batch)));
    const registry = new Registry();
    const shipper = new Shipper({
      url: `https://127.0.0.1:${detector.ports.ingest}/`,
      gatewayId: 'gw1',
      secret: detector.secrets.get('gw1')!,
      spool,
      maxInFlight: 1,
      metrics: createAgentMetrics(registry, { version: 't', nodeVersion: process.versions.node }),
      logger: logs.logger,
      now: Date.now,
      ca: await import('node:fs/promises').then((fs) => fs.readFile(caFile, 'utf8')),
    });
    try {
      shipper.kick();
      await waitFor(() => logs.find('telemetry_misconfigured').length === 1, 'the misconfiguration logged');
      const line = logs.find('telemetry_misconfigured')[0]!;
      expect(line).toMatchObject({ level: 'error', status: 404, refusal: 'not-found', fix: 'telemetry.detector_url' });
      expect(line.msg).toContain(
        `telemetry.detector_url must name its telemetry endpoint, e.g. https://127.0.0.1:${detector.ports.ingest}/v1/telemetry (docs/configuration.md#telemetry); batches stay`,
      );
      expect(line.retry_in_ms as number).toBeLessThanOrEqual(60_000);
      expect(spool.stats().batches).toBe(1);
      expect(await registry.getSingleMetricAsString('egress_witness_telemetry_batches_total')).toContain('outcome="misconfigured"} 1');
    } finally {
      await shipper.stop(0);
      await spool.close();
    }
  });
});

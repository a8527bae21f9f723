// Delivery end to end in-process: the detector is down while traffic runs,
// comes up on the same port, and then receives every record the agent
// accepted (the NDJSON sink is the ground truth), each batch exactly once,
// with heartbeats; /metrics tells the story; the NDJSON sink has the
// documented record shapes.
import { describe, expect, it, vi } from 'vitest';
import { validateRecord } from '../../../protocol/telemetry.js';
import { freePort } from '../../helpers/telemetry-receiver.js';
import {
  awsHosts,
  canonical,
  fetchMetrics,
  flushWhenIdle,
  missingFrom,
  observedCount,
  readNdjson,
  runTunnels,
  sample,
  useTelemetryRig,
  waitFor,
} from './rig.js';

const SECRET = 'delivery-secret-0123456789abcdef';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const rig = useTelemetryRig('delivery', SECRET);

describe('telemetry delivery', () => {
  it('delivers every accepted record after the detector was down for the whole run, each batch once, heartbeats included', async () => {
    const port = await freePort();
    const receiver = await rig.startReceiver({ port, listen: false });
    const file = rig.path('down-then-up.ndjson');
    const agent = await rig.startAgent('down-then-up', { file });

    // 30 tunnels over 6 AWS hosts, in two waves with a flush between: several batches.
    const hosts = [...awsHosts('wave1', 3), ...awsHosts('wave2', 3)];
    await runTunnels(agent.proxyPort, [...hosts.slice(0, 3), ...hosts.slice(0, 3), ...hosts.slice(0, 3)]);
    await flushWhenIdle(agent);
    await runTunnels(
      agent.proxyPort,
      Array.from({ length: 21 }, (_, i) => hosts[3 + (i % 3)]!),
    );
    await flushWhenIdle(agent);
    expect(observedCount(await readNdjson(file))).toBe(30);

    // Down: sends fail and batches wait in the spool; the gauges say so.
    await waitFor(
      async () =>
        (sample(await fetchMetrics(agent.adminPort), 'egress_witness_telemetry_batches_total', { outcome: 'retryable' }) ?? 0) >= 1,
      'a failed send',
    );
    const down = await fetchMetrics(agent.adminPort);
    expect(sample(down, 'egress_witness_telemetry_batches_total', { outcome: 'success' }) ?? 0).toBe(0);
    expect(sample(down, 'egress_witness_spool_batches')).toBeGreaterThanOrEqual(2);
    expect(sample(down, 'egress_witness_spool_bytes')).toBeGreaterThan(0);
    expect(sample(down, 'egress_witness_spool_oldest_age_seconds')).toBeGreaterThan(0);
    expect(agent.logs.find('telemetry_retry').length).toBeGreaterThanOrEqual(1);
    expect(receiver.attempts).toHaveLength(0);

    // Up, on the same port.
    await receiver.start();
    await waitFor(
      () =>
        observedCount(receiver.records()) >= 30 &&
        agent.app.status().spool !== null &&
        (agent.app.status().spool as { batches: number }).batches === 0,
      'every record delivered and the spool empty',
      10_000,
    );

    // The file and the receiver agree record for record (heartbeats keep coming: compare when both have the latest).
    await vi.waitFor(
      async () => {
        const accepted = (await readNdjson(file)).map(canonical);
        const received = receiver.records().map(canonical);
        expect(missingFrom(accepted, received)).toEqual([]);
        expect(missingFrom(received, accepted)).toEqual([]);
      },
      { timeout: 5_000, interval: 50 },
    );
    expect(observedCount(receiver.records())).toBe(30);
    expect(receiver.heartbeats().length).toBeGreaterThanOrEqual(1);

    const ids = receiver.batches.map((b) => b.batch.batchId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(receiver.duplicates).toEqual([]);
    // Sequence numbers are gap-free: no batch was lost or skipped.
    expect(receiver.batches.map((b) => b.batch.sequence).sort((a, b) => a - b)).toEqual(ids.map((_, i) => i));
    expect(receiver.verifierDisagreements).toBe(0);
    for (const b of receiver.batches)
      expect(b.batch).toMatchObject({ gatewayId: 'gw-test', egressCidrs: ['203.0.113.0/28'], agent: { version: '0.0.0-test' } });

    // /metrics after delivery (counters move once the ack is durable: poll until they settle).
    await vi.waitFor(
      async () => {
        const up = await fetchMetrics(agent.adminPort);
        const failed = sample(up, 'egress_witness_telemetry_batches_total', { outcome: 'retryable' }) ?? 0;
        expect(failed).toBeGreaterThanOrEqual(1);
        expect(sample(up, 'egress_witness_telemetry_batches_total', { outcome: 'success' })).toBe(receiver.batches.length);
        expect(sample(up, 'egress_witness_telemetry_records_total')).toBe(receiver.records().length);
        // Everything accepted into the spool arrived: the counts an operator compares with the detector's.
        expect(sample(up, 'egress_witness_spool_appended_records_total')).toBe(receiver.records().length);
        expect(sample(up, 'egress_witness_spool_appended_batches_total')).toBe(receiver.batches.length);
        expect(sample(up, 'egress_witness_telemetry_send_duration_seconds_count')).toBe(receiver.batches.length + failed);
        expect(sample(up, 'egress_witness_spool_batches')).toBe(0);
        expect(sample(up, 'egress_witness_spool_bytes')).toBe(0);
        expect(sample(up, 'egress_witness_spool_oldest_age_seconds')).toBe(0);
      },
      { timeout: 5_000, interval: 50 },
    );
  });

  it('exposes every telemetry metric by name on /metrics', async () => {
    const receiver = await rig.startReceiver();
    const agent = await rig.startAgent('metrics');
    await waitFor(
      async () => (sample(await fetchMetrics(agent.adminPort), 'egress_witness_telemetry_records_total') ?? 0) >= 1,
      'the first batch acknowledged',
    );
    expect(receiver.batches.length).toBeGreaterThanOrEqual(1);
    const text = await fetchMetrics(agent.adminPort);
    for (const name of [
      'egress_witness_spool_bytes',
      'egress_witness_spool_batches',
      'egress_witness_spool_oldest_age_seconds',
      'egress_witness_telemetry_records_total',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# TYPE ${name} (gauge|counter)$`, 'm'));
      expect(sample(text, name), name).toBeTypeOf('number');
    }
    expect(text).toMatch(/^# TYPE egress_witness_telemetry_batches_total counter$/m);
    expect(sample(text, 'egress_witness_telemetry_batches_total', { outcome: 'success' })).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^# TYPE egress_witness_telemetry_send_duration_seconds histogram$/m);
    expect(sample(text, 'egress_witness_telemetry_send_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^egress_witness_telemetry_send_duration_seconds_bucket\{le="\+Inf"\} \d+$/m);
    expect(sample(text, 'egress_witness_telemetry_records_total')).toBeGreaterThanOrEqual(1);
  });

  it('writes heartbeats beside observations to the NDJSON sink, in the documented shape', async () => {
    await rig.startReceiver();
    const file = rig.path('shape.ndjson');
    const agent = await rig.startAgent('shape', { file });
    await runTunnels(agent.proxyPort, ['sts.us-east-1.amazonaws.com', 'sts.us-east-1.amazonaws.com', 'kms.eu-west-1.amazonaws.com']);
    await waitFor(
      async () => (await readNdjson(file)).filter((r) => r.type === 'heartbeat').length >= 2 && observedCount(await readNdjson(file)) === 3,
      'two heartbeats and three observed tunnels',
      5_000,
    );

    const lines = await readNdjson(file);
    for (const line of lines) expect(validateRecord(line), JSON.stringify(line)).toMatchObject({ ok: true });
    const heartbeats = lines.filter((r) => r.type === 'heartbeat');
    for (const hb of heartbeats) {
      expect(hb).toMatchObject({ type: 'heartbeat', gatewayId: 'gw-test', agentVersion: '0.0.0-test', inspect: false });
      expect(hb.time).toMatch(ISO);
      expect(hb.startedAt).toMatch(ISO);
      expect(hb.uptimeSeconds).toBeTypeOf('number');
      expect(hb.uptimeSeconds as number).toBeGreaterThanOrEqual(0);
      expect(Object.keys(hb.counts as object)).toEqual(
        expect.arrayContaining(['observed', 'aggregated', 'dropped', 'notAws', 'activeTunnels']),
      );
      expect(hb.spool).toEqual({ batches: expect.any(Number), bytes: expect.any(Number) });
    }
    expect(Date.parse(heartbeats[1]!.time as string)).toBeGreaterThan(Date.parse(heartbeats[0]!.time as string));

    const observations = lines.filter((r) => r.type === 'observation');
    const sts = observations.find((o) => o.host === 'sts.us-east-1.amazonaws.com');
    expect(sts).toMatchObject({
      gatewayId: 'gw-test',
      mode: 'tunnel',
      port: 443,
      count: 2,
      outcome: 'ok',
      aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
      network: 'lab',
    });
    for (const o of observations) {
      expect(o.firstSeen).toMatch(ISO);
      expect(o.lastSeen).toMatch(ISO);
      expect(Date.parse(o.lastSeen as string)).toBeGreaterThanOrEqual(Date.parse(o.firstSeen as string));
    }
  });

  it('keeps non-AWS destinations out of the records unless telemetry.observe_all is set', async () => {
    const file = rig.path('observe-all.ndjson');
    const start = (observeAll: boolean, f: string) =>
      rig.startAgent('observe-all', {
        detectorUrl: null,
        secretFile: null,
        file: f,
        telemetry: { observe_all: observeAll },
        override: {
          upstream: {
            resolve: { '*.amazonaws.com': `127.0.0.1:${rig.upstream.port}`, 'intranet.example.test': `127.0.0.1:${rig.upstream.port}` },
          },
        },
      });
    let agent = await start(false, rig.path('observe-aws-only.ndjson'));
    await runTunnels(agent.proxyPort, ['intranet.example.test', 'sts.us-east-1.amazonaws.com']);
    await flushWhenIdle(agent);
    expect((await readNdjson(rig.path('observe-aws-only.ndjson'))).filter((r) => r.type === 'observation').map((o) => o.host)).toEqual([
      'sts.us-east-1.amazonaws.com',
    ]);
    await agent.stop();

    agent = await start(true, file);
    await runTunnels(agent.proxyPort, ['intranet.example.test', 'sts.us-east-1.amazonaws.com']);
    await flushWhenIdle(agent);
    const hosts = (await readNdjson(file)).filter((r) => r.type === 'observation').map((o) => o.host);
    expect(hosts.sort()).toEqual(['intranet.example.test', 'sts.us-east-1.amazonaws.com']);
  });
});

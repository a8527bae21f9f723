// Shipping is never in the data path: with the spool at its cap and the
// detector down, the oldest batches go (counted, logged) and tunnels keep
// working; with the detector hanging, tunnels still complete.
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { Registry } from 'prom-client';
import { createAgentMetrics } from '../../../agent/metrics/metrics.js';
import { Shipper } from '../../../agent/ship/shipper.js';
import { Spool } from '../../../agent/ship/spool.js';
import { logSink } from '../../helpers/log-sink.js';
import { freePort } from '../../helpers/telemetry-receiver.js';
import { awsHosts, fetchMetrics, flushWhenIdle, observedCount, readNdjson, runTunnels, sample, useTelemetryRig, waitFor } from './rig.js';

const SECRET = 'backpressure-secret-0123456789abcdef';
const CAP = 4 * 1024;

// The receiver stops first after each test: hung requests fail at once, so the agent's stop does not wait on them.
const rig = useTelemetryRig('backpressure', SECRET, { stopReceiverFirst: true });

const roundOf = (host: string): number => Number(/^cap(\d+)-/.exec(host)?.[1] ?? -1);

describe('spool cap and a stuck detector', () => {
  it('drops the oldest batches at spool_max_bytes, counts and logs them, and keeps proxying', async () => {
    const port = await freePort();
    const receiver = await rig.startReceiver({ port, listen: false });
    const file = rig.path('cap.ndjson');
    const agent = await rig.startAgent('cap', { file, telemetry: { spool_max_bytes: '4KiB' } });

    const rounds = 12;
    for (let r = 0; r < rounds; r++) {
      await runTunnels(agent.proxyPort, awsHosts(`cap${r}`, 10)); // every tunnel must echo: proxying is unaffected
      await flushWhenIdle(agent);
    }
    expect(observedCount(await readNdjson(file))).toBe(rounds * 10);

    const full = await fetchMetrics(agent.adminPort);
    const dropped = sample(full, 'egress_witness_spool_dropped_batches_total')!;
    expect(dropped).toBeGreaterThan(0);
    expect(sample(full, 'egress_witness_spool_bytes')).toBeLessThanOrEqual(CAP);
    expect(sample(full, 'egress_witness_spool_bytes')).toBeGreaterThan(CAP / 2);
    const logged = agent.logs.find('spool_batch_dropped');
    expect(logged).toHaveLength(dropped);
    for (const l of logged) expect(l).toMatchObject({ level: 'error', reason: 'overflow' });

    // Detector up: what is left arrives; what was dropped never does, and it was the oldest.
    await receiver.start();
    await waitFor(
      () => (agent.app.status().spool as { batches: number }).batches === 0 && receiver.batches.length > 0,
      'the spool drained',
      10_000,
    );
    const droppedIds = new Set(logged.map((l) => l.batch_id as string));
    expect(receiver.batches.filter((b) => droppedIds.has(b.batch.batchId))).toEqual([]);
    const receivedRounds = [...new Set(receiver.observations().map((o) => roundOf(o.host)))].sort((a, b) => a - b);
    expect(receivedRounds.at(-1)).toBe(rounds - 1);
    expect(receivedRounds[0]).toBeGreaterThan(0);
    expect(receivedRounds).toEqual(Array.from({ length: receivedRounds.length }, (_, i) => receivedRounds[0]! + i));
    // Every batch the sink sealed either arrived or was dropped (sequences 0..n-1, no other loss).
    const maxSeq = Math.max(...receiver.batches.map((b) => b.batch.sequence));
    expect(
      receiver.batches.length + Number(sample(await fetchMetrics(agent.adminPort), 'egress_witness_spool_dropped_batches_total')),
    ).toBe(maxSeq + 1);
  });

  it('completes 50 tunnels while the detector accepts connections and never answers', async () => {
    const receiver = await rig.startReceiver();
    receiver.hang(true);
    const file = rig.path('hang.ndjson');
    const agent = await rig.startAgent('hang', { file });
    await waitFor(() => receiver.attempts.some((a) => a.outcome === 'hanging'), 'a send hanging at the detector');

    const started = Date.now();
    await runTunnels(
      agent.proxyPort,
      Array.from({ length: 50 }, (_, i) => `sts.${['us-east-1', 'eu-west-1', 'ap-south-1'][i % 3]!}.amazonaws.com`),
      10,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    await flushWhenIdle(agent);
    expect(observedCount(await readNdjson(file))).toBe(50);
    expect(rig.upstream.connections()).toBeGreaterThanOrEqual(50);
    expect(receiver.batches).toHaveLength(0);
    expect((agent.app.status().spool as { inFlight: number }).inFlight).toBeGreaterThanOrEqual(1);

    // The detector answers again (the held requests too): the batches follow.
    receiver.hang(false);
    await waitFor(() => observedCount(receiver.records()) === 50, 'all 50 tunnels delivered', 10_000);
  });

  // Known bug (reported, not fixed here): Shipper.stop() races the in-flight
  // sends against its timeout, then awaits undici's dispatcher.close(), which
  // waits for those same requests — so a detector that never answers holds
  // shutdown for requestTimeoutMs (30 s by default) instead of the bound.
  it('stops within its timeout while a send hangs (shutdown bounded)', async () => {
    const receiver = await rig.startReceiver();
    receiver.hang(true);
    const spool = await Spool.open({ dir: rig.path('spool-stop-bound'), maxBytes: 1 << 20 });
    const batch = {
      schemaVersion: 1,
      batchId: 'stop-bound-batch-1',
      gatewayId: 'gw-test',
      agent: { version: 't', startedAt: new Date().toISOString() },
      sequence: 0,
      egressCidrs: [],
      sentAt: new Date().toISOString(),
      records: [],
    };
    await spool.append(batch.batchId, gzipSync(JSON.stringify(batch)));
    const shipper = new Shipper({
      url: receiver.url,
      gatewayId: 'gw-test',
      secret: Buffer.from(SECRET),
      spool,
      maxInFlight: 1,
      metrics: createAgentMetrics(new Registry(), { version: 't', nodeVersion: process.versions.node }),
      logger: logSink().logger,
      now: Date.now,
      requestTimeoutMs: 2_000,
    });
    try {
      shipper.kick();
      await waitFor(() => receiver.attempts.some((a) => a.outcome === 'hanging'), 'the send hanging at the detector');
      const started = Date.now();
      await shipper.stop(200);
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      await receiver.stop();
      await shipper.stop(0);
      await spool.close();
    }
  });
});

// How the shipper treats the detector's answers: 503 + Retry-After is
// honoured, 400 dead-letters that one batch while later ones flow, 413 splits
// the batch (never a retry of the same bytes), 401 is retried slowly and
// loudly — also when it comes from a real key mismatch.
import { beforeAll, describe, expect, it } from 'vitest';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { awsHosts, fetchMetrics, flushWhenIdle, runTunnels, sample, sleep, useTelemetryRig, waitFor, writeSecretFile } from './rig.js';

const SECRET = 'responses-secret-0123456789abcdef';

const rig = useTelemetryRig('responses', SECRET);

beforeAll(() => writeSecretFile(rig.path('wrong-secret'), 'a-different-secret-for-this-gateway'));

describe('detector answers', () => {
  it('waits out Retry-After: 2 after a 503 (no attempt before ~2 s), then delivers the same batch', async () => {
    const receiver = await rig.startReceiver();
    receiver.script({ status: 503, headers: { 'retry-after': '2' } });
    const agent = await rig.startAgent('retry-after');
    await waitFor(() => receiver.attempts.length >= 1, 'the first attempt');
    const first = receiver.attempts[0]!;
    expect(first).toMatchObject({ status: 503, outcome: 'scripted' });
    await waitFor(
      () => receiver.batches.some((b) => b.batch.batchId === first.batchId),
      'the refused batch delivered after the wait',
      6_000,
    );

    const later = receiver.attempts.slice(1);
    expect(later.length).toBeGreaterThanOrEqual(1);
    // Retry-After is 2 s; the agent pauses from when it read the answer, so no request arrives sooner (20 ms for clock granularity).
    for (const a of later) expect(a.at - first.at).toBeGreaterThanOrEqual(1_980);
    const retry = agent.logs.find('telemetry_retry');
    expect(retry).toHaveLength(1);
    expect(retry[0]).toMatchObject({ level: 'warn', batch_id: first.batchId, attempt: 1 });
    expect(retry[0]!.reason).toMatch(/^http-503/);
    expect(retry[0]!.retry_in_ms).toBeGreaterThanOrEqual(2_000);
    const metrics = await fetchMetrics(agent.adminPort);
    expect(sample(metrics, 'egress_witness_telemetry_batches_total', { outcome: 'retryable' })).toBe(1);
  });

  it('dead-letters a batch refused with 400, and later batches still flow', async () => {
    const receiver = await rig.startReceiver();
    receiver.script({ status: 400, body: '{"error":"schema"}' });
    const agent = await rig.startAgent('dead-letter');
    const deadDir = join(rig.dir.path, 'spool-dead-letter', 'dead-letter');
    // Written as <name>.tmp and renamed: wait for the two final names.
    const finals = async (): Promise<string[]> => (await readdir(deadDir).catch(() => [] as string[])).filter((f) => !f.endsWith('.tmp'));
    await waitFor(async () => (await finals()).length === 2, 'two dead-letter files');
    const refused = receiver.attempts[0]!;
    expect(refused).toMatchObject({ status: 400, outcome: 'scripted' });
    expect((await finals()).sort()).toEqual([`${refused.batchId}.bin`, `${refused.batchId}.json`]);
    // The dead-lettered bytes are the batch exactly as it was sent.
    const kept = JSON.parse(gunzipSync(await readFile(join(deadDir, `${refused.batchId}.bin`))).toString()) as { batchId: string };
    expect(kept.batchId).toBe(refused.batchId);
    const meta = JSON.parse(await readFile(join(deadDir, `${refused.batchId}.json`), 'utf8')) as Record<string, unknown>;
    expect(meta).toMatchObject({ id: refused.batchId, attempts: 0 });
    expect(meta.reason).toMatch(/^400 bad-request/);

    await runTunnels(agent.proxyPort, ['sts.us-east-1.amazonaws.com', 'ec2.eu-west-1.amazonaws.com']);
    await waitFor(() => receiver.observations().length === 2, 'later observations delivered');
    expect(receiver.batches.some((b) => b.batch.batchId === refused.batchId)).toBe(false);
    expect(receiver.attempts.filter((a) => a.batchId === refused.batchId)).toHaveLength(1);
    const metrics = await fetchMetrics(agent.adminPort);
    expect(sample(metrics, 'egress_witness_spool_dead_lettered_batches_total')).toBe(1);
    expect(sample(metrics, 'egress_witness_telemetry_batches_total', { outcome: 'permanent' })).toBe(1);
    expect(agent.logs.find('batch_dead_lettered')).toEqual([
      expect.objectContaining({ level: 'error', batch_id: refused.batchId, status: 400 }),
    ]);
  });

  it('413: splits the batch in halves until they fit, never sending the same bytes twice, and loses no record', async () => {
    const receiver = await rig.startReceiver({ maxBodyBytes: 600 });
    const agent = await rig.startAgent('too-large', { telemetry: { flush_interval: '1h', heartbeat_interval: '1h' } });
    const hosts = awsHosts('split', 100);
    await runTunnels(agent.proxyPort, hosts);
    await flushWhenIdle(agent); // one flush, one batch of 100 records (gzip: well over 600 bytes; one record: well under)
    await waitFor(() => receiver.observations().length === 100, 'every observation delivered', 10_000);
    const refused = receiver.attempts.filter((a) => a.status === 413);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    // Each refused batch was sent once: what came back was its halves, under derived ids.
    const sent = receiver.attempts.map((a) => a.batchId);
    for (const r of refused) {
      expect(sent.filter((id) => id === r.batchId)).toHaveLength(1);
      expect(sent).toEqual(expect.arrayContaining([`${r.batchId}-1`, `${r.batchId}-2`]));
    }
    expect(new Set(receiver.observations().map((o) => o.host))).toEqual(new Set(hosts));
    expect(receiver.duplicates).toEqual([]);
    const metrics = await fetchMetrics(agent.adminPort);
    expect(sample(metrics, 'egress_witness_telemetry_split_batches_total')).toBe(refused.length);
    expect(sample(metrics, 'egress_witness_spool_dead_lettered_batches_total')).toBe(0);
    expect(agent.logs.find('batch_split')[0]).toMatchObject({ level: 'warn', batch_id: refused[0]!.batchId });
  });

  it('413 for a batch of one record: dead-lettered, not retried', async () => {
    const receiver = await rig.startReceiver({ maxBodyBytes: 10 });
    const agent = await rig.startAgent('too-large-one', { telemetry: { heartbeat_interval: '1h' } });
    await runTunnels(agent.proxyPort, ['sts.us-east-1.amazonaws.com']);
    const deadDir = join(rig.dir.path, 'spool-too-large-one', 'dead-letter');
    const metaFiles = async (): Promise<string[]> =>
      (await readdir(deadDir).catch(() => [] as string[])).filter((f) => /^[\w-]+\.json$/.test(f));
    await waitFor(async () => (await metaFiles()).length >= 1, 'a dead-letter record');
    const [meta] = await metaFiles();
    const kept = JSON.parse(await readFile(join(deadDir, meta!), 'utf8')) as { id: string; reason: string };
    expect(kept.reason).toMatch(/^413 payload-too-large/);
    expect(receiver.attempts.filter((a) => a.batchId === kept.id)).toHaveLength(1);
    expect(receiver.batches).toHaveLength(0);
  });

  it('retries slowly after a 401 and logs it at error level', async () => {
    const receiver = await rig.startReceiver();
    receiver.script({ status: 401 });
    const agent = await rig.startAgent('unauthorized');
    await waitFor(() => agent.logs.find('telemetry_unauthorized').length === 1, 'the unauthorized log line');
    // Heartbeats keep joining the spool, yet nothing is sent for a while (the slow wait is minutes).
    await sleep(800);
    expect(receiver.attempts).toHaveLength(1);
    expect(receiver.attempts[0]).toMatchObject({ status: 401 });
    expect((agent.app.status().spool as { batches: number }).batches).toBeGreaterThanOrEqual(2);
    const line = agent.logs.find('telemetry_unauthorized')[0]!;
    expect(line).toMatchObject({ level: 'error', status: 401 });
    expect(line.retry_in_ms).toBeGreaterThanOrEqual(60_000);
    const metrics = await fetchMetrics(agent.adminPort);
    expect(sample(metrics, 'egress_witness_telemetry_batches_total', { outcome: 'unauthorized' })).toBe(1);
    expect(sample(metrics, 'egress_witness_spool_dead_lettered_batches_total')).toBe(0);
  });

  it("an agent whose secret differs from the detector's is refused (401, signature mismatch) and says so loudly", async () => {
    const receiver = await rig.startReceiver();
    const agent = await rig.startAgent('wrong-secret', { secretFile: 'wrong-secret' });
    await waitFor(() => agent.logs.find('telemetry_unauthorized').length >= 1, 'the unauthorized log line');
    expect(receiver.attempts[0]).toMatchObject({ status: 401, outcome: 'unauthorized', reason: 'mismatch' });
    expect(receiver.batches).toHaveLength(0);
    expect(receiver.verifierDisagreements).toBe(0);
    expect(agent.logs.find('telemetry_unauthorized')[0]).toMatchObject({ level: 'error', status: 401 });
    // The secret itself never reaches the logs.
    expect(agent.logs.raw.join('\n')).not.toContain('a-different-secret');
  });
});

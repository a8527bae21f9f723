/**
 * Telemetry throughput in-process, on the agent's own modules: distinct
 * observations → Aggregator → SpoolSink (JSON, gzip, spool append with fsync)
 * → Shipper (signed POST) → the bench's receiver, until the spool is empty.
 * Every observation is distinct (its own access key), the worst case for
 * aggregation.
 */
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { agentConfigSchema } from '../../agent/config/schema.js';
import { createAgentMetrics } from '../../agent/metrics/metrics.js';
import { Aggregator } from '../../agent/observe/model/aggregator.js';
import type { ObservationEvent } from '../../agent/observe/model/observation.js';
import { buildTelemetryShipping } from '../../agent/ship/telemetry-shipping.js';
import { createLogger } from '../../common/log/logger.js';
import { writeFileSync, mkdirSync } from 'node:fs';
import { accessKeyId } from '../load/requests.js';
import type { Scenario } from '../lib/scenario.js';
import { sleep } from '../lib/proc.js';

function event(i: number, now: number): ObservationEvent {
  return {
    startedAt: now - 5,
    endedAt: now,
    clientIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    network: 'vpc-prod',
    mode: 'inspect',
    capture: 'explicit',
    host: 'sts.us-east-1.amazonaws.com',
    port: 443,
    resolvedIp: '127.0.0.1',
    originalIp: null,
    aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
    key: {
      accessKeyId: accessKeyId(100_000 + i),
      keyKind: 'temporary',
      accountId: '123456789012',
      sessionToken: true,
      signatureVersion: 'v4',
      auth: 'header',
    },
    action: 'GetCallerIdentity',
    bytesUp: 1024,
    bytesDown: 1024,
    outcome: 'ok',
    reason: null,
    status: 200,
  };
}

const scenario: Scenario = {
  name: 'telemetry-pipeline',
  order: 20,
  title: 'telemetry records/s: aggregator → spool (gzip, fsync) → shipper → local receiver',
  async run(ctx) {
    const dir = join(ctx.tmp, 'telemetry-pipeline');
    mkdirSync(dir, { recursive: true });
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, 'bench-secret-0123456789abcdef\n', { mode: 0o600 });
    const parsed = agentConfigSchema.safeParse({
      gateway: { id: 'gw-bench', egress_cidrs: ['203.0.113.0/28'] },
      networks: [{ name: 'vpc-prod', cidrs: ['10.0.0.0/8'] }],
      telemetry: { spool_dir: join(dir, 'spool'), detector_url: ctx.receiver.url, secret_file: secretFile },
    });
    if (!parsed.success) throw new Error(`telemetry config: ${parsed.error.message}`);
    const config = parsed.data;
    const metrics = createAgentMetrics(new Registry(), { version: 'bench', nodeVersion: process.version });
    const logger = createLogger({ name: 'bench', level: 'silent' });
    const shipping = await buildTelemetryShipping(config, { metrics, logger, now: Date.now, version: 'bench', startedAt: Date.now() });
    if (!shipping) throw new Error('telemetry shipping was not built');
    shipping.start();
    const aggregator = new Aggregator({ gatewayId: 'gw-bench', maxPending: config.telemetry.max_pending_records, observeAll: false });
    const total = ctx.preset.telemetryRecords;
    const window = Math.min(config.telemetry.max_pending_records, Math.max(1000, Math.floor(total / 4)));
    const before = await ctx.receiver.stats();

    let observeMs = 0;
    let sealMs = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < total; i += window) {
      const now = Date.now();
      let t = performance.now();
      for (let j = i; j < Math.min(total, i + window); j++) aggregator.observe(event(j, now));
      const records = aggregator.drain();
      observeMs += performance.now() - t;
      t = performance.now();
      await shipping.sink.write(records);
      sealMs += performance.now() - t;
    }
    const deadline = Date.now() + 120_000;
    while (shipping.stats().batches > 0 && Date.now() < deadline) await sleep(2);
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const left = shipping.stats().batches;
    await shipping.stop();
    const after = await ctx.receiver.stats();
    const batches = after.batches - before.batches;
    const tailMs = Math.max(0, wallMs - observeMs - sealMs);
    const base = { scenario: 'telemetry-pipeline', peer: null, subject: 'ew telemetry', better: 'higher' as const, unit: 'records/s' };
    ctx.record({
      ...base,
      metric: 'end to end',
      value: left === 0 ? total / (wallMs / 1000) : null,
      skipped: left === 0 ? undefined : `${left} batches still spooled after 120 s`,
      proxyCpuPct: (100 * (cpu.user + cpu.system)) / 1000 / wallMs,
      note: `${total} distinct records in ${batches} batches, ${((after.bytes - before.bytes) / 1e6).toFixed(1)} MB gzip, last ack ${tailMs.toFixed(0)} ms after the last seal; cpu = the pipeline's`,
    });
    ctx.record({ ...base, metric: 'aggregate', value: total / (observeMs / 1000), note: 'observe() + drain()' });
    ctx.record({ ...base, metric: 'seal + spool', value: total / (sealMs / 1000), note: 'JSON + gzip + append + fsync' });
  },
};

export default scenario;

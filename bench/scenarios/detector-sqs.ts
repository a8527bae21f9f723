/**
 * The detector's CloudTrail rate through the trail's bucket: a detector
 * process reads F gzipped log files of R records through cloudtrail.sqs from
 * the loopback queue and bucket (bench/servers/fake-trail.ts, in this
 * process) and decides them into its SQLite store. Side by side in the same
 * run, the same files through cloudtrail.watch_dir of the same daemon: the
 * two differ only in how the files arrive. Reported: records decided per
 * second (first receive to an empty queue; first scan to the last file done)
 * and the detector's CPU per record. Goal: the same order as replay's
 * 50,000 records/s, with the fakes not the limit (their CPU is reported).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import YAML from 'yaml';
import { fakeTrailEnv, startFakeTrail } from '../servers/fake-trail.js';
import { benchCloudTrailRecord } from '../lib/cloudtrail-record.js';
import { scrape } from '../lib/prom-text.js';
import { cpuMs, freePort, sleep, spawnLogged, stopChild, waitForPort } from '../lib/proc.js';
import type { BenchContext, Scenario } from '../lib/scenario.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
const BUCKET = 'bench-org-trail';

function logFile(records: number, at: number): Buffer {
  const out = [];
  for (let i = 0; i < records; i++) {
    out.push(
      benchCloudTrailRecord({
        eventId: randomUUID(),
        requestId: randomUUID(),
        eventTimeMs: at - (i % 600) * 1000,
        accessKeyId: `ASIA${String(i % 5_000).padStart(16, 'Q')}`,
        // 90 % from the gateway (no telemetry here: unattested, pending the grace period), 10 % outside.
        sourceIp: i % 10 === 0 ? '198.51.100.7' : '203.0.113.5',
        sessionCreatedMs: at - 3_600_000,
      }),
    );
  }
  return gzipSync(JSON.stringify({ Records: out }), { level: 6 });
}

interface Measured {
  records: number;
  seconds: number;
  detectorCpuMs: number;
}

async function runDetector(
  ctx: BenchContext,
  name: string,
  cloudtrail: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  begun: () => boolean,
  done: (admin: number) => Promise<boolean>,
): Promise<{ seconds: number; cpuMs: number }> {
  const dir = join(ctx.tmp, name);
  mkdirSync(dir, { recursive: true });
  const admin = await freePort();
  writeFileSync(join(dir, 'gw.key'), 'bench-detector-sqs-secret-0123456789\n', { mode: 0o600 });
  const config = {
    listen: `127.0.0.1:${await freePort()}`,
    admin: { listen: `127.0.0.1:${admin}` },
    store: { path: join(dir, 'detector.db') },
    gateways: [{ id: 'gw-bench', egress_cidrs: ['203.0.113.0/28'], secret_file: join(dir, 'gw.key') }],
    cloudtrail,
    log: { level: 'warn' },
  };
  writeFileSync(join(dir, 'detector.yaml'), YAML.stringify(config));
  const child = spawnLogged(process.execPath, [CLI, 'detector', '--config', join(dir, 'detector.yaml')], {
    logFile: join(dir, 'detector.log'),
    env,
  });
  try {
    await waitForPort(admin, 30_000, () => child.exitCode === null);
    while (!begun()) await sleep(5);
    const t0 = performance.now();
    const cpu0 = cpuMs(child.pid!) ?? 0;
    while (!(await done(admin))) {
      if (child.exitCode !== null) throw new Error(`${name}: the detector exited (${join(dir, 'detector.log')})`);
      await sleep(20);
    }
    return { seconds: (performance.now() - t0) / 1000, cpuMs: (cpuMs(child.pid!) ?? 0) - cpu0 };
  } finally {
    await stopChild(child);
  }
}

function record(ctx: BenchContext, subject: string, m: Measured, note: string): void {
  const base = { scenario: 'detector-sqs', peer: null, subject };
  ctx.record({ ...base, metric: 'CloudTrail records decided/s', unit: 'records/s', better: 'higher', value: m.records / m.seconds, note });
  ctx.record({ ...base, metric: 'detector CPU per record', unit: 'µs', better: 'lower', value: (m.detectorCpuMs * 1000) / m.records });
}

const scenario: Scenario = {
  name: 'detector-sqs',
  order: 95,
  title: 'detector: CloudTrail records decided per second from the bucket through SQS, beside the watch directory',
  async run(ctx) {
    const files = ctx.args.quick ? 10 : 100;
    const perFile = ctx.args.quick ? 500 : 1_000;
    const now = Date.now();
    ctx.log(`detector-sqs: writing ${files} log files of ${perFile} records`);
    const bodies = Array.from({ length: files }, (_, n) => ({ n, body: logFile(perFile, now - n * 1000) }));
    const day = new Date(now).toISOString().slice(0, 10).replace(/-/g, '/');
    const keyOf = (n: number): string =>
      `AWSLogs/123456789012/CloudTrail/us-east-1/${day}/123456789012_CloudTrail_us-east-1_20261125T0000Z_${n}.json.gz`;

    const fake = await startFakeTrail();
    try {
      for (const { n, body } of bodies) {
        fake.putObject(BUCKET, keyOf(n), body);
        fake.notify(BUCKET, [keyOf(n)]);
      }
      const fakeCpu0 = process.cpuUsage();
      const sqs = await runDetector(
        ctx,
        'detector-sqs',
        { sqs: { queue_url: fake.queueUrl, region: 'us-east-1', wait_time: '1s', concurrency: 4 } },
        {
          ...process.env,
          ...fakeTrailEnv(fake.endpoint),
        },
        () => (fake.calls.get('ReceiveMessage') ?? 0) > 0,
        () => Promise.resolve(fake.depth() === 0),
      );
      const fakeCpu = process.cpuUsage(fakeCpu0);
      const fakePct = Math.round((100 * (fakeCpu.user + fakeCpu.system)) / 1000 / (sqs.seconds * 1000));
      record(
        ctx,
        'detector cloudtrail.sqs',
        { records: files * perFile, seconds: sqs.seconds, detectorCpuMs: sqs.cpuMs },
        `${files} files × ${perFile} records; the fake queue and bucket used ${fakePct} % of a core`,
      );
    } finally {
      await fake.close();
    }

    const watchDir = join(ctx.tmp, 'detector-sqs-watch');
    for (const { n, body } of bodies) {
      const path = join(watchDir, keyOf(n));
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, body);
    }
    await sleep(2_100); // files modified in the last 2 s wait for the next scan
    let firstScan = false;
    const watch = await runDetector(
      ctx,
      'detector-watch',
      { watch_dir: watchDir, poll_interval: '100ms' },
      process.env,
      () => (firstScan = true),
      async (admin) => {
        const m = await scrape(admin);
        return (m.get('egress_witness_detector_cloudtrail_files_total') ?? 0) >= files && firstScan;
      },
    );
    record(
      ctx,
      'detector cloudtrail.watch_dir',
      { records: files * perFile, seconds: watch.seconds, detectorCpuMs: watch.cpuMs },
      'the same files from a local folder: the baseline',
    );
  },
};

export default scenario;

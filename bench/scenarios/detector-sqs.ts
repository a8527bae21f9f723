/**
 * The detector's CloudTrail rate through the trail's bucket: a detector
 * process reads F gzipped log files of R records through cloudtrail.sqs from
 * the loopback queue and bucket (bench/servers/fake-trail.ts, in this
 * process) and decides them into its SQLite store. Side by side in the same
 * run, the same files through cloudtrail.watch_dir of the same daemon: the
 * two differ only in how the files arrive. Reported: records decided per
 * second (the files queued or moved into the folder, to an empty queue or
 * the last file done) and the detector's CPU per record. Goal: the same
 * order as replay's 50,000 records/s, with the fakes not the limit (their
 * CPU is reported).
 *
 * As the trail delivers them, the events are 20 to 30 minutes old, past the
 * grace period, and the gateway's telemetry for their keys is in the store
 * before the first file comes: each record is decided for good (90 %
 * attested, 10 % from outside, merged into findings), none waits as pending.
 * The decisions by disposition and the pending count are in each row's note.
 */
import { mkdirSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { fakeTrailEnv, startFakeTrail } from '../servers/fake-trail.js';
import { postTelemetryBatch, telemetryBatch, trailLogFile } from '../lib/detector-feed.js';
import { benchObservation } from '../lib/replay-corpus.js';
import { scrape } from '../lib/prom-text.js';
import { cpuMs, freePort, sleep, spawnLogged, stopChild, waitForPort } from '../lib/proc.js';
import type { BenchContext, Scenario } from '../lib/scenario.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
const BUCKET = 'bench-org-trail';
const SECRET = 'bench-detector-sqs-secret-0123456789';
const KEYS = 5_000;
/** How old the newest event of the first file is: past the default grace period of 10 minutes. */
const AGE_MS = 20 * 60_000;

const keyOf = (k: number): string => `ASIA${String(k).padStart(16, 'Q')}`;
/** When record i of a file whose newest event is at `at` happened: up to 10 minutes before. */
const eventTime = (at: number, i: number): number => at - (i % 600) * 1000;

/**
 * The gateway's telemetry for every key, signed as an agent ships it: key k seen by a routed
 * client at the time of its records (file 0's; the other files' are within 2 minutes of it, inside
 * the 5-minute correlation window).
 */
function telemetryBodies(at: number): { batchId: string; body: Buffer }[] {
  const perBatch = 1_000;
  return Array.from({ length: KEYS / perBatch }, (_, b) =>
    telemetryBatch(
      b,
      Array.from({ length: perBatch }, (_, j) => {
        const k = b * perBatch + j;
        return { ...benchObservation(eventTime(at, k) - 60_000, keyOf(k), `10.20.${k % 250}.4`), status: { '2xx': 3 } };
      }),
    ),
  );
}

/** Posts the telemetry to the detector's ingest endpoint, one batch after another. */
async function postTelemetry(port: number, bodies: readonly { batchId: string; body: Buffer }[]): Promise<void> {
  for (const batch of bodies) {
    const status = await postTelemetryBatch(port, SECRET, batch);
    if (status !== 200) throw new Error(`detector-sqs: a telemetry batch was answered ${status}`);
  }
}

/** The detector's CloudTrail decisions by disposition, and the records still pending, from its metrics. */
async function decisionsOf(admin: number): Promise<{ byDisposition: Record<string, number>; pending: number }> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const byDisposition: Record<string, number> = {};
  for (const m of text.matchAll(/^egress_witness_detector_decisions_total\{[^}]*disposition="(\w+)"[^}]*\} (\S+)$/gm))
    byDisposition[m[1]!] = (byDisposition[m[1]!] ?? 0) + Number(m[2]);
  const pending = /^egress_witness_detector_pending_decisions(?:\{[^}]*\})? (\S+)$/m.exec(text);
  return { byDisposition, pending: Number(pending?.[1] ?? 0) };
}

interface Measured {
  records: number;
  seconds: number;
  detectorCpuMs: number;
  decided: { byDisposition: Record<string, number>; pending: number };
}

/**
 * A detector on a fresh SQLite store: once it listens, the telemetry is posted and `start` hands
 * it the files; timed from then until `done`.
 */
async function runDetector(
  ctx: BenchContext,
  name: string,
  cloudtrail: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  telemetry: readonly { batchId: string; body: Buffer }[],
  start: () => void,
  done: (admin: number) => Promise<boolean>,
): Promise<Omit<Measured, 'records'>> {
  const dir = join(ctx.tmp, name);
  mkdirSync(dir, { recursive: true });
  const admin = await freePort();
  const ingest = await freePort();
  writeFileSync(join(dir, 'gw.key'), `${SECRET}\n`, { mode: 0o600 });
  const config = {
    listen: `127.0.0.1:${ingest}`,
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
    await waitForPort(ingest, 30_000, () => child.exitCode === null);
    await postTelemetry(ingest, telemetry);
    const cpu0 = cpuMs(child.pid!) ?? 0;
    const t0 = performance.now();
    start();
    while (!(await done(admin))) {
      if (child.exitCode !== null) throw new Error(`${name}: the detector exited (${join(dir, 'detector.log')})`);
      await sleep(20);
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (cpuMs(child.pid!) ?? 0) - cpu0;
    return { seconds, detectorCpuMs: cpu, decided: await decisionsOf(admin) };
  } finally {
    await stopChild(child);
  }
}

function record(ctx: BenchContext, subject: string, m: Measured, note: string): void {
  const base = { scenario: 'detector-sqs', peer: null, subject };
  const d = m.decided.byDisposition;
  const decided = Object.values(d).reduce((a, b) => a + b, 0);
  // A rate of records parked as pending, or of files skipped, would not be a decision rate.
  if (decided < m.records * 0.99 || m.decided.pending > m.records * 0.01)
    throw new Error(`${subject}: ${decided} of ${m.records} records decided, ${m.decided.pending} pending (${JSON.stringify(d)})`);
  const split = `${d.suppressed ?? 0} suppressed, ${d.finding ?? 0} findings, ${m.decided.pending} pending`;
  ctx.record({
    ...base,
    metric: 'CloudTrail records decided/s',
    unit: 'records/s',
    better: 'higher',
    value: m.records / m.seconds,
    note: `${note}; ${split}`,
  });
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
    const bodies = Array.from({ length: files }, (_, n) => ({
      n,
      body: trailLogFile(perFile, now - AGE_MS - n * 1000, (i) => keyOf(i % KEYS)),
    }));
    const telemetry = telemetryBodies(now - AGE_MS);
    const day = new Date(now).toISOString().slice(0, 10).replace(/-/g, '/');
    const objectKey = (n: number): string =>
      `AWSLogs/123456789012/CloudTrail/us-east-1/${day}/123456789012_CloudTrail_us-east-1_20261125T0000Z_${n}.json.gz`;

    const fake = await startFakeTrail();
    try {
      for (const { n, body } of bodies) fake.putObject(BUCKET, objectKey(n), body);
      let fakeCpu0 = process.cpuUsage();
      const sqs = await runDetector(
        ctx,
        'detector-sqs',
        { sqs: { queue_url: fake.queueUrl, region: 'us-east-1', wait_time: '1s', concurrency: 4 } },
        {
          ...process.env,
          ...fakeTrailEnv(fake.endpoint),
        },
        telemetry,
        () => {
          fakeCpu0 = process.cpuUsage();
          for (const { n } of bodies) fake.notify(BUCKET, [objectKey(n)]);
        },
        () => Promise.resolve(fake.depth() === 0),
      );
      const fakeCpu = process.cpuUsage(fakeCpu0);
      const fakePct = Math.round((100 * (fakeCpu.user + fakeCpu.system)) / 1000 / (sqs.seconds * 1000));
      record(
        ctx,
        'detector cloudtrail.sqs',
        { records: files * perFile, ...sqs },
        `${files} files × ${perFile} records; the fake queue and bucket used ${fakePct} % of a core`,
      );
    } finally {
      await fake.close();
    }

    // Written aside with an mtime past the watcher's settling time, and moved into the folder at once.
    const staging = join(ctx.tmp, 'detector-sqs-staging');
    const watchDir = join(ctx.tmp, 'detector-sqs-watch');
    mkdirSync(watchDir, { recursive: true });
    for (const { n, body } of bodies) {
      const path = join(staging, objectKey(n));
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, body);
      utimesSync(path, new Date(now - 60_000), new Date(now - 60_000));
    }
    const watch = await runDetector(
      ctx,
      'detector-watch',
      { watch_dir: watchDir, poll_interval: '100ms' },
      process.env,
      telemetry,
      () => renameSync(join(staging, 'AWSLogs'), join(watchDir, 'AWSLogs')),
      async (admin) => {
        const m = await scrape(admin);
        return (m.get('egress_witness_detector_cloudtrail_files_total') ?? 0) >= files;
      },
    );
    record(
      ctx,
      'detector cloudtrail.watch_dir',
      { records: files * perFile, ...watch },
      'the same files from a local folder: the baseline',
    );
  },
};

export default scenario;

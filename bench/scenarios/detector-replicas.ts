/**
 * The detector on PostgreSQL with one and with three replicas, beside the
 * SQLite baseline of the same run: telemetry records stored per second
 * (signed batches POSTed with 8 in flight, spread round-robin over the
 * replicas) and CloudTrail records decided per second through cloudtrail.sqs
 * (the loopback queue and bucket of bench/servers/fake-trail.ts, shared by the
 * replicas): once with keys no gateway saw (every event a finding), once
 * after the gateway's telemetry for every key (90 % of the events suppressed
 * as attested). Each configuration gets a fresh store: a SQLite file, or a schema
 * of its own on the server named by EW_BENCH_POSTGRES_URL (default the local
 * test server, postgres://postgres@127.0.0.1:5432/test), dropped afterwards.
 * Without a server the PostgreSQL rows are skipped with the reason.
 *
 * Every process shares this machine's cores with the database and the load
 * client, so three replicas here measure contention more than scale-out; the
 * ratio to SQLite is in each row's note.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import YAML from 'yaml';
import { fakeTrailEnv, startFakeTrail } from '../servers/fake-trail.js';
import { postTelemetryBatch, telemetryBatch, trailLogFile } from '../lib/detector-feed.js';
import { benchObservation, corpusKey } from '../lib/replay-corpus.js';
import { metricValue, scrapeText } from '../lib/prom-text.js';
import { freePort, sleep, spawnLogged, stopChild, waitForPort } from '../lib/proc.js';
import type { BenchContext, Scenario } from '../lib/scenario.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
const NAME = 'detector-replicas';
const BUCKET = 'bench-org-trail';
const SECRET = 'bench-detector-replicas-secret-0123456789';
const POSTGRES_URL = process.env.EW_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const IN_FLIGHT = 8;

type Store = { kind: 'sqlite' } | { kind: 'postgres'; url: string };

interface Replica {
  child: ChildProcess;
  ingest: number;
  admin: number;
}

async function startReplicas(ctx: BenchContext, name: string, n: number, store: Store, cloudtrail: unknown, env: NodeJS.ProcessEnv) {
  const dir = join(ctx.tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'gw.key'), `${SECRET}\n`, { mode: 0o600 });
  const replicas: Replica[] = [];
  for (let i = 0; i < n; i++) {
    const ingest = await freePort();
    const admin = await freePort();
    const config = {
      listen: `127.0.0.1:${ingest}`,
      admin: { listen: `127.0.0.1:${admin}` },
      store: store.kind === 'sqlite' ? { path: join(dir, 'detector.db') } : { postgres: { url: store.url, pool_size: 10 } },
      gateways: [{ id: 'gw-bench', egress_cidrs: ['203.0.113.0/28'], secret_file: join(dir, 'gw.key') }],
      ingest: { max_concurrent: 64, max_concurrent_per_gateway: 16 },
      ...(cloudtrail ? { cloudtrail } : {}),
      log: { level: 'warn' },
    };
    writeFileSync(join(dir, `detector-${i}.yaml`), YAML.stringify(config));
    const child = spawnLogged(process.execPath, [CLI, 'detector', '--config', join(dir, `detector-${i}.yaml`)], {
      logFile: join(dir, `detector-${i}.log`),
      env,
    });
    replicas.push({ child, ingest, admin });
    // One at a time: the first applies the migrations.
    await waitForPort(admin, 30_000, () => child.exitCode === null);
  }
  return replicas;
}

async function stopAll(replicas: readonly Replica[]): Promise<void> {
  await Promise.all(replicas.map((r) => stopChild(r.child)));
}

/** `batches` signed telemetry batches of `perBatch` observations, each with keys of its own. */
function telemetryBodies(batches: number, perBatch: number, seed: number): { batchId: string; body: Buffer }[] {
  const now = Date.now();
  return Array.from({ length: batches }, (_, b) =>
    telemetryBatch(
      b,
      Array.from({ length: perBatch }, (_, i) => {
        const t = now - 600_000 + i * 100;
        return { ...benchObservation(t, corpusKey(b * perBatch + i, seed), `10.20.${b % 250}.${(i % 250) + 1}`), status: { '2xx': 3 } };
      }),
    ),
  );
}

/** The trail files' keys: event `i` of a file is signed with key `i mod TRAIL_KEYS`. */
const TRAIL_KEYS = 5_000;
const trailKey = (k: number) => `ASIA${String(k).padStart(16, 'R')}`;

/**
 * What the gateway saw of the trail's keys: each key from a routed client of its own, every two
 * minutes from `from` to `to` (the files' events fall between), in batches of `perBatch`.
 */
function trailEvidence(from: number, to: number, perBatch: number): { batchId: string; body: Buffer }[] {
  const records: Record<string, unknown>[] = [];
  for (let t = from; t <= to; t += 120_000)
    for (let k = 0; k < TRAIL_KEYS; k++) records.push(benchObservation(t, trailKey(k), `10.20.${k % 250}.${(k % 200) + 1}`));
  const out = [];
  for (let b = 0; b * perBatch < records.length; b++) out.push(telemetryBatch(b, records.slice(b * perBatch, (b + 1) * perBatch)));
  return out;
}

/** Posts every body (round-robin over the replicas, IN_FLIGHT at a time): records stored per second. */
async function ingestRate(replicas: readonly Replica[], bodies: readonly { batchId: string; body: Buffer }[], perBatch: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  let next = 0;
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        for (;;) {
          const i = next++;
          if (i >= bodies.length) return;
          const b = bodies[i]!;
          const status = await postTelemetryBatch(replicas[i % replicas.length]!.ingest, SECRET, b, agent);
          if (status !== 200) throw new Error(`telemetry batch answered ${status}`);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return (bodies.length * perBatch) / ((performance.now() - t0) / 1000);
}

/**
 * The same files through a fresh queue, read by the replicas together: records decided per second,
 * and how many of them were suppressed as attested.
 */
async function trailRate(ctx: BenchContext, name: string, n: number, store: Store, bodies: readonly Buffer[], perFile: number) {
  const fake = await startFakeTrail();
  try {
    const day = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
    bodies.forEach((body, i) => {
      const key = `AWSLogs/123456789012/CloudTrail/us-east-1/${day}/123456789012_CloudTrail_us-east-1_20261205T0000Z_${i}.json.gz`;
      fake.putObject(BUCKET, key, body);
      fake.notify(BUCKET, [key]);
    });
    const replicas = await startReplicas(
      ctx,
      name,
      n,
      store,
      { sqs: { queue_url: fake.queueUrl, region: 'us-east-1', wait_time: '1s', concurrency: 4 } },
      { ...process.env, ...fakeTrailEnv(fake.endpoint) },
    );
    try {
      // Timed from the first receive to an empty queue. The replicas start one after another, the
      // first reading the queue meanwhile: the clock starts at its first receive, as the fake saw it.
      while (fake.depth() > 0) await sleep(20);
      const t0 = fake.firstCalled.get('ReceiveMessage');
      if (t0 === undefined) throw new Error(`${name}: the queue emptied without a receive`);
      const seconds = (performance.now() - t0) / 1000;
      let decided = 0;
      let attested = 0;
      for (const r of replicas) {
        const text = await scrapeText(r.admin);
        decided += metricValue(text, 'egress_witness_detector_cloudtrail_s3_objects_total');
        attested += metricValue(text, 'egress_witness_detector_decisions_total', { disposition: 'suppressed', rule: 'attested' });
      }
      if (decided < bodies.length) throw new Error(`${name}: ${decided} of ${bodies.length} objects processed`);
      return { rate: (bodies.length * perFile) / seconds, attested };
    } finally {
      await stopAll(replicas);
    }
  } finally {
    await fake.close();
  }
}

/** A fresh schema on the bench server, its URL and how to drop it; or why there is none. */
async function freshSchema(tag: string): Promise<{ url: string; drop: () => Promise<void> } | { skipped: string }> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3_000 });
  try {
    await admin.connect();
  } catch (err) {
    await admin.end().catch(() => undefined);
    return { skipped: `no PostgreSQL at EW_BENCH_POSTGRES_URL (${(err as Error).message})` };
  }
  const name = `ew_bench_${tag}_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE SCHEMA ${name}`);
  await admin.end();
  const u = new URL(POSTGRES_URL);
  u.searchParams.set('options', `-c search_path=${name}`);
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
      await c.end();
    },
  };
}

const scenario: Scenario = {
  name: NAME,
  order: 97,
  title:
    'detector: telemetry records stored/s and CloudTrail records decided/s (keys unseen, and attested) on PostgreSQL with 1 and 3 replicas, beside SQLite',
  async run(ctx) {
    const batches = ctx.args.quick ? 40 : 200;
    const perBatch = 500;
    const files = ctx.args.quick ? 10 : 60;
    const perFile = ctx.args.quick ? 500 : 1_000;
    const now = Date.now();
    const trailBodies = Array.from({ length: files }, (_, n) => trailLogFile(perFile, now - n * 1000, (i) => trailKey(i % TRAIL_KEYS)));
    const setups: { subject: string; n: number; store: 'sqlite' | 'postgres' }[] = [
      { subject: 'SQLite, 1 detector', n: 1, store: 'sqlite' },
      { subject: 'PostgreSQL, 1 detector', n: 1, store: 'postgres' },
      { subject: 'PostgreSQL, 3 detectors', n: 3, store: 'postgres' },
    ];
    const ingestRates = new Map<string, number>();
    const trailRates = new Map<string, number>();
    const attestedRates = new Map<string, number>();
    for (const [i, s] of setups.entries()) {
      const tag = `${s.store}${s.n}`;
      const base = { scenario: NAME, peer: null, subject: s.subject };
      const ingestRow = { ...base, metric: 'telemetry records stored/s', unit: 'records/s', better: 'higher' as const };
      const trailRow = { ...base, metric: 'CloudTrail records decided/s (SQS)', unit: 'records/s', better: 'higher' as const };
      const attestedRow = {
        ...base,
        metric: 'CloudTrail records decided/s (SQS, keys attested)',
        unit: 'records/s',
        better: 'higher' as const,
      };
      const schemas: { drop: () => Promise<void> }[] = [];
      const store = async (what: string): Promise<Store | { skipped: string }> => {
        if (s.store === 'sqlite') return { kind: 'sqlite' };
        const sc = await freshSchema(`${tag}_${what}`);
        if ('skipped' in sc) return sc;
        schemas.push(sc);
        return { kind: 'postgres', url: sc.url };
      };
      try {
        ctx.log(`${NAME}: ${s.subject}: ${batches} telemetry batches of ${perBatch} records`);
        const st = await store('ingest');
        if ('skipped' in st) ctx.record({ ...ingestRow, value: null, skipped: st.skipped });
        else {
          const replicas = await startReplicas(ctx, `${NAME}-${tag}-ingest`, s.n, st, null, process.env);
          try {
            const rate = await ingestRate(replicas, telemetryBodies(batches, perBatch, 7_000_000 * (i + 1)), perBatch);
            ingestRates.set(s.subject, rate);
            const ref = ingestRates.get(setups[0]!.subject);
            ctx.record({ ...ingestRow, value: rate, note: ref && i > 0 ? `×${(rate / ref).toFixed(2)} of SQLite` : 'the baseline' });
          } finally {
            await stopAll(replicas);
          }
        }
        ctx.log(`${NAME}: ${s.subject}: ${files} trail files of ${perFile} records through SQS`);
        const sq = await store('trail');
        if ('skipped' in sq) ctx.record({ ...trailRow, value: null, skipped: sq.skipped });
        else {
          const { rate } = await trailRate(ctx, `${NAME}-${tag}-trail`, s.n, sq, trailBodies, perFile);
          trailRates.set(s.subject, rate);
          const ref = trailRates.get(setups[0]!.subject);
          ctx.record({ ...trailRow, value: rate, note: ref && i > 0 ? `×${(rate / ref).toFixed(2)} of SQLite` : 'the baseline' });
        }
        // The same files once the gateway has seen their keys: 90 % of the events are suppressed
        // (attested), the decisions the daemon writes a slice at a time, without a finding.
        ctx.log(`${NAME}: ${s.subject}: the same files, their keys seen by the gateway`);
        const sa = await store('attested');
        if ('skipped' in sa) ctx.record({ ...attestedRow, value: null, skipped: sa.skipped });
        else {
          const name = `${NAME}-${tag}-attested`;
          // The evidence first, through one detector on the same store that reads no trail.
          const ingest = await startReplicas(ctx, name, 1, sa, null, process.env);
          try {
            await ingestRate(ingest, trailEvidence(now - files * 1000 - 660_000, now, perBatch), perBatch);
          } finally {
            await stopAll(ingest);
          }
          const { rate, attested } = await trailRate(ctx, name, s.n, sa, trailBodies, perFile);
          const share = attested / (files * perFile);
          if (share < 0.5) throw new Error(`${name}: the telemetry attested ${attested} of ${files * perFile} events (90 % expected)`);
          attestedRates.set(s.subject, rate);
          const ref = attestedRates.get(setups[0]!.subject);
          const plain = trailRates.get(s.subject);
          ctx.record({
            ...attestedRow,
            value: rate,
            note: [
              ref && i > 0 ? `×${(rate / ref).toFixed(2)} of SQLite` : 'the baseline',
              `${Math.round(share * 100)} % attested`,
              plain ? `×${(rate / plain).toFixed(2)} of the unattested trail` : null,
            ]
              .filter((x) => x !== null)
              .join('; '),
          });
        }
      } finally {
        for (const sc of schemas) await sc.drop().catch(() => undefined);
      }
    }
  },
};

export default scenario;

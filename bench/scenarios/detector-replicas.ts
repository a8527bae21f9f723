/**
 * The detector on PostgreSQL with one and with three replicas, beside the
 * SQLite baseline of the same run: telemetry records stored per second
 * (signed batches POSTed with 8 in flight, spread round-robin over the
 * replicas) and CloudTrail records decided per second through cloudtrail.sqs
 * (the loopback queue and bucket of bench/servers/fake-trail.ts, shared by the
 * replicas). Each configuration gets a fresh store: a SQLite file, or a schema
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
import { scrape } from '../lib/prom-text.js';
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

/** The same files through a fresh queue, read by the replicas together: records decided per second. */
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
      // Timed from the first receive to an empty queue (the replicas started one after another).
      while ((fake.calls.get('ReceiveMessage') ?? 0) === 0) await sleep(5);
      const t0 = performance.now();
      while (fake.depth() > 0) await sleep(20);
      const seconds = (performance.now() - t0) / 1000;
      let decided = 0;
      for (const r of replicas) decided += (await scrape(r.admin)).get('egress_witness_detector_cloudtrail_s3_objects_total') ?? 0;
      if (decided < bodies.length) throw new Error(`${name}: ${decided} of ${bodies.length} objects processed`);
      return (bodies.length * perFile) / seconds;
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
  title: 'detector: telemetry records stored/s and CloudTrail records decided/s on PostgreSQL with 1 and 3 replicas, beside SQLite',
  async run(ctx) {
    const batches = ctx.args.quick ? 40 : 200;
    const perBatch = 500;
    const files = ctx.args.quick ? 10 : 60;
    const perFile = ctx.args.quick ? 500 : 1_000;
    const now = Date.now();
    const trailBodies = Array.from({ length: files }, (_, n) =>
      trailLogFile(perFile, now - n * 1000, (i) => `ASIA${String(i % 5_000).padStart(16, 'R')}`),
    );
    const setups: { subject: string; n: number; store: 'sqlite' | 'postgres' }[] = [
      { subject: 'SQLite, 1 detector', n: 1, store: 'sqlite' },
      { subject: 'PostgreSQL, 1 detector', n: 1, store: 'postgres' },
      { subject: 'PostgreSQL, 3 detectors', n: 3, store: 'postgres' },
    ];
    const ingestRates = new Map<string, number>();
    const trailRates = new Map<string, number>();
    for (const [i, s] of setups.entries()) {
      const tag = `${s.store}${s.n}`;
      const base = { scenario: NAME, peer: null, subject: s.subject };
      const ingestRow = { ...base, metric: 'telemetry records stored/s', unit: 'records/s', better: 'higher' as const };
      const trailRow = { ...base, metric: 'CloudTrail records decided/s (SQS)', unit: 'records/s', better: 'higher' as const };
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
          const rate = await trailRate(ctx, `${NAME}-${tag}-trail`, s.n, sq, trailBodies, perFile);
          trailRates.set(s.subject, rate);
          const ref = trailRates.get(setups[0]!.subject);
          ctx.record({ ...trailRow, value: rate, note: ref && i > 0 ? `×${(rate / ref).toFixed(2)} of SQLite` : 'the baseline' });
        }
      } finally {
        for (const sc of schemas) await sc.drop().catch(() => undefined);
      }
    }
  },
};

export default scenario;

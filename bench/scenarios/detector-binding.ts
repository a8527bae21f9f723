/**
 * The correlation rate with instance binding: `egress-witness replay
 * --inventory` (a child process) loads N observations (1 M in a full run)
 * and an inventory of 100,000 instances (describe-instances JSON), then
 * decides M CloudTrail records, each key's client checked against its
 * instance's address at the event's time. Reported: records correlated per
 * second (normalize + decide + print, loading excluded; goal ≥ 50,000/s), the
 * median of three runs in a full run (each run's rate in the note). Then the
 * same with `--jobs` (a worker per core, at most 4) in a row of its own, with
 * its ratio to one thread; the goal is checked on the one-thread row.
 *
 * Data: 20,000 instance-role keys, key k belonging to instance k and seen by
 * one gateway from that instance's address; every 50th key only from another
 * instance's (wrong-client). 90 % of the events come from the gateway's
 * address, 10 % from outside.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { CORPUS_T0, cloudTrailLog, corpusKey, observationLine, writeLines } from '../lib/replay-corpus.js';
import { medianReplay } from '../lib/replay-run.js';
import type { Scenario } from '../lib/scenario.js';
import { BINDING_SUBJECT } from '../lib/results.js';
import { MAX_AUTO_JOBS } from '../../detector/replay/shards.js';

const SEED = 2_000_003;
const SUMMARY =
  /(\d+) telemetry records \(\d+ invalid\) loaded in [\d.]+ s, (\d+) instances in the inventory, (\d+) CloudTrail records .* correlated in [\d.]+ s \((\d+) records\/s.*decisions (\{[^}]*\})/;
const INSTANCES = 100_000;
const KEYS = 20_000;

const instanceId = (j: number) => `i-0${j.toString(16).padStart(16, '0')}`;
const addressOf = (j: number) => `10.${64 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`;
/** The client that presents key k: its own instance, or for every 50th key another one. */
const clientOf = (k: number) => addressOf(k % 50 === 1 ? (k + KEYS) % INSTANCES : k);

/** describe-instances output: one reservation per 100 instances, each launched a day before the data. */
function inventory(): string {
  const reservations = [];
  for (let r = 0; r < INSTANCES / 100; r++) {
    const instances = [];
    for (let j = r * 100; j < (r + 1) * 100; j++) {
      const ip = addressOf(j);
      instances.push({
        InstanceId: instanceId(j),
        InstanceType: 't3.micro',
        LaunchTime: new Date(CORPUS_T0 - 86_400_000).toISOString(),
        PrivateIpAddress: ip,
        State: { Code: 16, Name: 'running' },
        NetworkInterfaces: [{ PrivateIpAddress: ip, PrivateIpAddresses: [{ Primary: true, PrivateIpAddress: ip }], Ipv6Addresses: [] }],
      });
    }
    reservations.push({ ReservationId: `r-0${r.toString(16).padStart(16, '0')}`, OwnerId: '123456789012', Instances: instances });
  }
  return JSON.stringify({ Reservations: reservations });
}

const scenario: Scenario = {
  name: 'detector-binding',
  order: 91,
  title: 'detector: CloudTrail records correlated per second by replay against 1 M observations and a 100,000-instance inventory',
  async run(ctx) {
    const observations = ctx.args.quick ? 50_000 : 1_000_000;
    const events = ctx.args.quick ? 10_000 : 200_000;
    const dir = ctx.tmp;
    ctx.log(`detector-binding: writing ${observations} observations, ${INSTANCES} instances and ${events} CloudTrail records`);
    await writeLines(join(dir, 'binding-observations.ndjson'), observations, (i) =>
      observationLine(i, observations, corpusKey(i % KEYS, SEED), clientOf(i % KEYS)),
    );
    writeFileSync(join(dir, 'binding-instances.json'), inventory());
    writeFileSync(
      join(dir, 'binding-cloudtrail.json.gz'),
      cloudTrailLog(events, KEYS, (k) => ({ accessKeyId: corpusKey(k, SEED), instanceId: instanceId(k) })),
    );
    const inputs = [
      '--cloudtrail',
      join(dir, 'binding-cloudtrail.json.gz'),
      '--telemetry',
      join(dir, 'binding-observations.ndjson'),
      '--inventory',
      join(dir, 'binding-instances.json'),
    ];
    const runs = ctx.args.quick ? 1 : 3;
    const single = await medianReplay(dir, 'binding', inputs, runs, SUMMARY, 4);
    const m = single.median.figures;
    const decisions = JSON.parse(m[5] ?? '{}') as Record<string, number>;
    const wrong = decisions['finding/wrong-client'] ?? 0;
    const own = decisions['suppressed/attested'] ?? 0;
    if (wrong === 0 || own === 0) throw new Error(`the data did not reach instance binding: ${m[5]}`);
    const rate = Number(m[4]);
    ctx.record({
      scenario: 'detector-binding',
      peer: null,
      subject: BINDING_SUBJECT,
      metric: 'CloudTrail records correlated/s',
      unit: 'records/s',
      better: 'higher',
      value: rate,
      note: `${m[3]} records against ${m[1]} observations and ${m[2]} instances (${own} attested, ${wrong} wrong-client; goal ≥ 50,000/s); ${single.rates}; whole replay ${single.median.wallSeconds.toFixed(1)} s`,
    });
    // The same with a worker per core (replay --jobs): each loads all the evidence.
    const jobs = Math.min(availableParallelism(), MAX_AUTO_JOBS);
    if (jobs < 2) return;
    const parallel = await medianReplay(dir, 'binding', [...inputs, '--jobs', String(jobs)], runs, SUMMARY, 4);
    const p = parallel.median.figures;
    if (p[5] !== m[5]) throw new Error(`replay --jobs ${jobs} decided otherwise: ${p[5]} against ${m[5]}`);
    ctx.record({
      scenario: 'detector-binding',
      peer: null,
      subject: `${BINDING_SUBJECT} --jobs ${jobs}`,
      metric: 'CloudTrail records correlated/s',
      unit: 'records/s',
      better: 'higher',
      value: Number(p[4]),
      note: `${jobs} workers: ×${(Number(p[4]) / rate).toFixed(2)} the one-thread rate; ${parallel.rates}; whole replay ${parallel.median.wallSeconds.toFixed(1)} s (×${(parallel.median.wallSeconds / single.median.wallSeconds).toFixed(2)})`,
    });
  },
};

export default scenario;

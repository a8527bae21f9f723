/**
 * The detector's correlation rate: `egress-witness replay` (a child process,
 * as an operator runs it) loads N agent observations (1 M in a full run)
 * into memory and decides M CloudTrail records against them. Reported:
 * records correlated per second (normalize + decide + print, loading
 * excluded), and the load rate of the observations; the median of three
 * runs in a full run (each run's rate in the note).
 *
 * Data: 20,000 instance-role keys seen by one gateway from 250 routed
 * clients over six hours; 90 % of the CloudTrail events come from the
 * gateway's egress address (attested), 10 % from outside (findings).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cloudTrailLog, corpusKey, observationLine, writeLines } from '../lib/replay-corpus.js';
import { medianReplay } from '../lib/replay-run.js';
import type { Scenario } from '../lib/scenario.js';

const SEED = 1_000_003;

const scenario: Scenario = {
  name: 'detector-correlation',
  order: 90,
  title: 'detector: CloudTrail records correlated per second by replay against 1 M observations',
  async run(ctx) {
    const observations = ctx.args.quick ? 50_000 : 1_000_000;
    const events = ctx.args.quick ? 10_000 : 200_000;
    const keys = 20_000;
    const dir = ctx.tmp;
    ctx.log(`detector-correlation: writing ${observations} observations and ${events} CloudTrail records`);
    await writeLines(join(dir, 'replay-observations.ndjson'), observations, (i) =>
      observationLine(i, observations, corpusKey(i % keys, SEED), `10.20.${i % 250}.4`),
    );
    writeFileSync(
      join(dir, 'replay-cloudtrail.json.gz'),
      cloudTrailLog(events, keys, (k) => ({ accessKeyId: corpusKey(k, SEED) })),
    );
    const { median, rates } = await medianReplay(
      dir,
      'replay',
      ['--cloudtrail', join(dir, 'replay-cloudtrail.json.gz'), '--telemetry', join(dir, 'replay-observations.ndjson')],
      ctx.args.quick ? 1 : 3,
      /(\d+) telemetry records \(\d+ invalid\) loaded in ([\d.]+) s, (\d+) CloudTrail records .* correlated in ([\d.]+) s \((\d+) records\/s\)/,
      5,
    );
    const m = median.figures;
    const wall = median.wallSeconds;
    const base = { scenario: 'detector-correlation', peer: null, subject: 'detector replay' };
    ctx.record({
      ...base,
      metric: 'CloudTrail records correlated/s',
      unit: 'records/s',
      better: 'higher',
      value: Number(m[5]),
      note: `${m[3]} records against ${m[1]} observations (normalize + decide + print; goal ≥ 50,000/s); ${rates}`,
    });
    ctx.record({
      ...base,
      metric: 'observations loaded/s',
      unit: 'records/s',
      better: 'higher',
      value: Number(m[1]) / Number(m[2]),
      note: `NDJSON read and validated into the in-memory index, in the median run; whole replay ${wall.toFixed(1)} s`,
    });
  },
};

export default scenario;

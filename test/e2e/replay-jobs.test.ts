/**
 * `egress-witness replay --jobs N` as a child process: the CloudTrail records
 * decided by N worker threads print exactly what one thread prints, line for
 * line and in the same order (decidedAt aside), with the same summary. The
 * corpus has what makes the split hard: several rounds of records per file,
 * repeats and conflicting copies of an event in a later file, records not made
 * with instance credentials, invalid records, events dated after now (held,
 * then decided at the end by due time), and a file that cannot be read.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Observation } from '../../protocol/telemetry.js';
import { cloudTrailFixture, cloudTrailRecord, EXTERNAL_IP, GW1_IP, type JsonDoc } from '../helpers/detector.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'dist/cli/main.js');

const T = Date.parse('2024-05-01T12:00:00Z');
const HOUR = 3_600_000;
const SEEN_KEYS = 200;
const key = (k: number) => `ASIA${String(k).padStart(16, '0')}`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tmp: string;
let config: string;
let telemetry: string;
let files: string[];

function replay(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, 'replay', '--config', config, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The lines without decidedAt, the one field that differs from run to run. */
const comparable = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/"decidedAt":"[^"]*",/, ''));
const summary = (stderr: string) => /decisions (\{[^}]*\})/.exec(stderr)?.[1];

function observation(k: number): Observation {
  return {
    type: 'observation',
    schema: 1,
    gatewayId: 'gw1',
    firstSeen: new Date(T - 60_000).toISOString(),
    lastSeen: new Date(T + 300_000).toISOString(),
    count: 40,
    clientIp: '10.20.3.4',
    network: 'vpc-prod',
    mode: 'inspect',
    host: 'sts.us-east-1.amazonaws.com',
    port: 443,
    resolvedIp: '52.94.133.131',
    aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
    accessKeyId: key(k),
    keyKind: 'temporary',
    accountId: '111122223333',
    sessionToken: true,
    signatureVersion: 'v4',
    auth: 'header',
    action: 'GetCallerIdentity',
    bytesUp: 4_812,
    bytesDown: 3_220,
    durationMs: 410,
    outcome: 'ok',
    status: { '2xx': 40 },
  };
}

/** Record i of the first file: attested, unattested (unseen key), external, ignored, invalid or held (dated after now). */
function record(i: number): unknown {
  if (i % 101 === 7) return i % 2 === 0 ? { eventVersion: '1.08', eventID: `broken-${i}` } : 'not a record';
  if (i % 97 === 3) return cloudTrailRecord({ fixture: 'iam-user-akia', sourceIp: GW1_IP, time: T + i * 1000, eventId: `user-${i}` });
  const held = i % 250 === 11;
  return cloudTrailRecord({
    key: key(i % 300),
    sourceIp: held || i % 10 === 0 ? EXTERNAL_IP : GW1_IP,
    // Held events are due in an order of their own: the later records fall due first.
    time: held ? Date.now() + 2 * HOUR - i * 1000 : T + (i % 300) * 1000,
    eventId: `event-${i}`,
  });
}

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  tmp = await mkdtemp(join(tmpdir(), 'ew-replay-jobs-'));
  config = join(tmp, 'det.yaml');
  await writeFile(
    config,
    ['gateways:', '  - id: gw1', '    egress_cidrs: [203.0.113.0/28]', `    secret_file: ${join(tmp, 'gw1.key')}`, ''].join('\n'),
  );
  telemetry = join(tmp, 'gw1.ndjson');
  await writeFile(telemetry, `${Array.from({ length: SEEN_KEYS }, (_, k) => JSON.stringify(observation(k))).join('\n')}\n`);
  const first = Array.from({ length: 2_600 }, (_, i) => record(i));
  // The second file: repeats of the first (decided once), conflicting copies (same eventID, another
  // source: dropped), and new records.
  const second: unknown[] = [];
  for (let i = 0; i < 1_500; i++) {
    if (i % 5 === 0) second.push(first[i]);
    else if (i % 75 === 1) second.push({ ...(first[i] as JsonDoc), sourceIPAddress: '192.0.2.99' });
    else second.push(record(10_000 + i));
  }
  files = [join(tmp, 'a.json.gz'), join(tmp, 'broken.json.gz'), join(tmp, 'b.json')];
  await writeFile(files[0]!, gzipSync(JSON.stringify({ Records: first })));
  await writeFile(files[1]!, Buffer.from('not gzip at all'));
  await writeFile(files[2]!, JSON.stringify({ Records: [...second, cloudTrailFixture('aws-internal')] }));
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('replay --jobs', () => {
  let one: Run;
  let three: Run;
  beforeAll(async () => {
    one = await replay('--cloudtrail', ...files, '--telemetry', telemetry);
    three = await replay('--cloudtrail', ...files, '--telemetry', telemetry, '--jobs', '3');
  });

  it('three workers print what one thread prints, line for line and in order', () => {
    expect(one.code, one.stderr).toBe(0);
    expect(three.code, three.stderr).toBe(0);
    const a = comparable(one.stdout);
    expect(a.length).toBeGreaterThan(3_500);
    expect(comparable(three.stdout)).toEqual(a);
  });

  it('the corpus reaches every path: suppressed, findings, ignored, held to the end, repeats and conflicts left out', () => {
    const lines = one.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { id: string; disposition: string; rule: string; time: string });
    const rules = new Set(lines.map((l) => `${l.disposition}/${l.rule}`));
    for (const r of ['suppressed/attested', 'finding/gateway-unattested', 'finding/external', 'ignored/not-instance-credential'])
      expect(rules).toContain(r);
    expect(lines.some((l) => l.disposition === 'ignored' && l.id.startsWith('user-'))).toBe(true);
    // Every instance-credential event once: a repeat or a conflicting copy prints nothing (an ignored
    // record is told each time it comes).
    const ids = lines.filter((l) => l.disposition !== 'ignored').map((l) => l.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(lines.filter((l) => l.id === 'user-100')).toHaveLength(2);
    expect(ids).toContain('event-5');
    // Held events come last, by due time (the later records first).
    const held = lines.filter((l) => Date.parse(l.time) > Date.now());
    expect(held.length).toBeGreaterThan(5);
    expect(lines.slice(-held.length)).toEqual(held);
    const times = held.map((l) => Date.parse(l.time));
    expect(times).toEqual([...times].sort((x, y) => x - y));
  });

  it('the same summary: counts in the same order, the broken file skipped once, the workers named', () => {
    expect(summary(three.stderr)).toBeDefined();
    expect(summary(three.stderr)).toBe(summary(one.stderr));
    expect(three.stderr).toMatch(/, 3 workers\)/);
    expect(three.stderr).toContain('replay: deciding with 3 workers, each loading all the telemetry and the inventory');
    expect(one.stderr).not.toMatch(/workers\)/);
    expect(three.stderr.match(/skipped .*broken\.json\.gz/g)).toHaveLength(1);
    expect(/from (\d+) files \((\d+) invalid\)/.exec(three.stderr)?.slice(1)).toEqual(
      /from (\d+) files \((\d+) invalid\)/.exec(one.stderr)?.slice(1),
    );
  });

  it('--no-telemetry: each worker decision about a gateway address says no evidence was given', async () => {
    const run = await replay('--cloudtrail', files[0]!, '--no-telemetry', '--jobs', '2');
    expect(run.code, run.stderr).toBe(0);
    const single = await replay('--cloudtrail', files[0]!, '--no-telemetry');
    expect(comparable(run.stdout)).toEqual(comparable(single.stdout));
    expect(run.stdout).toContain('no evidence given (replay --no-telemetry)');
  });

  it('an input that fails in the workers fails the run as in one thread: exit 1, the same message', async () => {
    const inventory = join(tmp, 'cut-short.json');
    await writeFile(inventory, '{"Reservations": [');
    const runs = await Promise.all(
      ['1', '2'].map((jobs) => replay('--cloudtrail', files[0]!, '--telemetry', telemetry, '--inventory', inventory, '--jobs', jobs)),
    );
    for (const run of runs) {
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
    }
    expect(runs[1]!.stderr.replace(/^replay: deciding with 2 workers.*\n/m, '')).toBe(runs[0]!.stderr);
    expect(runs[0]!.stderr).toContain('cut-short.json: not JSON');
  });

  it('--jobs with --findings decides in one thread and says so; a bad --jobs is a usage error', async () => {
    const findings = await replay('--cloudtrail', files[0]!, '--telemetry', telemetry, '--findings', '--jobs', '2');
    expect(findings.code, findings.stderr).toBe(0);
    expect(findings.stderr).toContain('--jobs 2 does not apply with --findings: deciding in one thread');
    for (const bad of ['0', 'many']) {
      const run = await replay('--cloudtrail', files[0]!, '--telemetry', telemetry, '--jobs', bad);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`--jobs ${bad}: give a number of workers from 1 to 64, or auto`);
    }
  });
});

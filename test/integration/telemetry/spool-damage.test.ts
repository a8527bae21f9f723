// A spool damaged by hand between two runs: garbage after the last record,
// or the last record cut short. The next agent starts, logs the truncation,
// counts the bytes, and ships everything that is still intact.
import { describe, expect, it, vi } from 'vitest';
import { appendFile, readdir, readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { scanSegment } from '../../../agent/ship/spool-record.js';
import type { TestAgent } from '../../helpers/agent.js';
import { freePort, type TelemetryReceiver } from '../../helpers/telemetry-receiver.js';
import { awsHosts, canonical, fetchMetrics, flushWhenIdle, missingFrom, readNdjson, runTunnels, sample, useTelemetryRig } from './rig.js';

const SECRET = 'damage-secret-0123456789abcdef';

const rig = useTelemetryRig('damage', SECRET);

/** Runs an agent whose detector is down, with traffic in three flushes, and stops it: its batches stay in the spool. */
async function fillSpool(
  name: string,
): Promise<{ spoolDir: string; lastSegment: string; written: Record<string, unknown>[]; batches: number }> {
  const spoolDir = rig.path(`spool-${name}`);
  const file = rig.path(`${name}-first-run.ndjson`);
  const deadUrl = `http://127.0.0.1:${await freePort()}/v1/telemetry`;
  const agent = await rig.startAgent(name, { detectorUrl: deadUrl, spoolDir, file });
  for (const wave of ['a', 'b', 'c']) {
    await runTunnels(agent.proxyPort, awsHosts(`${name}-${wave}`, 3));
    await flushWhenIdle(agent);
  }
  await agent.stop(); // the final flush (a heartbeat) lands in the spool too
  rig.agent = null;
  const segments = (await readdir(spoolDir)).filter((n) => /^segment-\d+\.log$/.test(n)).sort();
  expect(segments.length).toBeGreaterThanOrEqual(1);
  let batches = 0;
  for (const s of segments) batches += scanSegment(await readFile(join(spoolDir, s))).records.length;
  return { spoolDir, lastSegment: join(spoolDir, segments.at(-1)!), written: await readNdjson(file), batches };
}

/** Starts a receiver, then a second agent on the same spool. */
async function restart(name: string, spoolDir: string): Promise<{ agent: TestAgent; receiver: TelemetryReceiver }> {
  const receiver = await rig.startReceiver();
  return { agent: await rig.startAgent(name, { spoolDir, file: rig.path(`${name}-second-run.ndjson`) }), receiver };
}

/** Records the receiver got from the first run (the second run's own heartbeats left out). */
function firstRunRecords(r: TelemetryReceiver, firstStartedAt: string): string[] {
  return r.batches
    .filter((b) => b.batch.agent.startedAt === firstStartedAt)
    .flatMap((b) => b.raw.records)
    .map(canonical);
}

/** Waits until the receiver holds exactly `expected` (canonical records) from the first run, whose sink wrote `written`. */
async function expectFirstRunShipped(
  receiver: TelemetryReceiver,
  written: readonly Record<string, unknown>[],
  expected: readonly string[],
): Promise<void> {
  const firstStartedAt = written.find((r) => r.type === 'heartbeat')!.startedAt as string;
  await vi.waitFor(
    () => {
      expect(missingFrom(expected, firstRunRecords(receiver, firstStartedAt))).toEqual([]);
      expect(missingFrom(firstRunRecords(receiver, firstStartedAt), expected)).toEqual([]);
    },
    { timeout: 8_000, interval: 50 },
  );
}

describe('a damaged spool at start-up', () => {
  it('cuts garbage appended after the last record, logs spool_truncated, counts the bytes and ships every batch', async () => {
    const { spoolDir, lastSegment, written, batches } = await fillSpool('garbage');
    expect(batches).toBeGreaterThanOrEqual(4);
    expect(written.filter((r) => r.type === 'observation')).toHaveLength(9);
    const garbage = Buffer.from('\x00\x13garbage after a torn append: not a spool record at all'.repeat(3), 'latin1');
    await appendFile(lastSegment, garbage);

    const { agent, receiver } = await restart('garbage', spoolDir);
    await expectFirstRunShipped(receiver, written, written.map(canonical));

    const truncated = agent.logs.find('spool_truncated');
    expect(truncated).toHaveLength(1);
    expect(truncated[0]).toMatchObject({ level: 'error', bytes: garbage.length, segment: lastSegment.split('/').at(-1) });
    expect(truncated[0]!.reason).toMatch(/^truncated: /);
    expect(sample(await fetchMetrics(agent.adminPort), 'egress_witness_spool_truncated_bytes_total')).toBe(garbage.length);
    expect(agent.logs.find('spool_recovered')[0]).toMatchObject({ pending: batches });
  });

  it('cuts a last record torn in half, and ships every batch before it', async () => {
    const { spoolDir, lastSegment, written, batches } = await fillSpool('torn');
    const bytes = await readFile(lastSegment);
    const scan = scanSegment(bytes);
    expect(scan.tail).toBeNull();
    const last = scan.records.at(-1)!;
    const lost = (
      JSON.parse(gunzipSync(bytes.subarray(last.offset + 92, last.offset + last.size)).toString()) as { records: unknown[] }
    ).records.map(canonical);
    const cut = Math.floor(last.size / 2);
    await truncate(lastSegment, bytes.length - cut);

    const { agent, receiver } = await restart('torn', spoolDir);
    const expected = missingFrom(written.map(canonical), lost);
    expect(expected.length).toBeGreaterThan(0);
    await expectFirstRunShipped(receiver, written, expected);

    const truncated = agent.logs.find('spool_truncated');
    expect(truncated).toHaveLength(1);
    expect(truncated[0]).toMatchObject({ level: 'error', offset: last.offset, bytes: last.size - cut });
    expect(sample(await fetchMetrics(agent.adminPort), 'egress_witness_spool_truncated_bytes_total')).toBe(last.size - cut);
    expect(agent.logs.find('spool_recovered')[0]).toMatchObject({ pending: batches - 1 });
  });
});

/**
 * The pipeline with `findings: false` (replay printing decisions): every
 * decision is the one made with findings built, stored and told alike, but
 * no finding is merged or stored, no occurrence kept, and neither the sink
 * nor `findingChanged` hears of one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Decision } from '../../../../detector/correlate/decide.js';
import { findingId } from '../../../../detector/findings/shape.js';
import { replayPipeline } from '../../../../detector/replay/replay.js';
import { MemoryStore } from '../../../../detector/store/memory-store.js';
import { EXTERNAL_IP, GW1_IP, cloudTrailRecord, pipelineConfig } from '../../../helpers/detector.js';

const T0 = Date.parse('2024-05-01T12:00:00Z');
const KEYS = ['ASIAFINDINGSOFFAAAA1', 'ASIAFINDINGSOFFAAAA2'];

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ew-findings-off-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  store: MemoryStore;
  decided: Decision[];
  emitted: unknown[];
  changed: string[];
}

async function run(findings: boolean | undefined, records: unknown[]): Promise<Run> {
  const store = new MemoryStore({ copyValues: false, decisions: 'without-detail' });
  const out: Run = { store, decided: [], emitted: [], changed: [] };
  const pipeline = await replayPipeline(await pipelineConfig(dir), store, {
    sink: {
      emit: (f) => {
        out.emitted.push(f);
        return Promise.resolve();
      },
    },
    now: () => T0 + 60_000,
    decided: (d) => out.decided.push(d),
    findingChanged: (_tx, id) => {
      out.changed.push(id);
      return Promise.resolve();
    },
    ...(findings === undefined ? {} : { findings }),
  });
  try {
    // A slice of several records, then one alone (the record-by-record path).
    const [last, ...rest] = [...records].reverse();
    await pipeline.cloudtrail.processBatch(rest.reverse(), 'trail');
    await pipeline.cloudtrail.processRecord(last, 'trail');
  } finally {
    await pipeline.close();
  }
  return out;
}

describe('a pipeline that builds no findings', () => {
  it('decides, stores and tells every record as one that builds them, and builds, stores and tells no finding', async () => {
    // Two keys used from outside (findings, one of them twice: one finding updated), and a use from a
    // gateway without telemetry behind it (a finding of another rule), amid repeated records.
    const records = [
      cloudTrailRecord({ key: KEYS[0], sourceIp: EXTERNAL_IP, time: T0, eventId: 'evt-1' }),
      cloudTrailRecord({ key: KEYS[0], sourceIp: EXTERNAL_IP, time: T0 + 1_000, eventId: 'evt-2' }),
      cloudTrailRecord({ key: KEYS[1], sourceIp: GW1_IP, time: T0 + 2_000, eventId: 'evt-3' }),
      cloudTrailRecord({ key: KEYS[1], sourceIp: EXTERNAL_IP, time: T0 + 3_000, eventId: 'evt-4' }),
    ];
    records.splice(2, 0, structuredClone(records[0]!));
    const built = await run(undefined, records);
    const none = await run(false, structuredClone(records));

    // Built: the findings are there, and were told.
    const ids = [
      ...new Set(built.decided.filter((d) => d.disposition === 'finding').map((d) => findingId(d.accessKeyId, d.sourceIPAddress, d.rule))),
    ];
    expect(ids.length).toBeGreaterThanOrEqual(2);
    for (const id of ids) expect(await built.store.getFinding(id)).not.toBeNull();
    expect(built.emitted.length).toBe(built.decided.filter((d) => d.disposition === 'finding').length);
    expect(new Set(built.changed)).toEqual(new Set(ids));
    // The use from the gateway's address is re-examined later (its occurrence kept).
    expect(built.decided.map((d) => d.rule)).toContain('gateway-unverified');
    let occurrences = 0;
    for (const id of ids) occurrences += (await built.store.occurrenceCounts(id)).stored;
    expect(occurrences).toBe(1);

    // Not built: the same decisions, in the same order, stored alike; no finding anywhere.
    expect(none.decided).toEqual(built.decided);
    const listed = (r: Run) => r.store.listDecisions({ sinceMs: 0, disposition: null, limit: 100 });
    expect(await listed(none)).toEqual(await listed(built));
    for (const id of ids) {
      expect(await none.store.getFinding(id)).toBeNull();
      expect(await none.store.occurrenceCounts(id)).toEqual({ stored: 0, unresolved: 0 });
    }
    expect(none.emitted).toEqual([]);
    expect(none.changed).toEqual([]);
  });
});

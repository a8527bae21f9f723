/**
 * Telemetry times are believed only within bounds (a compromised or broken
 * agent holds a valid key): firstSeen ≤ lastSeen, nothing later than now +
 * ingest.clock_skew, spans no longer than ingest.max_observation_span. A
 * record that breaks them is rejected on its own and counted by reason; the
 * rest of its batch is stored, and the gateway's heartbeat age keeps telling
 * the truth.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import { newAccessKeyId, startDetector, type DetectorHarness } from '../../helpers/detector.js';

const YEAR_2099 = Date.parse('2099-01-01T00:00:00.000Z');
const WIDE = 200 * 365 * 86_400_000;

let h: DetectorHarness;

beforeAll(async () => {
  h = await startDetector({ config: { ingest: { clock_skew: '5m', max_observation_span: '10m' } } });
});

afterAll(async () => {
  await h?.cleanup();
});

function spanning(key: string, firstMs: number, lastMs: number) {
  return observation({ accessKeyId: key, firstSeen: new Date(firstMs).toISOString(), lastSeen: new Date(lastMs).toISOString() });
}

async function sightings(key: string) {
  return await h.app.db.keySightings(key, -WIDE, YEAR_2099 + WIDE);
}

async function rejected(reason: string): Promise<number> {
  return h.metric('egress_witness_detector_rejected_records_total', { reason });
}

describe('telemetry time bounds', () => {
  it('rejects each record out of bounds on its own and stores the rest of the batch', async () => {
    const now = Date.now();
    const good = newAccessKeyId();
    const backwards = newAccessKeyId();
    const forever = newAccessKeyId();
    const ancient = newAccessKeyId();
    const ahead = newAccessKeyId();
    const before = {
      first_after_last: await rejected('first_after_last'),
      in_future: await rejected('in_future'),
      span_too_long: await rejected('span_too_long'),
    };
    const batch = h.batch('gw1', [
      spanning(good, now - 8_000, now - 2_000),
      spanning(backwards, now - 1_000, now - 60_000),
      spanning(forever, 0, YEAR_2099),
      spanning(ancient, 0, now - 1_000),
      spanning(ahead, now, now + 6 * 60_000),
      heartbeat('gw1', now - 1_000),
      heartbeat('gw1', YEAR_2099),
    ]);
    const a = await h.signedPost(batch);
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({
      accepted: true,
      duplicate: false,
      batchId: batch.batchId,
      records: 2,
      rejected: { first_after_last: 1, in_future: 3, span_too_long: 1 },
    });
    expect(await sightings(good)).toHaveLength(1);
    for (const key of [backwards, forever, ancient, ahead]) expect(await sightings(key), key).toEqual([]);
    expect(await rejected('first_after_last')).toBe(before.first_after_last + 1);
    expect(await rejected('in_future')).toBe(before.in_future + 3);
    expect(await rejected('span_too_long')).toBe(before.span_too_long + 1);
    expect(h.logs.find('telemetry_records_rejected').at(-1)).toMatchObject({
      gateway_id: 'gw1',
      batch_id: batch.batchId,
      rejected: { first_after_last: 1, in_future: 3, span_too_long: 1 },
    });
    // The duplicate of the same batch is still acknowledged as one.
    expect((await h.signedPost(batch)).json).toMatchObject({ accepted: true, duplicate: true });
  });

  it('a heartbeat dated 2099 does not pin the heartbeat age: it keeps growing from the last believable one', async () => {
    const last = Date.now() - 90_000;
    await h.ingest('gw4', [heartbeat('gw4', last)]);
    const a = await h.signedPost(h.batch('gw4', [heartbeat('gw4', YEAR_2099)]));
    expect(a.status, a.text).toBe(200);
    expect(a.json).toMatchObject({ records: 0, rejected: { in_future: 1 } });
    await h.app.refreshGauges();
    const age = await h.metric('egress_witness_detector_gateway_last_heartbeat_age_seconds', { gateway: 'gw4' });
    expect(age).toBeGreaterThanOrEqual(89);
    expect((await h.app.status()).gateways).toContainEqual({ id: 'gw4', last_heartbeat: new Date(last).toISOString() });
    expect(await h.app.db.lastHeartbeatMs('gw4')).toBe(last);
  });

  it('a batch that is malformed is still refused whole', async () => {
    const a = await h.signedPost(h.batch('gw1', [{ ...heartbeat('gw1', Date.now()), time: 'yesterday' }]));
    expect(a.status, a.text).toBe(400);
    expect(String(a.json.error)).toMatch(/^records\[0\]\.time: /);
  });
});

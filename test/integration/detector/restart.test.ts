/**
 * A detector restarted mid-stream on the same store: stored telemetry and
 * decisions survive, CloudTrail files already read are not read again, and
 * findings still waiting for their grace period are finalised by the new
 * process.
 *
 *   start ─ telemetry ─ file A ─ pending event ─▶ stop ─▶ start (same store) ─ rescan ─ file B ─ grace ends
 */
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuleName } from '../../../detector/correlate/types.js';
import { findingId } from '../../../detector/findings/shape.js';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import {
  cloudTrailEventBridge,
  cloudTrailRecord,
  EXTERNAL_IP,
  GW1_IP,
  newAccessKeyId,
  sleep,
  startDetector,
  waitFor,
  type DetectorHarness,
} from '../../helpers/detector.js';

const GRACE_MS = 2_500;
let h: DetectorHarness;

beforeAll(async () => {
  h = await startDetector({
    config: (dir) => ({
      cloudtrail: { watch_dir: join(dir, 'trail'), poll_interval: '100ms' },
      correlation: { grace: `${GRACE_MS}ms`, window: '60s' },
    }),
  });
});

afterAll(async () => {
  await h?.cleanup();
});

async function writeSettled(path: string, content: Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

const allDecisions = async () => await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 100_000 });
const decisionFor = async (id: string) => (await allDecisions()).find((d) => d.subjectId === id) ?? null;

describe('restart on the same store', () => {
  it('loses nothing stored, reads no file twice, and finalises pending decisions', async () => {
    const t = Math.floor(Date.now() / 1000) * 1000 - 30_000;
    const seen = newAccessKeyId();
    const stranger = newAccessKeyId();
    const pendingKey = newAccessKeyId();
    await h.ingest('gw1', [heartbeat('gw1', t), observation({ accessKeyId: seen, at: t - 5_000, span: 3_000 })]);

    // File A: one attested call and one external call, final at once.
    const fileA = join(h.config.cloudtrail.watch_dir!, 'AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/a.json.gz');
    const attested = cloudTrailRecord({ key: seen, sourceIp: GW1_IP, time: t });
    const external = cloudTrailRecord({ key: stranger, sourceIp: EXTERNAL_IP, time: t });
    await writeSettled(fileA, gzipSync(JSON.stringify({ Records: [attested, external] })));
    await waitFor(() => h.logs.find('cloudtrail_file_processed').length === 1, 'file A processed');
    expect(await decisionFor(attested.eventID)).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
    expect(await decisionFor(external.eventID)).toMatchObject({ disposition: 'finding', rule: 'external' });

    // A call of this very second: a provisional finding, waiting for late telemetry.
    const now = Math.floor(Date.now() / 1000) * 1000;
    const waiting = cloudTrailRecord({ key: pendingKey, sourceIp: EXTERNAL_IP, time: now });
    const posted = await h.postJson('/v1/cloudtrail', cloudTrailEventBridge(waiting));
    expect(posted.json).toMatchObject({ records: 1, pending: 1 });
    expect(await h.app.db.pendingCount()).toBe(1);
    const decisionsBefore = (await allDecisions()).length;
    const findingBefore = await h.app.db.getFinding(await findingIdOf(external.eventID));
    expect(findingBefore).not.toBeNull();

    await h.restart();
    expect(h.logs.find('started')).toHaveLength(1);

    // Stored telemetry is still there and still attests.
    expect(await h.app.db.keySightings(seen, t - 60_000, t + 60_000)).toEqual([
      expect.objectContaining({ gatewayId: 'gw1', accessKeyId: seen, clientIp: '10.20.3.4' }),
    ]);
    expect(await h.app.db.lastHeartbeatMs('gw1')).toBe(t);
    expect(await h.app.db.pendingCount()).toBe(1);
    expect(await h.app.db.getFinding(await findingIdOf(external.eventID))).toEqual(findingBefore);

    // File B arrives after the restart: the watcher works, and file A is not read again.
    const fileB = join(h.config.cloudtrail.watch_dir!, 'AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/b.json');
    const afterRestart = cloudTrailRecord({ key: seen, sourceIp: GW1_IP, time: t + 1_000 });
    await writeSettled(fileB, Buffer.from(JSON.stringify({ Records: [afterRestart] })));
    await waitFor(() => h.logs.find('cloudtrail_file_processed').some((l) => l.path === fileB), 'file B processed after the restart');
    await sleep(400);
    expect(h.logs.find('cloudtrail_file_processed').map((l) => l.path)).toEqual([fileB]);
    expect(await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'processed' })).toBe(1);
    expect(await decisionFor(afterRestart.eventID)).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw1' });

    // The same events again (EventBridge redelivery) are duplicates, not new decisions.
    const again = await h.postJson('/v1/cloudtrail', [attested, external, waiting].map(cloudTrailEventBridge));
    expect(again.json).toMatchObject({ records: 3, duplicate: 3 });

    // The provisional finding is finalised by the new process once its grace period ends.
    const d = await waitFor(
      async () => await decisionFor(waiting.eventID),
      'the pending decision finalised after the restart',
      GRACE_MS + 5_000,
    );
    expect(d).toMatchObject({ disposition: 'finding', rule: 'external', accessKeyId: pendingKey });
    expect(d.decidedMs).toBeGreaterThanOrEqual(now + GRACE_MS);
    expect(await h.app.db.pendingCount()).toBe(0);
    expect(await allDecisions()).toHaveLength(decisionsBefore + 2);
    expect(
      h.logs
        .find('decision')
        .map((l) => String(l.event_id))
        .sort(),
    ).toEqual([String(afterRestart.eventID), String(waiting.eventID)].sort());
  });
});

/** The id of the finding an external decision was folded into (stable per key, source and rule). */
async function findingIdOf(eventId: string): Promise<string> {
  const d = (await decisionFor(eventId))!;
  return findingId(d.accessKeyId, d.sourceIp!, d.rule as RuleName);
}

/**
 * `findings.webhook`: a loopback receiver that fails twice (500) and then
 * accepts gets the finding, in GuardDuty's shape, after retries; a permanent
 * refusal (400) is not retried; a finding not yet delivered when the detector
 * stops is delivered after the restart (the store's outbox holds it).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  type JsonDoc,
} from '../../helpers/detector.js';

interface Hit {
  at: number;
  status: number;
  contentType: string | undefined;
  body: JsonDoc;
}

let receiver: http.Server;
let answers: number[] = [];
const hits: Hit[] = [];
let h: DetectorHarness;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const status = answers.shift() ?? 200;
      hits.push({ at: Date.now(), status, contentType: req.headers['content-type'], body: JSON.parse(text) as JsonDoc });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const port = (receiver.address() as AddressInfo).port;
  h = await startDetector({
    config: { findings: { webhook: `http://127.0.0.1:${port}/hooks/egress` }, correlation: { grace: '300ms', window: '60s' } },
  });
});

afterAll(async () => {
  await h?.cleanup();
  await new Promise<void>((resolve) => {
    receiver.closeAllConnections();
    receiver.close(() => resolve());
  });
});

describe('findings webhook', () => {
  it('retries after 500s and delivers the finding with GuardDuty-shaped fields', async () => {
    answers = [500, 500, 200];
    const key = newAccessKeyId();
    const t = Math.floor(Date.now() / 1000) * 1000 - 30_000;
    const r = cloudTrailRecord({ key, sourceIp: EXTERNAL_IP, time: t });
    // A suppressed event in the same batch must not be posted.
    const seen = newAccessKeyId();
    await h.ingest('gw1', [heartbeat('gw1', t), observation({ accessKeyId: seen, at: t - 2_000 })]);
    const suppressed = cloudTrailRecord({ key: seen, sourceIp: GW1_IP, time: t });
    const a = await h.postJson('/v1/cloudtrail', [cloudTrailEventBridge(suppressed), cloudTrailEventBridge(r)]);
    expect(a.status).toBe(200);

    await waitFor(() => hits.filter((x) => x.status === 200).length === 1, 'the delivery accepted', 10_000);
    expect(hits.map((x) => x.status)).toEqual([500, 500, 200]);
    expect(hits[1]!.at - hits[0]!.at).toBeGreaterThanOrEqual(200);
    const bodies = hits.map((x) => x.body);
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    const f = bodies[2]!;
    expect(hits[2]!.contentType).toBe('application/json');
    expect(f).toMatchObject({
      schemaVersion: '2.0',
      type: 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
      severity: 8,
      accountId: '111122223333',
      region: 'us-east-1',
      partition: 'aws',
      resource: {
        resourceType: 'AccessKey',
        accessKeyDetails: { accessKeyId: key, userType: 'AssumedRole', userName: 'app-server-role' },
        instanceDetails: { instanceId: 'i-0a1b2c3d4e5f67890' },
      },
      service: {
        action: {
          actionType: 'AWS_API_CALL',
          awsApiCallAction: {
            api: 'GetCallerIdentity',
            serviceName: 'sts.amazonaws.com',
            callerType: 'Remote IP',
            remoteIpDetails: { ipAddressV4: EXTERNAL_IP },
          },
        },
        count: 1,
        eventFirstSeen: r.eventTime,
        eventLastSeen: r.eventTime,
        archived: false,
      },
      egressWitness: { rule: 'external', disposition: 'finding', eventIds: [r.eventID] },
    });
    expect(f.id).toMatch(/^[0-9a-f]{32}$/);
    expect(typeof f.title).toBe('string');
    expect(bodies.some((b) => b.resource.accessKeyDetails.accessKeyId === seen)).toBe(false);
    // The receiver saw the 200 before the detector read it: the count follows.
    await waitFor(
      async () => (await h.metric('egress_witness_detector_webhook_deliveries_total', { outcome: 'delivered' })) === 1,
      'the delivery counted',
    );
    expect(await h.metric('egress_witness_detector_webhook_deliveries_total', { outcome: 'retried' })).toBe(2);
  });

  it('gives up at once on a permanent refusal (400) and goes on with the next finding', async () => {
    answers = [400, 200];
    hits.length = 0;
    const t = Math.floor(Date.now() / 1000) * 1000 - 30_000;
    const k1 = newAccessKeyId();
    const k2 = newAccessKeyId();
    await h.postJson(
      '/v1/cloudtrail',
      [cloudTrailRecord({ key: k1, sourceIp: EXTERNAL_IP, time: t }), cloudTrailRecord({ key: k2, sourceIp: EXTERNAL_IP, time: t })].map(
        cloudTrailEventBridge,
      ),
    );
    await waitFor(() => hits.length === 2, 'two deliveries');
    await sleep(300);
    // Two findings of one slice carry the same enqueue time: which goes first is the store's tie-break.
    // The first delivery is refused for good and not retried; the other finding is delivered next.
    expect(hits.map((x) => x.status)).toEqual([400, 200]);
    expect(hits.map((x): unknown => x.body.resource.accessKeyDetails.accessKeyId).sort()).toEqual([k1, k2].sort());
    expect(await h.metric('egress_witness_detector_webhook_deliveries_total', { outcome: 'failed' })).toBe(1);
    expect(h.logs.find('webhook_gave_up')).toHaveLength(1);
  });

  it('a finding the receiver has not taken yet survives a restart and is delivered after it, once', async () => {
    answers = Array.from({ length: 1_000 }, () => 503);
    hits.length = 0;
    const key = newAccessKeyId();
    const t = Math.floor(Date.now() / 1000) * 1000 - 30_000;
    await h.postJson('/v1/cloudtrail', [cloudTrailEventBridge(cloudTrailRecord({ key, sourceIp: EXTERNAL_IP, time: t }))]);
    await waitFor(() => hits.length >= 1, 'a refused delivery');
    expect((await h.app.status()).webhook_outbox).toMatchObject({ pending: 1 });
    await h.restart();
    answers = [];
    await waitFor(() => hits.some((x) => x.status === 200), 'the delivery after the restart', 10_000);
    await sleep(300);
    const taken = hits.filter((x) => x.status === 200);
    expect(taken).toHaveLength(1);
    expect(taken[0]!.body.resource.accessKeyDetails.accessKeyId).toBe(key);
    expect((await h.app.status()).webhook_outbox).toMatchObject({ pending: 0 });
    expect(await h.metric('egress_witness_detector_webhook_deliveries_total', { outcome: 'delivered' })).toBe(1);
  });

  it('a 404 from the receiver is configuration: retried, never given up, and the error names findings.webhook', async () => {
    answers = [404, 200];
    hits.length = 0;
    const gaveUp = h.logs.find('webhook_gave_up').length;
    const key = newAccessKeyId();
    const t = Math.floor(Date.now() / 1000) * 1000 - 30_000;
    await h.postJson('/v1/cloudtrail', [cloudTrailEventBridge(cloudTrailRecord({ key, sourceIp: EXTERNAL_IP, time: t }))]);
    await waitFor(() => hits.some((x) => x.status === 200), 'the delivery after the 404', 10_000);
    expect(hits.map((x): unknown[] => [x.status, x.body.resource.accessKeyDetails.accessKeyId])).toEqual([
      [404, key],
      [200, key],
    ]);
    const line = h.logs.find('webhook_misconfigured')[0]!;
    expect(line).toMatchObject({ level: 'error', reason: 'http-404', failure: 'delivery-misconfigured' });
    expect(line.msg).toContain('check findings.webhook');
    expect(h.logs.find('webhook_gave_up')).toHaveLength(gaveUp);
  });
});

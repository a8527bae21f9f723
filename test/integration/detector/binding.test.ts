/**
 * Instance binding through the running detector: an inventory file
 * (describe-instances JSON), signed telemetry over /v1/telemetry, CloudTrail
 * over /v1/cloudtrail, decisions out of the store and findings out of
 * `findings.file`. Then the inventory changes under the daemon: the file is
 * rewritten (read again on change), translated_networks arrives by reload,
 * and a file that turns bad keeps the last good inventory.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import {
  cloudTrailEventBridge,
  cloudTrailRecord,
  deepMerge,
  GW1_IP,
  latestFindings,
  newAccessKeyId,
  startDetector,
  validDetectorConfig,
  waitFor,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';

/** The instance the IMDSv2 STS fixture's key belongs to, and another routed host. */
const OWN = 'i-0a1b2c3d4e5f67890';
const OTHER = 'i-0def4567890abcdef';

function describeInstances(instances: { id: string; ip: string }[]): JsonDoc {
  return {
    Reservations: [
      {
        ReservationId: 'r-0123456789abcdef0',
        OwnerId: '111122223333',
        Instances: instances.map((i) => ({
          InstanceId: i.id,
          InstanceType: 't3.micro',
          LaunchTime: '2024-05-01T08:00:00+00:00',
          PrivateIpAddress: i.ip,
          State: { Code: 16, Name: 'running' },
          NetworkInterfaces: [
            { PrivateIpAddress: i.ip, PrivateIpAddresses: [{ Primary: true, PrivateIpAddress: i.ip }], Ipv6Addresses: [] },
          ],
        })),
      },
    ],
  };
}

let h: DetectorHarness;
let inventoryPath: string;

beforeAll(async () => {
  h = await startDetector({
    config: async (dir) => {
      inventoryPath = join(dir, 'instances.json');
      await writeFile(
        inventoryPath,
        JSON.stringify(
          describeInstances([
            { id: OWN, ip: '10.20.1.10' },
            { id: OTHER, ip: '10.20.7.7' },
          ]),
        ),
      );
      return { inventory: { files: [inventoryPath] }, correlation: { window: '60s', grace: '1s', heartbeat_stale: '2m' } };
    },
    deps: { inventoryFileCheckMs: 50 },
  });
});

afterAll(async () => {
  await h?.cleanup();
});

function past(seconds = 30): number {
  return Math.floor(Date.now() / 1000) * 1000 - seconds * 1000;
}

/** One event of OWN's key through gw1, presented by `clientIp` in `network`; its stored decision. */
async function decide(clientIp: string, network = 'vpc-prod') {
  const k = newAccessKeyId();
  const t = past();
  await h.ingest('gw1', [observation({ accessKeyId: k, at: t - 12_000, span: 4_000, clientIp, network }), heartbeat('gw1', t)]);
  const record = cloudTrailRecord({ key: k, sourceIp: GW1_IP, time: t });
  const a = await h.postJson('/v1/cloudtrail', cloudTrailEventBridge(record));
  expect(a.status, a.text).toBe(200);
  const id = String(record.eventID);
  const d = await waitFor(
    async () => (await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 10_000 })).find((x) => x.subjectId === id),
    `the decision on ${id}`,
  );
  return { key: k, decision: d, detail: d.detail as JsonDoc };
}

describe('instance binding in the daemon', () => {
  it('reads the inventory file at start and says so', async () => {
    expect(h.app.inventory.size).toEqual({ current: 2, instances: 2, holdings: 2 });
    expect(await h.metric('egress_witness_detector_inventory_instances')).toBe(2);
    expect(h.logs.find('inventory_read')[0]).toMatchObject({ instances: 2 });
  });

  it('own instance: suppressed, attested, binding "instance"', async () => {
    const { decision, detail } = await decide('10.20.1.10');
    expect(decision).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw1' });
    expect(detail.evidence[0]).toMatchObject({ clientIp: '10.20.1.10', binding: 'instance', clientInstanceId: OWN });
  });

  it('another routed host: a wrong-client finding, in the store and the findings file', async () => {
    const { key, decision, detail } = await decide('10.20.7.7');
    expect(decision).toMatchObject({ disposition: 'finding', rule: 'wrong-client', gatewayId: 'gw1' });
    expect(detail.reason).toMatch(
      new RegExp(`^key of ${OWN} \\(10\\.20\\.1\\.10\\) presented by 10\\.20\\.7\\.7 \\(${OTHER}\\) through gw1 at `),
    );
    const findings = await waitFor(async () => {
      const all = [...latestFindings(await readFile(h.findingsFile, 'utf8').catch(() => '')).values()];
      return all.find((f) => f.resource.accessKeyDetails.accessKeyId === key);
    }, 'the finding');
    expect(findings).toMatchObject({ severity: 8, egressWitness: { rule: 'wrong-client' } });
    expect(await h.metric('egress_witness_detector_decisions_total', { disposition: 'finding', rule: 'wrong-client' })).toBeGreaterThan(0);
  });

  it('a changed file is read again: the instance gone from it is unknown', async () => {
    await writeFile(inventoryPath, JSON.stringify(describeInstances([{ id: OTHER, ip: '10.20.7.7' }])));
    await waitFor(() => h.app.inventory.size.current === 1 || null, 'the file read again');
    // OWN's holding ended now; the event 30 s ago still finds it, one in the future would not.
    const { decision, detail } = await decide('10.20.7.7');
    expect(decision).toMatchObject({ disposition: 'finding', rule: 'wrong-client' });
    expect(detail.evidence[0]).toMatchObject({ binding: 'other', clientInstanceId: OTHER });
  });

  it('a file that turns bad keeps the last good inventory, counted and logged', async () => {
    await writeFile(inventoryPath, '{"Reservations": ');
    await waitFor(() => h.logs.find('inventory_read_failed').length > 0 || null, 'the failed read');
    expect(await h.metric('egress_witness_detector_inventory_reads_total', { source: 'file', outcome: 'failed' })).toBeGreaterThan(0);
    expect(h.app.inventory.size.current).toBe(1);
    await writeFile(
      inventoryPath,
      JSON.stringify(
        describeInstances([
          { id: OWN, ip: '10.20.1.10' },
          { id: OTHER, ip: '10.20.7.7' },
        ]),
      ),
    );
    await waitFor(() => h.app.inventory.view().knows(OWN, Date.now() + 1000) || null, 'the good file read again');
  });

  it('translated_networks by reload: the network binds to nothing, attested "translated"', async () => {
    const raw = JSON.parse(await readFile(h.configPath, 'utf8')) as JsonDoc;
    expect(
      await h.app.reload({ ok: true, value: validDetectorConfig(deepMerge(raw, { inventory: { translated_networks: ['branch-nat'] } })) }),
    ).toBe(true);
    const { decision, detail } = await decide('10.20.7.7', 'branch-nat');
    expect(decision).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
    expect(detail.evidence[0]).toMatchObject({ network: 'branch-nat', binding: 'translated', clientInstanceId: null });
  });
});

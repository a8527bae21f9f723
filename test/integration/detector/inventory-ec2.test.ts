/**
 * The inventory's EC2 polling through the real @aws-sdk/client-ec2 and STS
 * credential provider, against a loopback server speaking EC2's and STS's
 * query protocols: every page of DescribeInstances, two regions, accounts
 * reached through AssumeRole, and a failing region that keeps what it listed
 * last. Then the same polling inside the running detector.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/log/logger.js';
import { Inventory, type InventoryConfig } from '../../../detector/inventory/inventory.js';
import { createDetectorMetrics } from '../../../detector/metrics/metrics.js';
import { fakeEc2Env, startFakeEc2, type FakeEc2, type FakeInstance } from '../../helpers/fake-ec2.js';
import { startDetector, waitFor } from '../../helpers/detector.js';

const OWN = '111122223333';
const OTHER = '222233334444';
const OWN_ROLE = `arn:aws:iam::${OWN}:role/inventory-reader`;
const OTHER_ROLE = `arn:aws:iam::${OTHER}:role/inventory-reader`;

const inst = (n: number, ip: string, extra: Partial<FakeInstance> = {}): FakeInstance => ({
  id: `i-0${n.toString(16).padStart(16, '0')}`,
  ips: [ip],
  ...extra,
});

let fake: FakeEc2;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  fake = await startFakeEc2({ ownAccount: OWN, pageSize: 2 });
  const env = fakeEc2Env(fake.endpoint);
  for (const k of Object.keys(env)) saved[k] = process.env[k];
  Object.assign(process.env, env);
});

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await fake?.close();
});

function inventory(ec2: NonNullable<InventoryConfig['ec2']>) {
  const metrics = createDetectorMetrics(new Registry(), { version: '0.0.0', nodeVersion: process.version });
  const inv = new Inventory(
    { files: [], ec2, translated_networks: [] },
    { metrics, logger: createLogger({ level: 'silent', name: 'test' }), now: Date.now, retentionMs: () => 8 * 3_600_000 },
  );
  const reads = async (outcome: string) =>
    (await metrics.inventoryReads.get()).values.filter((v) => v.labels.outcome === outcome).reduce((a, v) => a + v.value, 0);
  return { inv, metrics, reads };
}

describe('inventory.ec2 through the real SDK', () => {
  it('lists every page of two regions in two accounts, each through its role', async () => {
    fake.setInstances(OWN, 'us-east-1', [
      inst(1, '10.20.1.1', { ipv6: ['fd12::1'] }),
      inst(2, '10.20.1.2'),
      inst(3, '10.20.1.3'),
      inst(4, '10.20.1.4'),
      inst(5, '10.20.1.5'),
    ]);
    fake.setInstances(OWN, 'eu-west-1', [inst(6, '10.30.1.6')]);
    fake.setInstances(OTHER, 'us-east-1', [inst(7, '10.40.1.7', { ips: ['10.40.1.7', '10.40.1.8'] })]);
    fake.calls.length = 0;
    const { inv, reads } = inventory({
      regions: ['us-east-1', 'eu-west-1'],
      role_arns: [OWN_ROLE, OTHER_ROLE],
      refresh: 300_000,
      endpoint: null,
    });
    try {
      inv.start();
      await inv.poll();
      const now = Date.now();
      const v = inv.view();
      for (let n = 1; n <= 7; n++) expect(v.knows(inst(n, '').id, now), `instance ${n}`).toBe(true);
      expect(v.ownerAt('fd12::1', now)).toBe(inst(1, '').id);
      expect(v.addressesAt(inst(7, '').id, now)).toEqual(['10.40.1.7', '10.40.1.8']);
      // Launched 2024-05-01T08:00Z: known from then, not before.
      expect(v.knows(inst(1, '').id, Date.parse('2024-05-01T07:59:00Z'))).toBe(false);
      expect(inv.size.current).toBe(7);
      expect(await reads('ok')).toBe(4);
      // Each role assumed once, with the detector's session name; 3 pages in us-east-1 of the own account.
      expect(fake.calls.filter((c) => c.startsWith('AssumeRole')).sort()).toEqual([
        `AssumeRole ${OWN_ROLE} egress-witness-inventory`,
        `AssumeRole ${OTHER_ROLE} egress-witness-inventory`,
      ]);
      expect(fake.calls.filter((c) => c === `DescribeInstances ${OWN} us-east-1`)).toHaveLength(3);
      expect(fake.calls.filter((c) => c === `DescribeInstances ${OTHER} eu-west-1`)).toHaveLength(1);
    } finally {
      await inv.stop();
    }
  });

  it('a failing region keeps what it listed last, counted; the others follow their changes', async () => {
    fake.setInstances(OWN, 'us-east-1', [inst(1, '10.20.1.1'), inst(2, '10.20.1.2')]);
    fake.setInstances(OWN, 'eu-west-1', [inst(6, '10.30.1.6')]);
    const { inv, reads } = inventory({ regions: ['us-east-1', 'eu-west-1'], role_arns: [], refresh: 300_000, endpoint: null });
    try {
      inv.start();
      await inv.poll();
      expect(inv.size.current).toBe(3);
      fake.failRegion('eu-west-1', true);
      fake.setInstances(OWN, 'eu-west-1', []);
      fake.setInstances(OWN, 'us-east-1', [inst(1, '10.20.1.1')]);
      const before = Date.now();
      await inv.poll();
      const v = inv.view();
      expect(await reads('failed')).toBe(1);
      expect(v.knows(inst(6, '').id, Date.now() + 1000)).toBe(true);
      expect(v.knows(inst(2, '').id, Date.now() + 1000)).toBe(false);
      expect(v.knows(inst(2, '').id, before - 1000)).toBe(true);
      fake.failRegion('eu-west-1', false);
      await inv.poll();
      expect(inv.view().knows(inst(6, '').id, Date.now() + 1000)).toBe(false);
      expect(await reads('failed')).toBe(1);
    } finally {
      fake.failRegion('eu-west-1', false);
      await inv.stop();
    }
  });

  it('the running detector polls at start, with the endpoint from AWS_ENDPOINT_URL_EC2', async () => {
    fake.setInstances(OWN, 'us-east-1', [inst(1, '10.20.1.1'), inst(2, '10.20.1.2'), inst(3, '10.20.1.3')]);
    const h = await startDetector({ config: { inventory: { ec2: { regions: ['us-east-1'], refresh: '10s' } } } });
    try {
      await waitFor(() => h.app.inventory.size.current === 3 || null, 'the first poll');
      expect(await h.metric('egress_witness_detector_inventory_instances')).toBe(3);
      expect(await h.metric('egress_witness_detector_inventory_reads_total', { source: 'ec2', outcome: 'ok' })).toBeGreaterThan(0);
    } finally {
      await h.cleanup();
    }
  });
});

/**
 * Instance binding: the routed client that presented instance-role credentials against the
 * inventory's address history at the event's time. One scenario per outcome, then address reuse.
 */
import { describe, expect, it } from 'vitest';
import { decide } from '../../../../detector/correlate/decide.js';
import { AddressHistory, type ListedInstance } from '../../../../detector/inventory/history.js';
import { inventoryView } from '../../../../detector/inventory/view.js';
import { context, MIN, observation, SEC, stsCall, T } from '../scenario.js';

/** The stsCall fixture's key belongs to this instance (its role session name). */
const OWN = 'i-0a1b2c3d4e5f67890';
const OTHER = 'i-0def4567890abcdef';
const H = 60 * MIN;

const listed = (instanceId: string, addresses: string[], sinceMs: number | null = null, untilMs: number | null = null): ListedInstance => ({
  instanceId,
  addresses,
  sinceMs,
  untilMs,
});

function inventory(instances: ListedInstance[], translated: string[] = []) {
  return inventoryView(AddressHistory.empty().withSource('file:test', instances, T - 2 * H), translated);
}

describe('instance binding', () => {
  it('own instance: attested, binding "instance", and the reason says so', () => {
    const inv = inventory([listed(OWN, ['10.20.3.4']), listed(OTHER, ['10.20.7.7'])]);
    const d = decide(stsCall(), context([observation()], { inventory: inv }));
    expect(d).toMatchObject({ disposition: 'suppressed', rule: 'attested', gatewayId: 'gw1' });
    expect(d.evidence).toEqual([expect.objectContaining({ clientIp: '10.20.3.4', binding: 'instance', clientInstanceId: OWN })]);
    expect(d.reason).toBe(`gateway gw1 saw key ASIA…MPLE from 10.20.3.4 (vpc-prod) at 12:00:57Z, an address of its own instance ${OWN}`);
  });

  it('another routed host: a wrong-client finding naming both instances and the gateway', () => {
    const inv = inventory([listed(OWN, ['10.20.1.10']), listed(OTHER, ['10.20.3.4'])]);
    const d = decide(stsCall(), context([observation()], { inventory: inv }));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'wrong-client', severity: 8, gatewayId: 'gw1', instanceId: OWN });
    expect(d.reason).toBe(`key of ${OWN} (10.20.1.10) presented by 10.20.3.4 (${OTHER}) through gw1 at 12:00:57Z`);
    expect(d.evidence).toEqual([expect.objectContaining({ clientIp: '10.20.3.4', binding: 'other', clientInstanceId: OTHER })]);
  });

  it('a client address no instance holds is another address too', () => {
    const inv = inventory([listed(OWN, ['10.20.1.10'])]);
    const records = [observation(), observation({ clientIp: '10.20.9.9', at: T - 40 * SEC })];
    const d = decide(stsCall(), context(records, { inventory: inv }));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'wrong-client' });
    expect(d.reason).toBe(
      `key of ${OWN} (10.20.1.10) presented by 10.20.3.4 (no known instance) through gw1 at 12:00:57Z, and by 1 other client`,
    );
  });

  it('the own instance among other clients: attested on the own instance alone', () => {
    const inv = inventory([listed(OWN, ['10.20.1.10']), listed(OTHER, ['10.20.3.4'])]);
    const records = [observation(), observation({ clientIp: '10.20.1.10', at: T - 4 * MIN })];
    const d = decide(stsCall(), context(records, { inventory: inv }));
    expect(d).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
    expect(d.evidence).toEqual([expect.objectContaining({ clientIp: '10.20.1.10', binding: 'instance' })]);
  });

  it('instance missing from the inventory: attested, binding "unknown"', () => {
    const inv = inventory([listed(OTHER, ['10.20.3.4'])]);
    const d = decide(stsCall(), context([observation()], { inventory: inv }));
    expect(d).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
    expect(d.evidence).toEqual([expect.objectContaining({ binding: 'unknown', clientInstanceId: OTHER })]);
    expect(d.reason).toBe('gateway gw1 saw key ASIA…MPLE from 10.20.3.4 (vpc-prod) at 12:00:57Z');
  });

  it('translated network: attested, binding "translated", no instance named', () => {
    const inv = inventory([listed(OWN, ['10.20.1.10']), listed(OTHER, ['10.20.3.4'])], ['vpc-prod']);
    const d = decide(stsCall(), context([observation()], { inventory: inv }));
    expect(d).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
    expect(d.evidence).toEqual([expect.objectContaining({ network: 'vpc-prod', binding: 'translated', clientInstanceId: null })]);
  });

  it('unrouted clients stay unrouted-client: binding is about routed clients', () => {
    const inv = inventory([listed(OWN, ['10.20.1.10'])]);
    const d = decide(stsCall(), context([observation({ network: null, clientIp: '192.168.9.9' })], { inventory: inv }));
    expect(d).toMatchObject({ disposition: 'finding', rule: 'unrouted-client' });
  });

  it('IPv6 and IPv4-mapped client addresses match the inventory in any spelling', () => {
    const inv = inventory([listed(OWN, ['fd12::10'])]);
    const v6 = decide(stsCall(), context([observation({ clientIp: 'fd12:0:0::10' })], { inventory: inv }));
    expect(v6.evidence[0]).toMatchObject({ binding: 'instance' });
    const mapped = inventory([listed(OWN, ['10.20.3.4'])]);
    const d = decide(stsCall(), context([observation({ clientIp: '::ffff:10.20.3.4' })], { inventory: mapped }));
    expect(d.evidence[0]).toMatchObject({ binding: 'instance' });
  });

  describe('an address reused by a new instance after the old one stopped', () => {
    // OWN held 10.20.3.4 until T - 1 h; OTHER was launched at T - 30 min and got it; OWN lives on at 10.20.1.10.
    let history = AddressHistory.empty();
    history = history.withSource('ec2:own:us-east-1', [listed(OWN, ['10.20.3.4', '10.20.1.10'], T - 5 * H)], T - 2 * H);
    history = history.withSource('ec2:own:us-east-1', [listed(OWN, ['10.20.1.10'], T - 5 * H)], T - H);
    history = history.withSource(
      'ec2:own:us-east-1',
      [listed(OWN, ['10.20.1.10'], T - 5 * H), listed(OTHER, ['10.20.3.4'], T - 30 * MIN)],
      T,
    );
    const inv = inventoryView(history, []);

    it('an event before the reuse is judged by the old owner (the key was its own)', () => {
      const at = T - 90 * MIN;
      const event = stsCall({ eventTimeMs: at, eventTime: new Date(at).toISOString() });
      const d = decide(event, context([observation({ at: at - 20 * SEC })], { inventory: inv }));
      expect(d).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
      expect(d.evidence[0]).toMatchObject({ binding: 'instance', clientInstanceId: OWN });
    });

    it('an event after the reuse is judged by the new owner', () => {
      const d = decide(stsCall(), context([observation()], { inventory: inv }));
      expect(d).toMatchObject({ disposition: 'finding', rule: 'wrong-client' });
      expect(d.reason).toContain(`presented by 10.20.3.4 (${OTHER})`);
      const own = decide(stsCall({ identity: { sessionName: OTHER } }), context([observation()], { inventory: inv }));
      expect(own).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
      expect(own.evidence[0]).toMatchObject({ binding: 'instance', clientInstanceId: OTHER });
    });

    it("the new owner's key before it existed is not bound to anything", () => {
      const at = T - 90 * MIN;
      const event = stsCall({ eventTimeMs: at, eventTime: new Date(at).toISOString(), identity: { sessionName: OTHER } });
      const d = decide(event, context([observation({ at: at - 20 * SEC })], { inventory: inv }));
      expect(d).toMatchObject({ disposition: 'suppressed', rule: 'attested' });
      expect(d.evidence[0]).toMatchObject({ binding: 'unknown', clientInstanceId: OWN });
    });
  });
});

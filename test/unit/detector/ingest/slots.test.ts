import { describe, expect, it } from 'vitest';
import { clientSource, Slots } from '../../../../detector/ingest/slots.js';

const limits = { total: 32, perGateway: 4, events: 8 };
const gw = (id: string, source: string) => ({ kind: 'gateway' as const, id, source });

describe('ingest slots', () => {
  it("a gateway's slots are per source: forgeries from one source leave the agent's own", () => {
    const slots = new Slots(() => limits);
    for (let i = 0; i < 4; i++) expect(slots.tryAcquire(gw('gw1', '198.51.100.7'))).not.toBeNull();
    expect(slots.tryAcquire(gw('gw1', '198.51.100.7'))).toBeNull();
    expect(slots.tryAcquire(gw('gw1', '192.0.2.10'))).not.toBeNull();
  });

  it('one source holds at most two gateway shares across all gateways, and a release gives a slot back', () => {
    const slots = new Slots(() => limits);
    const held = [];
    for (const id of ['gw1', 'gw2']) for (let i = 0; i < 4; i++) held.push(slots.tryAcquire(gw(id, '198.51.100.7')));
    expect(held.every((r) => r !== null)).toBe(true);
    expect(slots.tryAcquire(gw('gw3', '198.51.100.7'))).toBeNull();
    expect(slots.tryAcquire(gw('gw3', '192.0.2.10'))).not.toBeNull();
    held[0]?.();
    held[0]?.(); // idempotent
    expect(slots.inUse).toBe(8);
    expect(slots.tryAcquire(gw('gw3', '198.51.100.7'))).not.toBeNull();
    expect(slots.tryAcquire(gw('gw3', '198.51.100.7'))).toBeNull();
  });

  it('the total bounds everything; the event routes have their own pool', () => {
    const slots = new Slots(() => ({ total: 10, perGateway: 4, events: 2 }));
    for (let i = 0; i < 8; i++) expect(slots.tryAcquire(gw(`gw${i}`, `192.0.2.${i}`))).not.toBeNull();
    expect(slots.tryAcquire({ kind: 'events' })).not.toBeNull();
    expect(slots.tryAcquire({ kind: 'events' })).not.toBeNull();
    expect(slots.tryAcquire({ kind: 'events' })).toBeNull();
    expect(slots.tryAcquire(gw('gw9', '192.0.2.9'))).toBeNull();
  });

  it('counts a client by its IPv4 address (mapped forms folded) or its IPv6 /64', () => {
    expect(clientSource('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(clientSource('192.0.2.1')).toBe('192.0.2.1');
    expect(clientSource('2001:db8:0:1:2::3')).toBe('2001:db8:0:1::/64');
    expect(clientSource('2001:db8:0:1:ffff::9')).toBe('2001:db8:0:1::/64');
    expect(clientSource('not an address')).toBe('not an address');
  });
});

import { describe, expect, it } from 'vitest';
import { MemoryEvidence } from '../../../../detector/correlate/memory-evidence.js';
import { heartbeat, KEY, MIN, observation, SEC, T, tunnelObservation } from '../scenario.js';

describe('MemoryEvidence', () => {
  it('answers key lookups by span overlap, across gateways', () => {
    const m = new MemoryEvidence();
    m.addRecord('gw1', observation({ at: T - 20 * SEC, span: 10 * SEC }));
    m.addRecord('gw2', observation({ gatewayId: 'gw2', at: T + MIN }));
    m.addRecord('gw1', observation({ accessKeyId: 'ASIAOTHERKEY7EXAMPLE' }));
    expect(m.size).toBe(3);
    expect(m.keySightings(KEY, T - 15 * SEC, T).map((s) => s.gatewayId)).toEqual(['gw1']);
    expect(m.keySightings(KEY, T - 9 * SEC, T)).toEqual([]);
    expect(m.keySightings(KEY, T - 10 * SEC, T - 10 * SEC)).toHaveLength(1);
    expect(m.keySightings(KEY, T - MIN, T + 2 * MIN).map((s) => s.gatewayId)).toEqual(['gw1', 'gw2']);
    expect(m.keySightings('ASIANOTSEEN7EXAMPLE0', 0, Infinity)).toEqual([]);
  });

  it('converts observations to sightings and keeps unrouted ones', () => {
    const m = new MemoryEvidence();
    m.addRecord('gw1', observation({ clientIp: '192.168.9.9', network: null }));
    expect(m.keySightings(KEY, T - MIN, T)).toEqual([
      {
        gatewayId: 'gw1',
        clientIp: '192.168.9.9',
        network: null,
        firstSeenMs: T - 20 * SEC,
        lastSeenMs: T - 10 * SEC,
        count: 3,
        host: 'sts.us-east-1.amazonaws.com',
        service: 'sts',
        region: 'us-east-1',
        action: 'GetCallerIdentity',
        accessKeyId: KEY,
        mode: 'inspect',
        capture: 'explicit',
        outcome: 'ok',
      },
    ]);
  });

  it('takes the gateway id from the authenticated sender, not the record', () => {
    const m = new MemoryEvidence();
    m.addRecord('gw1', observation({ gatewayId: 'gw-claimed' }));
    expect(m.keySightings(KEY, T - MIN, T)[0]?.gatewayId).toBe('gw1');
    expect(m.heartbeatNear('gw-claimed', 0, Infinity)).toBe(false);
  });

  it('indexes endpoints by gateway, service and exact region (null = global)', () => {
    const m = new MemoryEvidence();
    m.addRecord('gw2', tunnelObservation());
    m.addRecord('gw2', tunnelObservation({ host: 'sts.amazonaws.com', aws: { service: 'sts', region: null, partition: 'aws' } }));
    m.addRecord('gw2', tunnelObservation({ host: 'example.org', aws: null }));
    expect(m.endpointSightings('gw2', 'sts', 'us-east-1', T - MIN, T)).toHaveLength(1);
    expect(m.endpointSightings('gw2', 'sts', null, T - MIN, T).map((s) => s.host)).toEqual(['sts.amazonaws.com']);
    expect(m.endpointSightings('gw1', 'sts', 'us-east-1', T - MIN, T)).toEqual([]);
    expect(m.endpointSightings('gw2', 'sts', 'us-east-1', T, T + MIN)).toEqual([]);
  });

  it('counts heartbeats and observations as liveness', () => {
    const m = new MemoryEvidence();
    m.addRecord('gw1', heartbeat('gw1', T));
    m.addRecord('gw2', tunnelObservation({ host: 'example.org', aws: null, at: T + 5 * MIN, span: MIN }));
    expect(m.heartbeatNear('gw1', T - 1, T + 1)).toBe(true);
    expect(m.heartbeatNear('gw1', T + 1, T + MIN)).toBe(false);
    expect(m.heartbeatNear('gw2', T + 5 * MIN + 30 * SEC, T + 5 * MIN + 30 * SEC)).toBe(true);
    expect(m.heartbeatNear('gw3', 0, Infinity)).toBe(false);
  });

  it('handles records added out of time order', () => {
    const m = new MemoryEvidence();
    for (const offset of [5, 1, 4, 2, 3]) m.addRecord('gw1', observation({ at: T + offset * MIN, clientIp: `10.0.0.${offset}` }));
    expect(m.keySightings(KEY, T + 2 * MIN, T + 4 * MIN).map((s) => s.clientIp)).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4']);
    m.addRecord('gw1', observation({ at: T, clientIp: '10.0.0.0' }));
    expect(m.keySightings(KEY, T, T + MIN).map((s) => s.clientIp)).toEqual(['10.0.0.0', '10.0.0.1']);
  });

  it('skips records with unparseable times', () => {
    const m = new MemoryEvidence();
    expect(m.addRecord('gw1', { ...heartbeat('gw1', T), time: 'never' })).toBe(false);
    expect(m.addRecord('gw1', { ...observation(), firstSeen: 'soon' })).toBe(false);
    expect(m.size).toBe(0);
  });
});

// The observation fields `reason`, `capture` and `originalIp` are compatible extensions of schema 1: a
// detector that predates them (its schema without the fields) still accepts a new agent's batch, and a
// new detector accepts an old agent's batch without them. Neither side's `outcome` or `mode` set changed.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SCHEMA_VERSION, batchSchema, heartbeatSchema, observationSchema, validateBatch } from '../../../protocol/telemetry.js';

function batch(observation: Record<string, unknown>): Record<string, unknown> {
  return {
    schemaVersion: SCHEMA_VERSION,
    batchId: 'b-0000000001',
    gatewayId: 'gw-a',
    agent: { version: '0.1.0', startedAt: '2026-11-25T12:00:00.000Z' },
    sequence: 0,
    egressCidrs: ['203.0.113.0/28'],
    sentAt: '2026-11-25T12:00:01.000Z',
    records: [observation],
  };
}

const observation = {
  type: 'observation',
  schema: SCHEMA_VERSION,
  gatewayId: 'gw-a',
  firstSeen: '2026-11-25T12:00:00.000Z',
  lastSeen: '2026-11-25T12:00:00.500Z',
  count: 1,
  clientIp: '10.0.0.5',
  network: 'lab',
  mode: 'inspect',
  host: 'sts.us-east-1.amazonaws.com',
  port: 443,
  resolvedIp: null,
  aws: { service: 'sts', region: 'us-east-1', partition: 'aws' },
  accessKeyId: null,
  action: null,
  bytesUp: 0,
  bytesDown: 0,
  outcome: 'upstream_error',
  status: { '5xx': 1 },
};

/** The batch schema as a detector from before `reason` had it. */
const oldObservation = observationSchema.omit({ reason: true });
const oldBatch = batchSchema.extend({ records: z.array(z.discriminatedUnion('type', [oldObservation, heartbeatSchema])) });

describe('observation reason: compatible both ways', () => {
  it('a new detector accepts a record with a reason, and one without (older agents)', () => {
    const withReason = validateBatch(batch({ ...observation, reason: 'upstream-tls-verify-failed' }));
    expect(withReason.ok && withReason.batch.records[0]).toMatchObject({ outcome: 'upstream_error', reason: 'upstream-tls-verify-failed' });
    expect(validateBatch(batch(observation)).ok).toBe(true);
    expect(validateBatch(batch({ ...observation, reason: null })).ok).toBe(true);
  });

  it('an older detector accepts a new agent record and drops the unknown field', () => {
    const r = oldBatch.safeParse(batch({ ...observation, reason: 'destination-denied:private' }));
    expect(r.success).toBe(true);
    expect(r.data?.records[0]).not.toHaveProperty('reason');
  });

  it('refuses a reason that is not a short lower-case word', () => {
    for (const bad of ['Upstream Error', 'x'.repeat(65), '', 'a\nb']) {
      const r = validateBatch(batch({ ...observation, reason: bad }));
      expect(r.ok, JSON.stringify(bad)).toBe(false);
    }
  });
});

/** The batch schema as a detector from before `capture` and `originalIp` had it. */
const preCapture = observationSchema.omit({ capture: true, originalIp: true });
const preCaptureBatch = batchSchema.extend({ records: z.array(z.discriminatedUnion('type', [preCapture, heartbeatSchema])) });

describe('observation capture and originalIp: compatible both ways', () => {
  const transparent = { ...observation, mode: 'tunnel', capture: 'transparent', originalIp: '198.51.100.20' };

  it('a new detector accepts records with them, and without them (older agents)', () => {
    const r = validateBatch(batch(transparent));
    expect(r.ok && r.batch.records[0]).toMatchObject({ capture: 'transparent', originalIp: '198.51.100.20' });
    const old = validateBatch(batch(observation));
    expect(old.ok && old.batch.records[0]).not.toHaveProperty('capture');
    expect(validateBatch(batch({ ...observation, capture: 'explicit', originalIp: null })).ok).toBe(true);
  });

  it('an older detector accepts a new agent record and drops the unknown fields', () => {
    const r = preCaptureBatch.safeParse(batch(transparent));
    expect(r.success).toBe(true);
    expect(r.data?.records[0]).not.toHaveProperty('capture');
    expect(r.data?.records[0]).not.toHaveProperty('originalIp');
  });

  it('refuses a capture outside its closed set and an over-long originalIp', () => {
    expect(validateBatch(batch({ ...observation, capture: 'tproxy' })).ok).toBe(false);
    expect(validateBatch(batch({ ...observation, originalIp: '1'.repeat(46) })).ok).toBe(false);
  });
});

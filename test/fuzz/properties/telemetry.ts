/**
 * The telemetry wire contract (protocol/telemetry.ts, protocol/signature.ts):
 * batches generated field by field within the schema, sealed the way the
 * agent's spool sink seals them (JSON, gzip), then damaged structurally;
 * signature headers built the way the shipper signs, then damaged as text.
 *
 * Properties: never throws; a sealed batch validates and reads back exactly
 * (serialise → validate round trip); a refused batch names a path; a batch
 * that validates carries only access keys of the wire's shape that the input
 * holds; a signature verifies over its own body and timestamp only.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { parseSignatureHeader, signatureHeader, verifySignature } from '../../../protocol/signature.js';
import {
  ACCESS_KEY_ID_PATTERN,
  CAPTURES,
  KEY_KINDS,
  OBSERVATION_MODES,
  OUTCOMES,
  SCHEMA_VERSION,
  validateBatch,
  validateRecord,
  type TelemetryBatch,
  type TelemetryRecord,
} from '../../../protocol/telemetry.js';
import { accessKeyId } from '../lib/aws-request.js';
import { applyTextMutations, mutatedJson, stringsIn, textMutation } from '../lib/mutate.js';
import { callParser, deepEqual, ensure, type FuzzTarget } from '../lib/target.js';

const iso = fc
  .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString());
const gatewayId = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/);
const count = fc.nat({ max: 1_000_000 });

const observation: fc.Arbitrary<TelemetryRecord> = fc
  .record({
    gatewayId,
    firstSeen: iso,
    lastSeen: iso,
    count: fc.integer({ min: 1, max: 1_000_000 }),
    clientIp: fc.oneof(fc.ipV4(), fc.ipV6()),
    network: fc.option(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), { nil: null }),
    mode: fc.constantFrom(...OBSERVATION_MODES),
    host: fc.constantFrom('sts.us-east-1.amazonaws.com', 'bucket.s3.amazonaws.com', '203.0.113.9'),
    port: fc.integer({ min: 1, max: 65535 }),
    resolvedIp: fc.option(fc.ipV4(), { nil: undefined }),
    capture: fc.option(fc.constantFrom(...CAPTURES), { nil: undefined }),
    originalIp: fc.option(fc.option(fc.oneof(fc.ipV4(), fc.ipV6()), { nil: null }), { nil: undefined }),
    aws: fc.option(
      fc.record({
        service: fc.constantFrom('sts', 's3', 'ec2'),
        region: fc.option(fc.constantFrom('us-east-1', 'eu-west-1'), { nil: null }),
        partition: fc.constantFrom('aws', 'aws-cn'),
      }),
      { nil: null },
    ),
    accessKeyId: fc.option(accessKeyId, { nil: null }),
    keyKind: fc.option(fc.constantFrom(...KEY_KINDS), { nil: undefined }),
    accountId: fc.option(fc.stringMatching(/^\d{12}$/), { nil: undefined }),
    sessionToken: fc.option(fc.boolean(), { nil: undefined }),
    signatureVersion: fc.option(fc.constantFrom('v4', 'v4a', 'v2'), { nil: undefined }),
    auth: fc.option(fc.constantFrom('header' as const, 'query' as const), { nil: undefined }),
    action: fc.option(fc.constantFrom('GetCallerIdentity', 'GET /2015-03-31/functions/{id}'), { nil: null }),
    bytesUp: count,
    bytesDown: count,
    durationMs: fc.option(fc.nat(), { nil: undefined }),
    outcome: fc.constantFrom(...OUTCOMES),
    reason: fc.option(fc.constantFrom('upstream-tls-verify-failed', 'cert-rejected', 'destination-denied:private-address'), {
      nil: undefined,
    }),
    status: fc.option(fc.record({ '2xx': count, '4xx': count }, { requiredKeys: [] }), { nil: undefined }),
  })
  .map((o) => {
    const out: Record<string, unknown> = { type: 'observation', schema: SCHEMA_VERSION };
    for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
    return out as TelemetryRecord;
  });

const heartbeat: fc.Arbitrary<TelemetryRecord> = fc
  .record({
    gatewayId,
    time: iso,
    agentVersion: fc.constantFrom('0.1.0', '0.2.0-dev'),
    startedAt: iso,
    uptimeSeconds: fc.nat(),
    counts: fc.dictionary(fc.constantFrom('tunnels', 'requests', 'inspected', 'denied'), count),
    spool: fc.record({ batches: count, bytes: count }),
    inspect: fc.option(fc.boolean(), { nil: undefined }),
  })
  .map((h) => {
    const out: Record<string, unknown> = { type: 'heartbeat', schema: SCHEMA_VERSION };
    for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = v;
    return out as TelemetryRecord;
  });

export const telemetryBatch: fc.Arbitrary<TelemetryBatch> = fc.record({
  schemaVersion: fc.constant(SCHEMA_VERSION),
  batchId: fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/),
  gatewayId,
  agent: fc.record({ version: fc.constantFrom('0.1.0'), startedAt: iso }),
  sequence: fc.nat(),
  egressCidrs: fc.array(fc.constantFrom('203.0.113.0/28', '2001:db8::/64'), { maxLength: 2 }),
  sentAt: iso,
  records: fc.array(fc.oneof({ weight: 3, arbitrary: observation }, { weight: 1, arbitrary: heartbeat }), { maxLength: 4 }),
});

interface BatchCase {
  value: unknown;
  base: TelemetryBatch;
  mutated: boolean;
}

const batchCase: fc.Arbitrary<BatchCase> = mutatedJson(telemetryBatch, 4).map(({ value, base, mutated }) => ({
  value,
  base: base as TelemetryBatch,
  mutated,
}));

export const telemetryBatchTarget: FuzzTarget<BatchCase> = {
  name: 'telemetry-batch',
  title: 'telemetry batch validation (serialise → validate round trip)',
  arbitrary: batchCase,
  check({ value, base, mutated }) {
    if (!mutated) {
      // Sealed as the spool sink does, decoded as the ingest does.
      const wire = JSON.parse(gunzipSync(gzipSync(JSON.stringify(base))).toString('utf8')) as unknown;
      const v = callParser('validateBatch', () => validateBatch(wire));
      ensure(v?.ok === true, () => `a well-formed batch was refused: ${v && !v.ok ? v.reason : '?'}`);
      ensure(deepEqual(v.batch, base), 'the batch did not read back as sealed');
      for (const r of base.records) ensure(validateRecord(r).ok, 'a well-formed record was refused on its own');
      return;
    }
    const v = callParser('validateBatch', () => validateBatch(value));
    ensure(v !== undefined, 'no answer');
    if (!v.ok) {
      ensure(typeof v.reason === 'string' && v.reason.includes(':'), () => `reason without a path: ${v.reason}`);
      return;
    }
    const strings = stringsIn(value);
    for (const r of v.batch.records) {
      if (r.type !== 'observation' || r.accessKeyId === null) continue;
      ensure(ACCESS_KEY_ID_PATTERN.test(r.accessKeyId), () => `key of the wrong shape accepted: ${r.accessKeyId}`);
      ensure(strings.has(r.accessKeyId), 'a key that the batch does not carry');
    }
    for (const r of Array.isArray((value as { records?: unknown }).records) ? (value as { records: unknown[] }).records : [])
      callParser('validateRecord', () => validateRecord(r));
  },
};

// ── the batch signature ─────────────────────────────────────────────────────

interface SignatureCase {
  header: string;
  body: Buffer;
  t: number;
  mutated: boolean;
}

const SECRET = Buffer.from('fuzz-secret-0123456789abcdef');

const signatureCase: fc.Arbitrary<SignatureCase> = fc
  .tuple(
    fc.uint8Array({ maxLength: 256 }),
    fc.integer({ min: 0, max: 4_000_000_000 }),
    fc.array(textMutation, { maxLength: 3 }),
    fc.constantFrom('', ',v1=' + '0'.repeat(64), ' ', ',t=1'),
  )
  .map(([body, t, ms, extra]) => {
    const header = signatureHeader(SECRET, t, body) + extra;
    const damaged = applyTextMutations(header, ms);
    return { header: damaged, body: Buffer.from(body), t, mutated: damaged !== header || extra === ',t=1' };
  });

export const telemetrySignatureTarget: FuzzTarget<SignatureCase> = {
  name: 'telemetry-signature',
  title: 'X-Egress-Witness-Signature header',
  arbitrary: signatureCase,
  check({ header, body, t, mutated }) {
    const parsed = callParser('parseSignatureHeader', () => parseSignatureHeader(header));
    ensure(
      parsed === null || parsed === undefined || (Number.isSafeInteger(parsed.t) && parsed.v1.every((v) => /^[0-9a-f]{64}$/.test(v))),
      'odd parse',
    );
    const check = callParser('verifySignature', () => verifySignature(SECRET, header, body, t, 300));
    ensure(check !== undefined, 'no answer');
    if (!mutated) {
      ensure(check.ok, () => `an intact signature did not verify: ${check.ok ? '' : check.reason}`);
      const other = Buffer.concat([body, Buffer.from([0])]);
      const wrong = verifySignature(SECRET, header, other, t, 300);
      ensure(!wrong.ok && wrong.reason === 'mismatch', 'a signature verified over another body');
      const stale = verifySignature(SECRET, header, body, t + 301, 300);
      ensure(!stale.ok && stale.reason === 'stale', 'a signature outside the skew window verified');
    }
  },
};

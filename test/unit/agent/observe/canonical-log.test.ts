// The canonical decision line as written: serialised field by field, it is the line pino writes for the same
// object (same keys, order, values and escaping), with the logger's level, time and bound fields, in order with
// the logger's other lines; free text that looks like a secret never reaches it; the log level is respected; and
// the counters and the observation come with it whether or not the line is written.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createLogger, type Logger } from '../../../../common/log/logger.js';
import { REDACTED, maskAccessKeyId, redactDeep, redactText } from '../../../../common/log/redact.js';
import { createAgentMetrics } from '../../../../agent/metrics/metrics.js';
import { decisionEvent, requestRecorder } from '../../../../agent/observe/canonical-log.js';
import type { ObservationEvent } from '../../../../agent/observe/model/observation.js';
import { newRecord, type RequestRecord } from '../../../../agent/observe/model/request-record.js';
import { textSink } from '../../../helpers/log-sink.js';

function rig(level: 'info' | 'warn' = 'info', logger?: Logger) {
  const out = textSink();
  const log = logger ?? createLogger({ name: 'egress-witness-agent', level, destination: out.stream });
  const registry = new Registry();
  const metrics = createAgentMetrics(registry, { version: 'test', nodeVersion: process.versions.node });
  const observed: ObservationEvent[] = [];
  const recorder = requestRecorder(log, metrics, { observe: (o) => observed.push(o) });
  return { out, log, registry, metrics, observed, recorder };
}

const who = { startedAt: 1_000, clientIp: '10.0.0.5', network: 'lab', capture: 'explicit' as const };
const sts = { service: 'sts', region: 'us-east-1', partition: 'aws' };
const KEY = 'ASIAY34FZKBOKMUTVV7A';

function inspected(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    ...newRecord('inspected', 'inspect', who, { host: 'sts.us-east-1.amazonaws.com', port: 443 }, sts),
    endedAt: 1_042,
    key: { accessKeyId: KEY, keyKind: 'temporary', accountId: null, sessionToken: true, signatureVersion: 'v4', auth: 'header' },
    action: 'GetCallerIdentity',
    status: 200,
    bytesUp: 1_024,
    bytesDown: 2_048,
    ...over,
  };
}

/** The line's object as the code before the direct serialiser built it (docs/operations.md#canonical-lines), free text checked. */
function asObject(r: RequestRecord): Record<string, unknown> {
  const t = (v: string | null): string | null => (v === null ? null : redactText(v));
  return {
    event: decisionEvent(r),
    kind: r.kind,
    mode: r.mode,
    capture: r.capture,
    client_ip: t(r.clientIp),
    network: t(r.network),
    host: t(r.host),
    port: r.port,
    resolved_ip: t(r.resolvedIp),
    original_ip: t(r.originalIp),
    aws_service: t(r.aws?.service ?? null),
    aws_region: t(r.aws?.region ?? null),
    key: r.key ? maskAccessKeyId(r.key.accessKeyId) : null,
    action: t(r.action),
    status: r.status,
    bytes_up: r.bytesUp,
    bytes_down: r.bytesDown,
    duration_ms: r.endedAt - r.startedAt,
    outcome: r.outcome,
    reason: t(r.reason),
    ...(r.requests !== undefined ? { requests: r.requests } : {}),
  };
}

const noTime = (line: string): string => line.replace(/"time":"[^"]*"/, '"time":"T"');

// Well-formed strings (a lone surrogate is the one difference: escaped here, written raw by pino; see below).
const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('a"b\\c', 'line\nbreak', '\u0000\u001f', '\u2028'));
const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a, { nil: null });
const records: fc.Arbitrary<RequestRecord> = fc
  .record({
    kind: fc.constantFrom('connect', 'http', 'transparent', 'transparent_http', 'inspected', 'invalid' as const),
    mode: fc.constantFrom('tunnel', 'inspect', 'http' as const),
    capture: fc.constantFrom('explicit', 'transparent' as const),
    clientIp: text,
    network: maybe(text),
    host: maybe(text),
    port: maybe(fc.integer({ min: 1, max: 65_535 })),
    resolvedIp: maybe(text),
    originalIp: maybe(text),
    aws: maybe(fc.record({ service: text, region: maybe(text), partition: fc.constant('aws') })),
    key: maybe(fc.string({ minLength: 0, maxLength: 30 })),
    action: maybe(text),
    status: maybe(fc.integer({ min: 100, max: 599 })),
    bytesUp: fc.nat(),
    bytesDown: fc.nat(),
    duration: fc.nat({ max: 10_000_000 }),
    outcome: fc.constantFrom(
      'ok',
      'denied',
      'dns_error',
      'connect_error',
      'connect_timeout',
      'client_error',
      'tls_intercept_failed' as const,
    ),
    reason: maybe(text),
    requests: fc.option(fc.nat(), { nil: undefined }),
  })
  .map(({ key, duration, requests, ...r }) => ({
    ...r,
    startedAt: 1_000,
    endedAt: 1_000 + duration,
    key:
      key === null
        ? null
        : { accessKeyId: key, keyKind: 'temporary', accountId: null, sessionToken: false, signatureVersion: 'v4', auth: 'header' },
    denied: null,
    observed: false,
    ...(requests !== undefined ? { requests } : {}),
  }));

describe('the canonical decision line', () => {
  it('is, byte for byte, the line pino writes for the same object (keys, order, escaping), for any record', () => {
    fc.assert(
      fc.property(records, (r) => {
        const fast = rig();
        fast.recorder.record(r);
        const slow = textSink();
        const log = createLogger({ name: 'egress-witness-agent', level: 'info', destination: slow.stream });
        log.info(asObject(r), fast.out.lines()[0]?.msg as string);
        expect(noTime(fast.out.text())).toBe(noTime(slow.text()));
        expect(fast.out.lines()).toHaveLength(1);
      }),
      { numRuns: 400 },
    );
  });

  it('escapes a lone surrogate, so the line stays well-formed JSON', () => {
    const { out, recorder } = rig();
    recorder.record(inspected({ action: 'Get\ud800Thing' }));
    expect(out.text()).toContain('"action":"Get\\ud800Thing"');
    expect(out.lines()[0]?.action).toBe('Get\ud800Thing');
  });

  it('has the documented keys, the masked key, and nothing the key-name walk would change', () => {
    const { out, recorder } = rig();
    recorder.record(inspected());
    recorder.record({
      ...inspected({ kind: 'connect', mode: 'inspect', observed: false, key: null, action: null, status: null }),
      requests: 3,
    });
    const [line, closed] = out.lines();
    expect(line).toEqual({
      level: 'info',
      time: expect.any(String) as string,
      name: 'egress-witness-agent',
      event: 'request',
      kind: 'inspected',
      mode: 'inspect',
      capture: 'explicit',
      client_ip: '10.0.0.5',
      network: 'lab',
      host: 'sts.us-east-1.amazonaws.com',
      port: 443,
      resolved_ip: null,
      original_ip: null,
      aws_service: 'sts',
      aws_region: 'us-east-1',
      key: 'ASIA…VV7A',
      action: 'GetCallerIdentity',
      status: 200,
      bytes_up: 1_024,
      bytes_down: 2_048,
      duration_ms: 42,
      outcome: 'ok',
      reason: null,
      msg: 'inspected request forwarded',
    });
    expect(new Date(line!.time as string).toISOString()).toBe(line!.time);
    expect(closed).toMatchObject({ event: 'inspected_closed', requests: 3, msg: 'inspected connection closed' });
    for (const l of out.lines()) expect(redactDeep(l)).toEqual(l);
    expect(out.text()).not.toContain(KEY);
  });

  // Outside data reaches these fields from a client's CONNECT authority, Host header, SNI, request path,
  // X-Amz-Target or Action parameter, or an upstream's failure; whatever is put in them, nothing that looks
  // like a signature, a session token, a secret key or an access key ID is written.
  const SECRETS = {
    'an Authorization header value':
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024',
    'a presigned query':
      '/bucket/object?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F&X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0',
    'a session token': 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6EXAMPLESESSIONTOKENl6',
    'a secret access key': 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    'a secret access key as an operation name': 'wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYab',
    'an access key ID': 'AKIAIOSFODNN7EXAMPLE',
    'an access key ID in a host name': 'ASIAY34FZKBOKMUTVV7A.evil.example',
    'a proxy credential': 'Basic dXNlcjpzM2NyM3QtcGFzc3dvcmQ=',
    'a bearer token': 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl',
    'a V2 signature': 'AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D',
  };
  const FIELDS: [string, (r: RequestRecord, v: string) => RequestRecord][] = [
    ['host', (r, v) => ({ ...r, host: v })],
    ['network', (r, v) => ({ ...r, network: v })],
    ['client_ip', (r, v) => ({ ...r, clientIp: v })],
    ['resolved_ip', (r, v) => ({ ...r, resolvedIp: v })],
    ['original_ip', (r, v) => ({ ...r, originalIp: v })],
    ['aws_service', (r, v) => ({ ...r, aws: { service: v, region: 'us-east-1', partition: 'aws' } })],
    ['aws_region', (r, v) => ({ ...r, aws: { service: 'sts', region: v, partition: 'aws' } })],
    ['action', (r, v) => ({ ...r, action: v })],
    ['reason', (r, v) => ({ ...r, outcome: 'upstream_error', reason: v })],
  ];
  for (const [field, put] of FIELDS)
    it(`redacts a secret-looking value in ${field}`, () => {
      for (const [what, secret] of Object.entries(SECRETS)) {
        const { out, recorder } = rig();
        recorder.record(put(inspected(), secret));
        const raw = out.text();
        expect(raw, what).not.toContain(secret);
        expect(raw, what).not.toContain(JSON.stringify(secret).slice(1, -1));
        expect(out.lines()[0]?.[field], what).toBe(REDACTED);
      }
    });

  it('keeps ordinary values: host names, path templates, reasons', () => {
    const { out, recorder } = rig();
    const host = 'my-bucket-with-a-long-name-0123456789abcdef0123456789.s3.us-east-1.amazonaws.com';
    const action = 'POST /2015-03-31/functions/{id}/invocations';
    recorder.record(inspected({ host, action, reason: 'upstream-tls-verify-failed' }));
    recorder.record(inspected({ action: 'DeregisterTransitGatewayMulticastGroupMembers' }));
    recorder.record(inspected({ action: 'GetObject', aws: { service: 's3', region: 'ap-southeast-2', partition: 'aws' } }));
    expect(out.lines()[0]).toMatchObject({ host, action, reason: 'upstream-tls-verify-failed' });
    expect(out.lines()[1]).toMatchObject({ action: 'DeregisterTransitGatewayMulticastGroupMembers' });
    expect(out.lines()[2]).toMatchObject({ action: 'GetObject', aws_service: 's3', aws_region: 'ap-southeast-2' });
  });

  it('comes with the bound fields of a child logger (redacted), in order with the other lines', () => {
    const out = textSink();
    const log = createLogger({ name: 'egress-witness-agent', level: 'info', destination: out.stream }).child({
      worker: 2,
      secret: 'hmac-shared',
    });
    const { recorder } = rig('info', log);
    log.info({ event: 'before' }, 'before');
    recorder.record(inspected());
    log.warn({ event: 'after' }, 'after');
    const lines = out.lines();
    expect(lines.map((l) => l.event)).toEqual(['before', 'request', 'after']);
    expect(lines[1]).toMatchObject({ level: 'info', name: 'egress-witness-agent', worker: 2, secret: REDACTED, event: 'request' });
    expect(out.text()).not.toContain('hmac-shared');
  });

  it('writes nothing below the logger level, and again once the level is lowered; counters and observation either way', async () => {
    const { out, log, registry, observed, recorder } = rig('warn');
    recorder.record(inspected());
    expect(out.text()).toBe('');
    expect(observed).toHaveLength(1);
    log.level = 'info';
    recorder.record(inspected());
    expect(out.lines()).toHaveLength(1);
    expect(observed).toHaveLength(2);
    const text = await registry.metrics();
    expect(text).toContain('egress_witness_proxy_requests_total{kind="inspected",outcome="ok"} 2');
    expect(text).toContain('egress_witness_aws_requests_total{service="sts",mode="inspect"} 2');
    expect(text).toContain('egress_witness_inspected_requests_total{service="sts",status_class="2xx"} 2');
    expect(text).toContain('egress_witness_tunnel_bytes_total{direction="up"} 2048');
    expect(text).toContain('egress_witness_tunnel_bytes_total{direction="down"} 4096');
  });

  it('counts each record once, across reads, and a record of no bytes still shows its series', async () => {
    const { registry, recorder } = rig();
    recorder.record(inspected({ bytesUp: 0, bytesDown: 0, status: null }));
    expect(await registry.metrics()).toContain('egress_witness_tunnel_bytes_total{direction="up"} 0');
    expect(await registry.metrics()).toContain('egress_witness_inspected_requests_total{service="sts",status_class="none"} 1');
    recorder.record(inspected({ outcome: 'denied', denied: 'destination', reason: 'destination-denied:private' }));
    recorder.record(inspected());
    const json = await registry.getMetricsAsJSON();
    const requests = json.find((m) => m.name === 'egress_witness_proxy_requests_total')?.values ?? [];
    expect(requests).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ labels: { kind: 'inspected', outcome: 'ok' }, value: 2 }),
        expect.objectContaining({ labels: { kind: 'inspected', outcome: 'denied' }, value: 1 }),
      ]),
    );
    expect(await registry.metrics()).toContain('egress_witness_denied_total{reason="destination"} 1');
  });

  it('goes through the logger itself when its stream wants pino’s per-line metadata (multistream): the same line', () => {
    const out = textSink();
    const log = createLogger({ name: 'egress-witness-agent', level: 'info', destination: pino.multistream([{ stream: out.stream }]) });
    const { recorder } = rig('info', log);
    recorder.record(inspected({ host: SECRETS['an access key ID in a host name'] }));
    const direct = rig();
    direct.recorder.record(inspected({ host: SECRETS['an access key ID in a host name'] }));
    expect(noTime(out.text())).toBe(noTime(direct.out.text()));
  });
});

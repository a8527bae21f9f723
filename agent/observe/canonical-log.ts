/**
 * The one place a connection's or request's record becomes what the agent
 * says about it: one canonical decision line, one egress_witness_proxy_requests
 * increment (denied_total too for a policy refusal), and at most one
 * observation — or, for a long-lived tunnel, one per report window, whose
 * bytes count as they are reported while the line and the increment wait
 * for the close. Keys are masked; nothing secret is in a record to begin with,
 * and free text in the line is checked again as it is written (redactText).
 * The line is serialised here, field by field, and the counters are counted
 * in cells read at scrape time: this runs once per request.
 *
 *   listener / connection path / inspector ──record()──▶ line + proxy_requests + observation ──▶ aggregator
 *   live tunnel ─────────────────────────────window()──▶ observation (+ bytes)
 */
import { fieldLineWriter, type Logger } from '../../common/log/logger.js';
import { maskAccessKeyId, redactText } from '../../common/log/redact.js';
import { serviceLabel, type AgentMetrics } from '../metrics/metrics.js';
import { CounterCells } from './counter-cells.js';
import { statusClass, type Observer } from './model/observation.js';
import { observationOf, type RecordWindow, type RequestRecord, type RequestRecorder } from './model/request-record.js';

/** The decision line's `event`. */
export type DecisionEvent = 'refused' | 'intercept_failed' | 'tunnel_closed' | 'inspected_closed' | 'request';

export function decisionEvent(r: RequestRecord): DecisionEvent {
  if (r.outcome === 'tls_intercept_failed') return 'intercept_failed';
  if (
    r.kind === 'invalid' ||
    r.host === null ||
    r.outcome === 'denied' ||
    r.outcome === 'dns_error' ||
    r.outcome === 'connect_error' ||
    r.outcome === 'connect_timeout'
  )
    return 'refused';
  if (r.mode === 'tunnel') return 'tunnel_closed';
  if (r.kind === 'connect' || r.kind === 'transparent') return 'inspected_closed';
  return 'request';
}

function message(event: DecisionEvent, r: RequestRecord): string {
  switch (event) {
    case 'refused':
      if (r.mode === 'http') return 'request refused';
      if (r.mode === 'inspect' && r.kind === 'invalid') return 'inspected request refused';
      return r.capture === 'transparent' ? 'redirected connection refused' : 'CONNECT refused';
    case 'intercept_failed':
      return 'TLS interception failed; nothing was forwarded';
    case 'tunnel_closed':
      return 'tunnel closed';
    case 'inspected_closed':
      return 'inspected connection closed';
    case 'request':
      return r.mode === 'inspect' ? 'inspected request forwarded' : 'plain HTTP request forwarded';
  }
}

/** A string the agent did not choose from its own fixed values, as a JSON value: redacted if it looks like a secret. */
function text(v: string | null): string {
  return v === null ? 'null' : JSON.stringify(redactText(v));
}

function num(v: number | null): string {
  return v !== null && Number.isFinite(v) ? String(v) : 'null';
}

/**
 * The decision line's fields, serialised directly (fieldLineWriter in
 * common/log/logger.ts): fixed keys, none named like a secret; the agent's own
 * enum values as they are; every other string through `redactText`; the key
 * masked. The same line, key for key, as pino would write for the object
 * (test/unit/agent/observe/canonical-log.test.ts compares them).
 */
export function decisionFields(event: DecisionEvent, r: RequestRecord): string {
  const aws = r.aws;
  return (
    `,"event":"${event}","kind":${JSON.stringify(r.kind)},"mode":${JSON.stringify(r.mode)},"capture":${JSON.stringify(r.capture)}` +
    `,"client_ip":${text(r.clientIp)},"network":${text(r.network)},"host":${text(r.host)},"port":${num(r.port)}` +
    `,"resolved_ip":${text(r.resolvedIp)},"original_ip":${text(r.originalIp)}` +
    `,"aws_service":${text(aws?.service ?? null)},"aws_region":${text(aws?.region ?? null)}` +
    `,"key":${r.key ? JSON.stringify(maskAccessKeyId(r.key.accessKeyId)) : 'null'},"action":${text(r.action)},"status":${num(r.status)}` +
    `,"bytes_up":${num(r.bytesUp)},"bytes_down":${num(r.bytesDown)},"duration_ms":${num(r.endedAt - r.startedAt)}` +
    `,"outcome":${JSON.stringify(r.outcome)},"reason":${text(r.reason)}` +
    (r.requests !== undefined ? `,"requests":${num(r.requests)}` : '')
  );
}

export function requestRecorder(logger: Logger, metrics: AgentMetrics, observer: Observer): RequestRecorder {
  const writeLine = fieldLineWriter(logger);
  const requests = new CounterCells(metrics.proxyRequests, ['kind', 'outcome']);
  const awsRequests = new CounterCells(metrics.awsRequests, ['service', 'mode']);
  const inspected = new CounterCells(metrics.inspectedRequests, ['service', 'status_class']);
  const bytes = new CounterCells(metrics.tunnelBytes, ['direction']);
  const observe = (r: RequestRecord, window: RecordWindow | null): void => {
    const o = observationOf(r, window);
    if (o === null) return;
    bytes.add('up', null, o.bytesUp);
    bytes.add('down', null, o.bytesDown);
    observer.observe(o);
  };
  return {
    window(r, window) {
      observe(r, window);
    },
    record(r) {
      requests.add(r.kind, r.outcome);
      if (r.denied !== null) metrics.denied.inc({ reason: r.denied });
      if (r.observed && r.host !== null && r.aws) awsRequests.add(serviceLabel(r.aws.service), r.mode);
      if (r.kind === 'inspected') inspected.add(serviceLabel(r.aws?.service), (r.status !== null ? statusClass(r.status) : null) ?? 'none');
      observe(r, r.lastWindow ?? null);
      if (!logger.isLevelEnabled('info')) return;
      const event = decisionEvent(r);
      writeLine('info', decisionFields(event, r), message(event, r));
    },
  };
}

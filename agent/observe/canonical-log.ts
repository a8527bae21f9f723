/**
 * The one place a connection's or request's record becomes what the agent
 * says about it: one canonical decision line, one egress_witness_proxy_requests
 * increment (denied_total too for a policy refusal), and at most one
 * observation — or, for a long-lived tunnel, one per report window, whose
 * bytes count as they are reported while the line and the increment wait
 * for the close. Keys are masked; nothing secret is in a record to begin with.
 *
 *   listener / connection path / inspector ──record()──▶ line + proxy_requests + observation ──▶ aggregator
 *   live tunnel ─────────────────────────────window()──▶ observation (+ bytes)
 */
import type { Logger } from '../../common/log/logger.js';
import { maskAccessKeyId } from '../../common/log/redact.js';
import { serviceLabel, type AgentMetrics } from '../metrics/metrics.js';
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
      return `${r.mode === 'http' ? 'request' : r.capture === 'transparent' ? 'redirected connection' : 'CONNECT'} refused`;
    case 'intercept_failed':
      return 'TLS interception failed; nothing was forwarded';
    case 'tunnel_closed':
      return 'tunnel closed';
    case 'inspected_closed':
      return 'inspected connection closed';
    case 'request':
      return `${r.mode === 'inspect' ? 'inspected' : 'plain HTTP'} request forwarded`;
  }
}

export function requestRecorder(logger: Logger, metrics: AgentMetrics, observer: Observer): RequestRecorder {
  const observe = (r: RequestRecord, window: RecordWindow | null): void => {
    const o = observationOf(r, window);
    if (o === null) return;
    metrics.tunnelBytes.inc({ direction: 'up' }, o.bytesUp);
    metrics.tunnelBytes.inc({ direction: 'down' }, o.bytesDown);
    observer.observe(o);
  };
  return {
    window(r, window) {
      observe(r, window);
    },
    record(r) {
      metrics.proxyRequests.inc({ kind: r.kind, outcome: r.outcome });
      if (r.denied !== null) metrics.denied.inc({ reason: r.denied });
      if (r.observed && r.host !== null && r.aws) metrics.awsRequests.inc({ service: serviceLabel(r.aws.service), mode: r.mode });
      if (r.kind === 'inspected')
        metrics.inspectedRequests.inc({
          service: serviceLabel(r.aws?.service),
          status_class: (r.status !== null ? statusClass(r.status) : null) ?? 'none',
        });
      observe(r, r.lastWindow ?? null);
      if (!logger.isLevelEnabled('info')) return;
      const event = decisionEvent(r);
      logger.info(
        {
          event,
          kind: r.kind,
          mode: r.mode,
          capture: r.capture,
          client_ip: r.clientIp,
          network: r.network,
          host: r.host,
          port: r.port,
          resolved_ip: r.resolvedIp,
          original_ip: r.originalIp,
          aws_service: r.aws?.service ?? null,
          aws_region: r.aws?.region ?? null,
          key: r.key ? maskAccessKeyId(r.key.accessKeyId) : null,
          action: r.action,
          status: r.status,
          bytes_up: r.bytesUp,
          bytes_down: r.bytesDown,
          duration_ms: r.endedAt - r.startedAt,
          outcome: r.outcome,
          reason: r.reason,
          ...(r.requests !== undefined ? { requests: r.requests } : {}),
        },
        message(event, r),
      );
    },
  };
}

/**
 * One canonical log line and the per-observation metrics for every tunnel
 * close and forwarded request. Keys are masked; nothing secret is in an
 * observation to begin with. A long tunnel's windows reported while it lives
 * count their bytes and nothing else; its line, at close, carries the whole
 * tunnel's bytes and duration.
 */
import type { Logger } from '../../common/log/logger.js';
import { maskAccessKeyId } from '../../common/log/redact.js';
import { serviceLabel, type AgentMetrics } from '../metrics/metrics.js';
import type { Observer } from './model/observation.js';

export function canonicalLogObserver(logger: Logger, metrics: AgentMetrics): Observer {
  return {
    observe(e) {
      metrics.tunnelBytes.inc({ direction: 'up' }, e.bytesUp);
      metrics.tunnelBytes.inc({ direction: 'down' }, e.bytesDown);
      if (e.connection && !e.connection.final) return;
      const whole = e.connection ?? { startedAt: e.startedAt, bytesUp: e.bytesUp, bytesDown: e.bytesDown };
      if (e.aws) metrics.awsRequests.inc({ service: serviceLabel(e.aws.service), mode: e.mode });
      if (!logger.isLevelEnabled('info')) return;
      const refused =
        e.outcome === 'denied' || e.outcome === 'dns_error' || e.outcome === 'connect_error' || e.outcome === 'connect_timeout';
      const interceptFailed = e.outcome === 'tls_intercept_failed';
      const event = refused ? 'refused' : interceptFailed ? 'intercept_failed' : e.mode === 'tunnel' ? 'tunnel_closed' : 'request';
      logger.info(
        {
          event,
          mode: e.mode,
          capture: e.capture,
          client_ip: e.clientIp,
          network: e.network,
          host: e.host,
          port: e.port,
          resolved_ip: e.resolvedIp,
          original_ip: e.originalIp,
          aws_service: e.aws?.service ?? null,
          aws_region: e.aws?.region ?? null,
          key: e.key ? maskAccessKeyId(e.key.accessKeyId) : null,
          action: e.action,
          status: e.status,
          bytes_up: whole.bytesUp,
          bytes_down: whole.bytesDown,
          duration_ms: e.endedAt - whole.startedAt,
          outcome: e.outcome,
          reason: e.reason,
        },
        refused
          ? `${e.mode === 'http' ? 'request' : e.capture === 'transparent' ? 'redirected connection' : 'CONNECT'} refused`
          : interceptFailed
            ? 'TLS interception failed; nothing was forwarded'
            : event === 'request'
              ? `${e.mode === 'inspect' ? 'inspected' : 'plain HTTP'} request forwarded`
              : 'tunnel closed',
      );
    },
  };
}

/**
 * What a failed telemetry send means, in words that name the fix. The
 * detector's answer is read with the wire contract (protocol/telemetry-status.ts);
 * a failure to get an answer is read from its error code, and the ones an
 * operator fixes in a config file (an untrusted detector certificate, http://
 * against a TLS listener and the reverse) are told apart from an outage.
 *
 *   answer ─▶ classifyTelemetryAnswer ─▶ SendOutcome + refusal ─▶ describe ─▶ event, level, message (names the key)
 *   error  ─▶ error code (+ TLS probe for http:// URLs) ──────────┘
 */
import tls from 'node:tls';
import { classifyNetworkError, parseRetryAfterMs, type SendOutcome } from '../../common/delivery/retry-policy.js';
import { classifyTelemetryAnswer, TELEMETRY_PATH, type TelemetryRefusal } from '../../protocol/telemetry-status.js';

/** A send's result as the shipper acts on it, with what it knows about the cause. */
export interface SendResult {
  outcome: SendOutcome;
  /** The detector's refusal name (X-Egress-Witness-Error), when it gave one. */
  refusal: TelemetryRefusal | null;
  /** A configuration problem found from a network error (TLS trust, scheme), when there is one. */
  problem: NetworkProblem | null;
}

export type NetworkProblem = 'tls-untrusted' | 'tls-expired' | 'tls-wrong-name' | 'plain-http-to-tls' | 'tls-to-plain-http';

/** Dead-letter reasons by status, as the dead-letter metadata has always named them. */
const DROP_REASON: ReadonlyMap<number, string> = new Map([
  [400, 'bad-request'],
  [413, 'payload-too-large'],
  [422, 'unprocessable-content'],
]);

/** The detector answered: what the answer means to this batch. */
export function answerResult(status: number, headers: { refusal?: string; retryAfter?: string }, nowMs: number): SendResult {
  const v = classifyTelemetryAnswer(status, headers.refusal);
  const refusal = v.action === 'delivered' ? null : v.refusal;
  const result = (outcome: SendOutcome): SendResult => ({ outcome, refusal, problem: null });
  switch (v.action) {
    case 'delivered':
      return result({ kind: 'success' });
    case 'drop-batch':
      return result({ kind: 'permanent', status, reason: DROP_REASON.get(status) ?? refusal ?? `http-${status}` });
    case 'permanent':
      return v.wait === 'slow'
        ? result({ kind: 'unauthorized', status })
        : result({ kind: 'misconfigured', status, reason: refusal ?? `http-${status}` });
    case 'retry': {
      const reason = refusal === null ? `http-${status}` : `http-${status}-${refusal}`;
      const retryAfterMs = parseRetryAfterMs(headers.retryAfter, nowMs);
      return result(retryAfterMs === undefined ? { kind: 'retryable', reason } : { kind: 'retryable', reason, retryAfterMs });
    }
  }
}

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
/** What a client sees when its TLS hello reaches a plain HTTP listener. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'EPROTO', 'ERR_SSL_HTTP_REQUEST']);
/** What a plain HTTP client sees when a TLS listener drops its request. */
const CLOSED = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'HPE_INVALID_CONSTANT', 'HPE_INVALID_VERSION', 'UND_ERR_INFO']);

/**
 * No answer: the error code, and the configuration problem behind it when it is one. For an
 * http:// URL whose connection was dropped, `probeTls` says whether the listener speaks TLS.
 */
export async function errorResult(err: unknown, url: URL, probeTls: () => Promise<boolean>): Promise<SendResult> {
  const outcome = classifyNetworkError(err);
  const code = outcome.kind === 'retryable' ? outcome.reason : '';
  let problem: NetworkProblem | null = null;
  if (UNTRUSTED.has(code)) problem = 'tls-untrusted';
  else if (EXPIRED.has(code)) problem = 'tls-expired';
  else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') problem = 'tls-wrong-name';
  else if (url.protocol === 'https:' && NOT_TLS.has(code)) problem = 'tls-to-plain-http';
  else if (url.protocol === 'http:' && CLOSED.has(code) && (await probeTls())) problem = 'plain-http-to-tls';
  return { outcome, refusal: null, problem };
}

/** Whether host:port completes a TLS handshake (the certificate is not judged): one short connection. */
export function speaksTls(url: URL, timeoutMs = 3_000): Promise<boolean> {
  return new Promise((resolve) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const socket = tls.connect({ host, port: Number(url.port || 80), rejectUnauthorized: false, servername: tlsServername(host) });
    const done = (v: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

function tlsServername(host: string): string | undefined {
  return /^[\d.]+$/.test(host) || host.includes(':') ? undefined : host;
}

export interface FailureReport {
  event: string;
  level: 'warn' | 'error';
  message: string;
  /** The config key that fixes it, when one does. */
  fix: string | null;
}

/** The log line for a send that did not deliver, naming the key to fix where there is one. */
export function describeFailure(r: SendResult, ctx: { url: URL; gatewayId: string }): FailureReport {
  const where = `${ctx.url.hostname}:${ctx.url.port || (ctx.url.protocol === 'https:' ? 443 : 80)}`;
  const kept = 'batches stay in the spool and are sent once it is fixed';
  const misconfigured = (message: string, fix: string): FailureReport => ({
    event: 'telemetry_misconfigured',
    level: 'error',
    message,
    fix,
  });
  switch (r.problem) {
    case 'tls-untrusted':
      return misconfigured(
        `the detector's TLS certificate at ${where} is not trusted: add the CA that issued it to the file named by upstream.ca_file (the agent trusts it for the detector too) (docs/operations.md#detector-tls-in-five-commands); ${kept}`,
        'upstream.ca_file',
      );
    case 'tls-expired':
      return misconfigured(
        `the detector's TLS certificate at ${where} is expired or not yet valid: renew the detector's tls.cert (docs/operations.md#detector-tls-in-five-commands); ${kept}`,
        'tls.cert (detector)',
      );
    case 'tls-wrong-name':
      return misconfigured(
        `the detector's TLS certificate does not name "${ctx.url.hostname}": telemetry.detector_url must use a host name the certificate carries (docs/operations.md#detector-tls-in-five-commands); ${kept}`,
        'telemetry.detector_url',
      );
    case 'plain-http-to-tls':
      return misconfigured(
        `the detector at ${where} speaks TLS: telemetry.detector_url must start with https:// (it says http://; docs/operations.md#detector-tls-in-five-commands); ${kept}`,
        'telemetry.detector_url',
      );
    case 'tls-to-plain-http':
      return misconfigured(
        `the detector at ${where} does not speak TLS: use http:// in telemetry.detector_url, or give the detector tls.cert and tls.key (docs/operations.md#detector-tls-in-five-commands); ${kept}`,
        'telemetry.detector_url',
      );
    case null:
      break;
  }
  const o = r.outcome;
  switch (o.kind) {
    case 'unauthorized':
      return r.refusal === 'stale-signature'
        ? {
            event: 'telemetry_unauthorized',
            level: 'error',
            message:
              "detector refused the batch signature as stale: this host's clock and the detector's differ by more than the detector's ingest.clock_skew; fix the clocks (NTP)",
            fix: 'ingest.clock_skew (detector)',
          }
        : {
            event: 'telemetry_unauthorized',
            level: 'error',
            message: "detector rejected the batch signature: telemetry.secret_file does not match the detector's key for this gateway",
            fix: 'telemetry.secret_file',
          };
    case 'misconfigured':
      if (r.refusal === 'unknown-gateway' || r.refusal === 'missing-gateway')
        return misconfigured(
          `the detector does not know gateway "${ctx.gatewayId}" (gateway.id): add it to the detector's gateways list (gateways[].id, with this gateway's secret) and reload the detector, or correct gateway.id (docs/configuration.md#gateways); ${kept}`,
          'gateway.id',
        );
      if (o.status === 404 || o.status === 405)
        return misconfigured(
          `the detector answered ${o.status} at ${ctx.url.pathname}: telemetry.detector_url must name its telemetry endpoint, e.g. ${ctx.url.protocol}//${ctx.url.host}${TELEMETRY_PATH} (docs/configuration.md#telemetry); ${kept}`,
          'telemetry.detector_url',
        );
      return misconfigured(`the detector refuses every batch (${o.reason}); ${kept}`, 'telemetry.detector_url');
    default:
      return { event: 'telemetry_retry', level: 'warn', message: 'telemetry send failed; will retry', fix: null };
  }
}

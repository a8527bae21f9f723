/**
 * Every way a proxy request can fail, as a closed union, and the one place
 * that maps a failure to the HTTP answer, the reason header and the metric
 * label. Refusals are answers, never silent drops.
 */
import type http from 'node:http';
import type { Outcome } from '../../protocol/telemetry.js';
import type { RequestRecord } from '../observe/model/request-record.js';

export type DestinationDenyReason =
  | 'port-not-allowed'
  | 'loopback'
  | 'unspecified'
  | 'link-local'
  | 'metadata'
  | 'private'
  | 'cgnat'
  | 'ula'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'ipv4-embedded'
  | 'invalid'
  | 'self';
/** Every destination-denied reason, checked complete by the compiler. */
export const DESTINATION_DENY_REASONS = Object.keys({
  'port-not-allowed': true,
  loopback: true,
  unspecified: true,
  'link-local': true,
  metadata: true,
  private: true,
  cgnat: true,
  ula: true,
  multicast: true,
  broadcast: true,
  reserved: true,
  'ipv4-embedded': true,
  invalid: true,
  self: true,
} satisfies Record<DestinationDenyReason, true>) as DestinationDenyReason[];

export type BadRequestReason =
  | 'origin-form'
  | 'bad-authority'
  | 'bad-url'
  | 'unsupported-scheme'
  | 'header-too-large'
  | 'header-timeout'
  | 'malformed'
  | 'no-host'
  // A request head the agent could not record as forwarded (agent/net/authority.ts headAmbiguity).
  | 'repeated-authorization'
  | 'repeated-host'
  | 'host-mismatch';
/** Every bad-request reason, checked complete by the compiler. */
export const BAD_REQUEST_REASONS = Object.keys({
  'origin-form': true,
  'bad-authority': true,
  'bad-url': true,
  'unsupported-scheme': true,
  'header-too-large': true,
  'header-timeout': true,
  malformed: true,
  'no-host': true,
  'repeated-authorization': true,
  'repeated-host': true,
  'host-mismatch': true,
} satisfies Record<BadRequestReason, true>) as BadRequestReason[];

export type ProxyFailure =
  | { kind: 'client-not-allowed' }
  | { kind: 'bad-request'; reason: BadRequestReason }
  | { kind: 'destination-denied'; reason: DestinationDenyReason }
  | { kind: 'dns-failure'; code: string }
  | { kind: 'connect-refused' }
  | { kind: 'unreachable'; code: string }
  | { kind: 'connect-timeout' }
  | { kind: 'upstream-error'; code: string }
  | { kind: 'upstream-tls'; code: string }
  | { kind: 'upstream-timeout' }
  | { kind: 'tunnel-limit' }
  | { kind: 'draining' };

/** Every failure kind, checked complete by the compiler (a new kind without an entry does not build). */
const FAILURE_KINDS: Record<ProxyFailure['kind'], true> = {
  'client-not-allowed': true,
  'bad-request': true,
  'destination-denied': true,
  'dns-failure': true,
  'connect-refused': true,
  unreachable: true,
  'connect-timeout': true,
  'upstream-error': true,
  'upstream-tls': true,
  'upstream-timeout': true,
  'tunnel-limit': true,
  draining: true,
};

/** A failure's case name: its kind, with the reason for bad requests and denied destinations (`bad-request:no-host`). */
export function failureCase(f: ProxyFailure): string {
  return f.kind === 'bad-request' || f.kind === 'destination-denied' ? `${f.kind}:${f.reason}` : f.kind;
}

/** Every case the union can express, one name each (the proxy's exit paths are tested case by case). */
export const PROXY_FAILURE_CASES: readonly string[] = (Object.keys(FAILURE_KINDS) as ProxyFailure['kind'][]).flatMap((kind) =>
  kind === 'bad-request'
    ? BAD_REQUEST_REASONS.map((r) => `${kind}:${r}`)
    : kind === 'destination-denied'
      ? DESTINATION_DENY_REASONS.map((r) => `${kind}:${r}`)
      : [kind],
);

export interface FailureAnswer {
  status: number;
  statusText: string;
  /** Value of the X-Egress-Witness-Error header: stable, documented, machine-readable. */
  reason: string;
  retryAfterSeconds?: number;
  outcome: Outcome;
}

export const ERROR_HEADER = 'X-Egress-Witness-Error';

export function failureAnswer(f: ProxyFailure): FailureAnswer {
  switch (f.kind) {
    case 'client-not-allowed':
      return { status: 403, statusText: 'Forbidden', reason: 'client-not-allowed', outcome: 'denied' };
    case 'bad-request':
      if (f.reason === 'header-too-large')
        return { status: 431, statusText: 'Request Header Fields Too Large', reason: 'header-too-large', outcome: 'client_error' };
      if (f.reason === 'header-timeout')
        return { status: 408, statusText: 'Request Timeout', reason: 'header-timeout', outcome: 'client_error' };
      return { status: 400, statusText: 'Bad Request', reason: f.reason, outcome: 'client_error' };
    case 'destination-denied':
      return { status: 403, statusText: 'Forbidden', reason: `destination-denied:${f.reason}`, outcome: 'denied' };
    case 'dns-failure':
      return { status: 502, statusText: 'Bad Gateway', reason: 'dns-failure', outcome: 'dns_error' };
    case 'connect-refused':
      return { status: 502, statusText: 'Bad Gateway', reason: 'connect-refused', outcome: 'connect_error' };
    case 'unreachable':
      return { status: 502, statusText: 'Bad Gateway', reason: 'unreachable', outcome: 'connect_error' };
    case 'connect-timeout':
      return { status: 504, statusText: 'Gateway Timeout', reason: 'connect-timeout', outcome: 'connect_timeout' };
    case 'upstream-error':
      return { status: 502, statusText: 'Bad Gateway', reason: 'upstream-error', outcome: 'upstream_error' };
    case 'upstream-timeout':
      return { status: 504, statusText: 'Gateway Timeout', reason: 'upstream-timeout', outcome: 'upstream_error' };
    case 'upstream-tls':
      return { status: 502, statusText: 'Bad Gateway', reason: 'upstream-tls-verify-failed', outcome: 'upstream_error' };
    case 'tunnel-limit':
      return { status: 503, statusText: 'Service Unavailable', reason: 'tunnel-limit', retryAfterSeconds: 1, outcome: 'denied' };
    case 'draining':
      return { status: 503, statusText: 'Service Unavailable', reason: 'draining', retryAfterSeconds: 5, outcome: 'denied' };
  }
}

/** An error that already knows its failure (the inspect connector's policy refusals). */
export class ProxyFailureError extends Error {
  constructor(readonly failure: ProxyFailure) {
    super(`upstream refused: ${failureAnswer(failure).reason}`);
    this.name = 'ProxyFailureError';
  }
}

/**
 * Maps a Node socket, DNS, TLS or undici error to a failure — the one list
 * for CONNECT dials, plain-HTTP and inspected forwarding; unknown codes are
 * upstream errors (or unreachable while connecting).
 */
export function failureFromError(err: unknown, phase: 'dns' | 'connect' | 'upstream'): ProxyFailure {
  if (err instanceof ProxyFailureError) return err.failure;
  const code = (err as { code?: unknown } | null)?.code;
  const c = typeof code === 'string' ? code : 'EUNKNOWN';
  if (phase === 'dns') return { kind: 'dns-failure', code: c };
  switch (c) {
    case 'ECONNREFUSED':
      return { kind: 'connect-refused' };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
      return { kind: 'unreachable', code: c };
    case 'ECONNECT_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { kind: 'connect-timeout' };
    case 'ETIMEDOUT':
      return phase === 'connect' ? { kind: 'connect-timeout' } : { kind: 'upstream-timeout' };
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return { kind: 'upstream-timeout' };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NODATA':
    case 'EAI_NONAME':
      return { kind: 'dns-failure', code: c };
    default:
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(c)) return { kind: 'upstream-tls', code: c };
      return phase === 'connect' ? { kind: 'unreachable', code: c } : { kind: 'upstream-error', code: c };
  }
}

/** Headers of an HTTP answer to a failure (reason, Retry-After when due, close). */
export function failureHeaders(f: ProxyFailure): Record<string, string> {
  const a = failureAnswer(f);
  const headers: Record<string, string> = { [ERROR_HEADER]: a.reason, 'content-type': 'text/plain', connection: 'close' };
  if (a.retryAfterSeconds !== undefined) headers['retry-after'] = String(a.retryAfterSeconds);
  return headers;
}

/** A complete HTTP/1.1 response for a raw socket (CONNECT refusals, parse errors). */
export function rawFailureResponse(f: ProxyFailure): string {
  const a = failureAnswer(f);
  const body = `${a.reason}\n`;
  return (
    `HTTP/1.1 ${a.status} ${a.statusText}\r\n` +
    `${ERROR_HEADER}: ${a.reason}\r\n` +
    (a.retryAfterSeconds !== undefined ? `Retry-After: ${a.retryAfterSeconds}\r\n` : '') +
    'Content-Type: text/plain\r\n' +
    `Content-Length: ${body.length}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/**
 * A fatal TLS alert record (RFC 8446 §6) refusing a redirected TLS connection
 * before any handshake: the client speaks TLS to what it takes for the real
 * endpoint, so an HTTP answer would only be garbage to it. Policy refusals
 * are `access_denied`, a name that did not resolve `unrecognized_name`, the
 * rest `internal_error`; the reason is in the canonical line and observation.
 */
export function tlsAlertRecord(f: ProxyFailure): Buffer {
  const description = f.kind === 'destination-denied' || f.kind === 'client-not-allowed' ? 49 : f.kind === 'dns-failure' ? 112 : 80;
  return Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]);
}

/** Metric label for a failure (bounded). */
export function failureLabel(f: ProxyFailure): string {
  return f.kind === 'destination-denied' ? f.reason : f.kind === 'bad-request' ? f.reason : f.kind;
}

/** egress_witness_denied_total's `reason` for a policy refusal (client, destination, tunnel cap); null for the rest. */
export function deniedLabel(f: ProxyFailure): string | null {
  return f.kind === 'destination-denied' || f.kind === 'client-not-allowed' || f.kind === 'tunnel-limit' ? failureLabel(f) : null;
}

/** Fills a refusal into a record: when it ended, its outcome, reason, status and denied label. */
export function fillRefusal(record: RequestRecord, failure: ProxyFailure, endedAt: number): void {
  const a = failureAnswer(failure);
  record.endedAt = endedAt;
  record.outcome = a.outcome;
  record.reason = a.reason;
  record.status = a.status;
  record.denied = deniedLabel(failure);
}

/** Answers a refused HTTP request: its status, the reason header and line; the connection closes after it. */
export function answerRefusal(req: http.IncomingMessage, res: http.ServerResponse, failure: ProxyFailure): void {
  const a = failureAnswer(failure);
  res.shouldKeepAlive = false;
  res.writeHead(a.status, failureHeaders(failure)).end(`${a.reason}\n`);
  req.resume();
}

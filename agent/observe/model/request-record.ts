/**
 * The one record of a connection or request, from its first byte to its
 * end: an explicit CONNECT, an absolute-form request, a redirected TLS
 * connection or plain-HTTP request, one decrypted request inside an
 * inspected connection — and every refusal, including those before a
 * target was known (client not allowed, malformed request, a redirected
 * connection that named no host). Whoever handled it fills it in; the
 * canonical decision line, the proxy-requests increment and the observation
 * (at most one, or one per report window of a long-lived tunnel) are all
 * derived from it in one place (observe/canonical-log.ts).
 */
import type { Capture, ObservationMode, Outcome } from '../../../protocol/telemetry.js';
import type { EndpointInfo, KeyAttribution, ObservationEvent } from './observation.js';

/** The `kind` label of egress_witness_proxy_requests_total: which way the record came in. */
export const REQUEST_KINDS = ['connect', 'http', 'transparent', 'transparent_http', 'inspected', 'invalid'] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];

/** One report window of a long-lived tunnel: its times and bytes (proxy/report-window.ts). */
export interface RecordWindow {
  startedAt: number;
  endedAt: number;
  bytesUp: number;
  bytesDown: number;
}

export interface RequestRecord {
  kind: RequestKind;
  /** What carried it: a byte tunnel, decrypted requests, or plain HTTP. */
  mode: ObservationMode;
  capture: Capture;
  /** Unix ms of its first byte and of its end (or refusal). */
  startedAt: number;
  endedAt: number;
  clientIp: string;
  network: string | null;
  /** Null when it was refused before a target was known (then it gives no observation). */
  host: string | null;
  port: number | null;
  resolvedIp: string | null;
  originalIp: string | null;
  aws: EndpointInfo | null;
  key: KeyAttribution | null;
  action: string | null;
  status: number | null;
  /** The whole connection's or request's bytes. */
  bytesUp: number;
  bytesDown: number;
  outcome: Outcome;
  /** Why it failed (X-Egress-Witness-Error reason, interception cause, how a tunnel broke); null when ok. */
  reason: string | null;
  /** egress_witness_denied_total's `reason` when a policy refused it (client, destination, tunnel cap). */
  denied: string | null;
  /**
   * Whether it is observed. False for an inspected connection whose decrypted requests are
   * records of their own, and for refusals before a target was known.
   */
  observed: boolean;
  /** Decrypted requests an inspected connection carried (its canonical line says how many). */
  requests?: number;
  /** Set when the tunnel was reported in windows while it lived: the last window, reported with it. */
  lastWindow?: RecordWindow;
}

/** Who a record is about, before anything is known of where they wanted to go. */
export interface RecordOrigin {
  startedAt: number;
  clientIp: string;
  network: string | null;
  capture: Capture;
}

/** A fresh record: nothing carried, outcome ok until told otherwise; observed once it has a target. */
export function newRecord(
  kind: RequestKind,
  mode: ObservationMode,
  who: RecordOrigin,
  target: { host: string; port: number } | null,
  aws: EndpointInfo | null,
): RequestRecord {
  return {
    kind,
    mode,
    capture: who.capture,
    startedAt: who.startedAt,
    endedAt: who.startedAt,
    clientIp: who.clientIp,
    network: who.network,
    host: target?.host ?? null,
    port: target?.port ?? null,
    resolvedIp: null,
    originalIp: null,
    aws,
    key: null,
    action: null,
    status: null,
    bytesUp: 0,
    bytesDown: 0,
    outcome: 'ok',
    reason: null,
    denied: null,
    observed: target !== null,
  };
}

/** The record's observation, or the window's; null when it gives none. */
export function observationOf(r: RequestRecord, window: RecordWindow | null = r.lastWindow ?? null): ObservationEvent | null {
  if (!r.observed || r.host === null || r.port === null) return null;
  return {
    startedAt: window?.startedAt ?? r.startedAt,
    endedAt: window?.endedAt ?? r.endedAt,
    clientIp: r.clientIp,
    network: r.network,
    mode: r.mode,
    capture: r.capture,
    host: r.host,
    port: r.port,
    resolvedIp: r.resolvedIp,
    originalIp: r.originalIp,
    aws: r.aws,
    key: r.key,
    action: r.action,
    bytesUp: window?.bytesUp ?? r.bytesUp,
    bytesDown: window?.bytesDown ?? r.bytesDown,
    outcome: r.outcome,
    reason: r.reason,
    status: r.status,
  };
}

/** Where records go: the proxy hands each one over once, when it ends; a live tunnel hands over its windows. */
export interface RequestRecorder {
  /** A connection or request ended (refusals included): its line, its increment, its observation. */
  record(r: RequestRecord): void;
  /** A live tunnel's report window (the record as it stands, outcome `ok`): an observation and its bytes only. */
  window(r: RequestRecord, window: RecordWindow): void;
}

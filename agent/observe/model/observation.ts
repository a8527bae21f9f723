/**
 * What the agent observes of a tunnel or request (or of one report window of
 * a long-lived tunnel), derived from its record (request-record.ts). The
 * proxy hands these to an `Observer` and knows nothing of where they go.
 */
import type { Outcome, ObservationMode, KeyKind, Capture } from '../../../protocol/telemetry.js';

export interface EndpointInfo {
  service: string;
  region: string | null;
  partition: string;
}

export interface KeyAttribution {
  accessKeyId: string;
  keyKind: KeyKind;
  accountId: string | null;
  sessionToken: boolean;
  signatureVersion: string;
  auth: 'header' | 'query';
}

export interface ObservationEvent {
  /** Unix ms when the tunnel or request started and ended. */
  startedAt: number;
  endedAt: number;
  clientIp: string;
  network: string | null;
  mode: ObservationMode;
  /** How the connection reached the agent: a client's proxy request, or the kernel's redirect. */
  capture: Capture;
  host: string;
  port: number;
  resolvedIp: string | null;
  /**
   * Redirected connections only: the address the client dialled, when the kernel recorded it and
   * it is not among the addresses the SNI / Host name resolves to (the agent went to those).
   */
  originalIp: string | null;
  aws: EndpointInfo | null;
  key: KeyAttribution | null;
  action: string | null;
  bytesUp: number;
  bytesDown: number;
  outcome: Outcome;
  /**
   * Why it failed, when it did: the X-Egress-Witness-Error reason the client
   * got, the interception failure cause, or how a tunnel broke. Null when ok.
   */
  reason: string | null;
  /** Upstream HTTP status (inspect and http modes). */
  status: number | null;
}

export interface Observer {
  observe(event: ObservationEvent): void;
}

export function fanOut(observers: readonly Observer[]): Observer {
  return {
    observe(event) {
      for (const o of observers) o.observe(event);
    },
  };
}

export function statusClass(status: number): '1xx' | '2xx' | '3xx' | '4xx' | '5xx' | null {
  if (status >= 100 && status < 600) return `${Math.floor(status / 100)}xx` as '1xx';
  return null;
}

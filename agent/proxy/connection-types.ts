/**
 * The contracts between the listeners, the shared connection path and the
 * inspector: who is asking, how a listener answers, what a reload swaps.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Target } from '../net/authority.js';
import type { ClientAdmission } from '../net/client-admission.js';
import type { DestinationPolicy } from '../net/address-policy.js';
import type { ResolveOverrides } from '../net/resolve-overrides.js';
import type { EndpointInfo } from '../observe/model/observation.js';
import type { RequestDescription } from '../aws/describe-request.js';
import type { Capture } from '../../protocol/telemetry.js';
import type { Candidate } from './dialer.js';
import type { ProxyFailure } from './failures.js';

/** The destination policy upstream connections follow, as the proxy's settings carry it. */
export interface LivePolicy {
  policy: DestinationPolicy;
  overrides: ResolveOverrides;
}

/** Hands an admitted, policy-checked tunnel to TLS inspection. */
export interface Inspector {
  /** Whether to intercept this client's tunnel to host:port (the automatic passthrough list is per client). */
  wants(host: string, port: number, clientIp: string): boolean;
  handle(client: net.Socket, head: Buffer, ctx: InspectContext): Promise<InspectSummary>;
  /** The policy its upstream connections follow from now on; the connection path passes each new one in. */
  usePolicy(live: LivePolicy): void;
  /** Retired by a reload and its last connection ended: it serves nothing any more. */
  readonly finished: boolean;
}

export interface InspectContext {
  clientIp: string;
  network: string | null;
  capture: Capture;
  /** As on the tunnel's observation: the address a redirected client dialled, when the name does not resolve to it. */
  originalIp: string | null;
  target: Target;
  candidates: Candidate[];
  aws: EndpointInfo | null;
  startedAt: number;
}

/**
 * How an inspected connection ended: `done` after its decrypted requests
 * (each a record of its own), `failure` the interception failure cause when
 * nothing could be forwarded; or `tunnel`: interception given up, carry the
 * bytes read so far (`head`) through a plain tunnel.
 */
export type InspectSummary = { kind: 'done'; requests: number; failure: string | null } | { kind: 'tunnel'; head: Buffer };

/** What SIGHUP may change; swapped atomically, and a connection keeps the settings it started with. */
export interface ProxySettings {
  admission: ClientAdmission;
  policy: DestinationPolicy;
  overrides: ResolveOverrides;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxTunnels: number;
  classify: (host: string) => EndpointInfo | null;
  /** Attribution of a plain-HTTP request to `host` (key, action, scope service/region). */
  describeHttp: (req: http.IncomingMessage, path: string, host: string) => RequestDescription;
  inspector: Inspector | null;
}

/** Who is asking, as the listener admitted them. */
export interface ConnectionContext {
  startedAt: number;
  clientIp: string;
  network: string | null;
  capture: Capture;
  /** Where the kernel says the client meant to go (redirected connections whose record could be read). */
  originalDestination: { address: string; port: number } | null;
}

/** How a listener answers on its own protocol; the path decides when. */
export interface TunnelEntry {
  /** proxy_requests_total `kind`. */
  readonly kind: 'connect' | 'transparent';
  /** The tunnel is up (explicit: "200 Connection Established"; redirected: nothing to say). */
  established(client: net.Socket): void;
  /** Refuses the connection and closes it. */
  refuse(client: net.Socket, failure: ProxyFailure): void;
}

/** A listener as the drain sees it. */
export interface Drainable {
  /** Stops accepting; resolves when the listener has closed. */
  stopAccepting(): Promise<void>;
  /** Closes connections that carry nothing (keep-alive between requests). */
  closeIdle(): void;
  /** Closes every connection it still holds. */
  closeAll(): void;
}

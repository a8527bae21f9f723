/** The jobs the orchestrator sends to the load-generator process, and what comes back. */
import type { TargetSpec } from './dial.js';

export interface KeepAliveJob {
  kind: 'keepalive';
  target: TargetSpec;
  /** Host header of the STS request (the name the proxies attribute). */
  hostHeader: string;
  connections: number;
  warmupMs: number;
  durationMs: number;
}

/** Where plain-HTTP requests go: TCP to `connect`, request-target `url` (absolute-form through a proxy, `/` direct). */
export interface PlainTarget {
  connect: { host: string; port: number };
  url: string;
  hostHeader: string;
}

/** Like KeepAliveJob, in plain HTTP: one keep-alive TCP connection per client, no TLS, no CONNECT. */
export interface PlainKeepAliveJob {
  kind: 'plain-keepalive';
  target: PlainTarget;
  connections: number;
  warmupMs: number;
  durationMs: number;
}

export interface NewConnectionJob {
  kind: 'newconn';
  target: TargetSpec;
  hostHeader: string;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** CONNECT targets used in turn (distinct hosts give distinct telemetry records); default target.authority. */
  authorities?: string[];
}

export interface BulkJob {
  kind: 'bulk';
  target: TargetSpec;
  hostHeader: string;
  bytes: number;
}

/** N new connections at once, one request each, all at the same moment: the cost of a burst on a cold or idle proxy. */
export interface BurstJob {
  kind: 'burst';
  target: TargetSpec;
  hostHeader: string;
  connections: number;
}

export interface IdleOpenJob {
  kind: 'idle-open';
  proxy: { host: string; port: number };
  authority: string;
  count: number;
  parallel: number;
}

export interface IdleCloseJob {
  kind: 'idle-close';
}

export interface SoakStartJob {
  kind: 'soak-start';
  inspect: TargetSpec;
  tunnel: TargetSpec;
  hostHeader: string;
  /** Keep-alive inspected requests per second, over `inspectConnections` connections, rotating `keys` access keys. */
  inspectRps: number;
  inspectConnections: number;
  keys: number;
  /** New inspected connections per second (CONNECT + TLS + one request). */
  inspectCps: number;
  /** New plain tunnels per second (CONNECT + TLS + one request), rotating `tunnelAuthorities`. */
  tunnelCps: number;
  tunnelAuthorities: string[];
}

export interface SoakStatsJob {
  kind: 'soak-stats';
}

export interface SoakStopJob {
  kind: 'soak-stop';
}

export type Job =
  | KeepAliveJob
  | PlainKeepAliveJob
  | NewConnectionJob
  | BulkJob
  | BurstJob
  | IdleOpenJob
  | IdleCloseJob
  | SoakStartJob
  | SoakStatsJob
  | SoakStopJob;

export interface RunResult {
  /** Requests (or tunnels, or bytes for bulk) completed inside the measured window. */
  count: number;
  errors: number;
  firstError: string | null;
  wallMs: number;
  /** The generator's own CPU (user + system, all threads) over the window. */
  cpuMs: number;
  p50Ms: number | null;
  p99Ms: number | null;
  bytes: number;
}

export interface SoakStats {
  /** Since the previous stats call. */
  inspectRequests: number;
  inspectConnections: number;
  tunnels: number;
  errors: number;
  firstError: string | null;
  p99Ms: number | null;
  cpuMs: number;
  wallMs: number;
}

export type JobMessage = { id: number; job: Job };
export type JobReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** Sent by the generator when a job's measured window opens and closes, so the orchestrator can read CPU counters exactly then. */
export type WindowEvent = { event: 'window-start' | 'window-end' };

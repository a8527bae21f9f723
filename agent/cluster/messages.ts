/**
 * What the primary and its proxy workers say to each other over the cluster
 * IPC channel (structured clone). The channel is ordered: whatever a worker
 * sent before a reply arrives before that reply, which is how "every
 * observation up to now" is collected before a flush and before an exit.
 *
 *   worker ──ready──▶ primary ──init──▶ worker ──listening | failed──▶ primary
 *   worker ──observations, log (batched); tunnels (when the count changed, at most every 100 ms)──▶ primary
 *   primary ──collect──▶ worker ──(observations…) collected──▶ primary      before each telemetry flush
 *   primary ──metrics──▶ worker ──metrics──▶ primary                         each /metrics scrape
 *   primary ──reload──▶ worker ──reloaded──▶ primary                         SIGHUP
 *   primary ──stop──▶ worker ──(observations…) stopped──▶ primary, exit       SIGTERM
 *     worker ──idle (its tunnels are gone)──▶ primary ──drained (every worker's are)──▶ worker: until then it answers 503
 *   worker ──lease-want──▶ primary ──lease──▶ worker; worker ──lease-return──▶ primary   the shared tunnel cap
 *   primary ──recall──▶ worker ──lease-return──▶ primary                              another worker is short
 *   worker ──passthrough──▶ primary ──passthrough──▶ every other worker              automatic passthrough entries
 *
 * An embedded primary (one given its own network and clock, as an in-process host gives them) also
 * serves its workers' DNS lookups and connections and tells them its time:
 *
 *   worker ──lookup──▶ primary ──looked-up──▶ worker
 *   worker ──dial──▶ primary ──dialled (+ the connected socket)──▶ worker … dial-broken / dial-closed
 *   primary ──clock──▶ worker                                                          whenever its clock moved
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { AgentConfig } from '../config/schema.js';
import type { ObservationEvent } from '../observe/model/observation.js';

/** Every message carries this tag, so other users of the channel (prom-client's own) are left alone. */
export const TAG = 'egress-witness';

/** An error as it crosses the channel: its code (what failure classification reads) and message. */
export interface ErrorInfo {
  code: string | null;
  message: string;
}

/** What an embedded primary lends its workers (see the top of this file); null: nothing, each worker is on its own. */
export interface Embedded {
  /** Lookups and connections go through the primary. */
  dial: boolean;
  /** The primary's clock, as it last said it; null: the worker's own. */
  clock: number | null;
}

export type ToWorker =
  | {
      tag: typeof TAG;
      t: 'init';
      index: number;
      workers: number;
      config: AgentConfig;
      adminPort: number;
      logLevelOverride: string | null;
      embedded: Embedded | null;
    }
  | { tag: typeof TAG; t: 'collect'; id: number }
  | { tag: typeof TAG; t: 'metrics'; id: number }
  | { tag: typeof TAG; t: 'reload'; id: number; config: AgentConfig }
  | { tag: typeof TAG; t: 'stop'; drainMs: number }
  | { tag: typeof TAG; t: 'lease'; n: number; cap: number; waiting: boolean }
  | { tag: typeof TAG; t: 'recall' }
  | { tag: typeof TAG; t: 'drained' }
  | { tag: typeof TAG; t: 'passthrough'; clientIp: string; host: string }
  | { tag: typeof TAG; t: 'looked-up'; id: number; answers: { address: string; family: number }[] | null; error: ErrorInfo | null }
  | { tag: typeof TAG; t: 'dialled'; id: number; error: ErrorInfo | null }
  | { tag: typeof TAG; t: 'dial-broken'; id: number; error: ErrorInfo | null }
  | { tag: typeof TAG; t: 'clock'; now: number };

export interface ListenAddresses {
  proxy: { address: string; family: string; port: number };
  transparent: { address: string; family: string; port: number } | null;
}

export type FromWorker =
  | { tag: typeof TAG; t: 'ready' }
  | { tag: typeof TAG; t: 'listening'; addresses: ListenAddresses }
  | { tag: typeof TAG; t: 'failed'; message: string }
  | { tag: typeof TAG; t: 'observations'; events: ObservationEvent[] }
  | { tag: typeof TAG; t: 'log'; text: string }
  | { tag: typeof TAG; t: 'tunnels'; activeTunnels: number }
  | { tag: typeof TAG; t: 'collected'; id: number; activeTunnels: number }
  | { tag: typeof TAG; t: 'metrics'; id: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { tag: typeof TAG; t: 'reloaded'; id: number; ok: boolean }
  /** Its registry as it stopped: the agent's /metrics keeps what its workers did after they are gone. */
  | { tag: typeof TAG; t: 'stopped'; activeTunnels: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { tag: typeof TAG; t: 'lease-want'; n: number; waiting: boolean }
  | { tag: typeof TAG; t: 'lease-return'; n: number }
  | { tag: typeof TAG; t: 'idle' }
  | { tag: typeof TAG; t: 'passthrough'; clientIp: string; host: string }
  | { tag: typeof TAG; t: 'lookup'; id: number; host: string }
  | { tag: typeof TAG; t: 'dial'; id: number; host: string; port: number }
  | { tag: typeof TAG; t: 'dial-cancel'; id: number }
  | { tag: typeof TAG; t: 'dial-closed'; id: number };

export function isOurs(m: unknown): m is { tag: typeof TAG; t: string } {
  return typeof m === 'object' && m !== null && (m as { tag?: unknown }).tag === TAG;
}

export function errorInfo(err: unknown): ErrorInfo {
  const e = err as { code?: unknown; message?: unknown } | null;
  return { code: typeof e?.code === 'string' ? e.code : null, message: typeof e?.message === 'string' ? e.message : String(err) };
}

export function errorFrom(info: ErrorInfo): Error {
  return Object.assign(new Error(info.message), info.code !== null ? { code: info.code } : {});
}

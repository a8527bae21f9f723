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
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { AgentConfig } from '../config/schema.js';
import type { ObservationEvent } from '../observe/model/observation.js';

/** Every message carries this tag, so other users of the channel (prom-client's own) are left alone. */
export const TAG = 'egress-witness';

export type ToWorker =
  | { tag: typeof TAG; t: 'init'; index: number; workers: number; config: AgentConfig; adminPort: number; logLevelOverride: string | null }
  | { tag: typeof TAG; t: 'collect'; id: number }
  | { tag: typeof TAG; t: 'metrics'; id: number }
  | { tag: typeof TAG; t: 'reload'; id: number; config: AgentConfig }
  | { tag: typeof TAG; t: 'stop'; drainMs: number };

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
  | { tag: typeof TAG; t: 'stopped'; activeTunnels: number };

export function isOurs(m: unknown): m is { tag: typeof TAG; t: string } {
  return typeof m === 'object' && m !== null && (m as { tag?: unknown }).tag === TAG;
}

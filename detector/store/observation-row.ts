/** An observation as the SQL backends store it (one row of `observations`), and the sighting it is read back as. */
import type { Sighting } from '../correlate/types.js';

export interface ObservationRow {
  gateway_id: string;
  access_key_id: string | null;
  service: string | null;
  region: string | null;
  host: string;
  client_ip: string;
  network: string | null;
  mode: string;
  capture: string;
  /** null: a row stored before outcomes were kept. */
  outcome: string | null;
  action: string | null;
  first_ms: number;
  last_ms: number;
  count: number;
}

export function toSighting(r: ObservationRow): Sighting {
  return {
    gatewayId: r.gateway_id,
    clientIp: r.client_ip,
    network: r.network,
    firstSeenMs: r.first_ms,
    lastSeenMs: r.last_ms,
    count: r.count,
    host: r.host,
    service: r.service,
    region: r.region,
    action: r.action,
    accessKeyId: r.access_key_id,
    mode: r.mode as Sighting['mode'],
    capture: r.capture === 'transparent' ? 'transparent' : 'explicit',
    outcome: r.outcome,
  };
}

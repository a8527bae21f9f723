/** An observation as the SQL backends store it (one row of `observations`), and the sighting it is read back as. */
import type { Observation } from '../../protocol/telemetry.js';
import type { Sighting } from '../correlate/types.js';

/** The columns an observation fills from its record, in the order `observationValues` gives them (for INSERT). */
export const OBSERVATION_VALUE_COLUMNS =
  'access_key_id, service, region, host, client_ip, network, mode, action, first_ms, last_ms, count, capture, outcome';

/** An observation record's values for OBSERVATION_VALUE_COLUMNS (the gateway id is the batch's). */
export type ObservationValues = [
  accessKeyId: string | null,
  service: string | null,
  region: string | null,
  host: string,
  clientIp: string,
  network: string | null,
  mode: string,
  action: string | null,
  firstMs: number,
  lastMs: number,
  count: number,
  capture: string,
  outcome: string,
];

/** How long the observation spans (lastMs − firstMs): span queries reach back by the longest one stored. */
export function spanMs(v: ObservationValues): number {
  return v[9] - v[8];
}

export function observationValues(r: Observation): ObservationValues {
  return [
    r.accessKeyId,
    r.aws?.service ?? null,
    r.aws?.region ?? null,
    r.host,
    r.clientIp,
    r.network,
    r.mode,
    r.action,
    Date.parse(r.firstSeen),
    Date.parse(r.lastSeen),
    r.count,
    r.capture ?? 'explicit',
    r.outcome,
  ];
}

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

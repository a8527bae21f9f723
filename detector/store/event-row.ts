/** A CloudTrail event's kept copy as the SQL backends store it (one row of `events`). */
import type { StoredEvent } from './store.js';

const COLUMNS = [
  'event_id',
  'access_key_id',
  'source_ip',
  'event_time_ms',
  'vpc_endpoint_id',
  'origin',
  'fingerprint',
  'seen_ms',
  'summary',
];

/** The columns an event fills, in the order `eventValues` gives them (for INSERT). */
export const EVENT_COLUMNS = COLUMNS.join(', ');

/** `ON CONFLICT (event_id) DO UPDATE SET` this: every column but the event ID from the copy written. */
export const EVENT_REPLACE_SET = COLUMNS.slice(1)
  .map((c) => `${c} = excluded.${c}`)
  .join(', ');

/** An event's values for EVENT_COLUMNS, its summary as JSON text. */
export function eventValues(e: StoredEvent): [string, string | null, string, number, string | null, string, string, number, string] {
  return [
    e.eventId,
    e.accessKeyId,
    e.sourceIp,
    e.eventTimeMs,
    e.vpcEndpointId,
    e.origin,
    e.fingerprint,
    e.seenMs,
    JSON.stringify(e.summary),
  ];
}

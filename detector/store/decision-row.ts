/** A decision as the SQL backends store it (one row of `decisions`). */
import type { StoredDecision } from './store.js';

/** The columns a decision fills, in the order `decisionValues` gives them (for INSERT). */
export const DECISION_COLUMNS = 'kind, subject_id, time_ms, decided_ms, disposition, rule, access_key_id, source_ip, gateway_id, detail';

/** A decision's values for DECISION_COLUMNS, its detail as JSON text. */
export function decisionValues(
  d: StoredDecision,
): [string, string, number, number, string, string, string | null, string | null, string | null, string] {
  return [
    d.kind,
    d.subjectId,
    d.timeMs,
    d.decidedMs,
    d.disposition,
    d.rule,
    d.accessKeyId,
    d.sourceIp,
    d.gatewayId,
    JSON.stringify(d.detail),
  ];
}

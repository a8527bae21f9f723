/**
 * The decision record: the one JSON shape of a decision, printed by
 * `egress-witness detector decisions` (from the store) and by `egress-witness
 * replay` (as it decides), one per line. docs/decision-record.schema.json is
 * this schema as JSON Schema; docs/detection.md#decision-records documents it.
 *
 *   { version, kind, id, time, decidedAt, disposition, rule, accessKeyId, sourceIp, gatewayId, detail }
 *
 * `detail` is the full decision: the rules' Decision for CloudTrail events,
 * the GuardDuty decision for GuardDuty findings (both have `reason`).
 */
import { z } from 'zod';
import { isoTime } from '../../common/time/iso-time.js';
import type { Decision } from '../correlate/types.js';
import type { GuardDutyDecision } from '../guardduty/decide.js';

export const DECISION_RECORD_VERSION = 1;

const iso = z.string().describe('an ISO 8601 time, UTC');

const evidence = z.object({
  gatewayId: z.string(),
  clientIp: z.string(),
  network: z.string().nullable(),
  firstSeen: iso,
  lastSeen: iso,
  count: z.number(),
  host: z.string(),
  service: z.string().nullable(),
  region: z.string().nullable(),
  action: z.string().nullable(),
  mode: z.string(),
  capture: z.string(),
  deltaMs: z.number(),
  binding: z
    .enum(['instance', 'other', 'unknown', 'translated'])
    .optional()
    .describe("how the client relates to the key's own instance at the event's time (attested, wrong-client)"),
  clientInstanceId: z.string().nullable().optional().describe('the instance that held the client address then, if known'),
});

/** `detail` of a CloudTrail decision: what the rules decided (docs/detection.md#decisions). */
export const cloudTrailDetailSchema = z
  .object({
    eventId: z.string(),
    eventTime: iso,
    accessKeyId: z.string().nullable(),
    sourceIPAddress: z.string(),
    disposition: z.enum(['ignored', 'suppressed', 'finding']),
    rule: z.string(),
    severity: z.number().nullable(),
    gatewayId: z.string().nullable(),
    evidence: z.array(evidence),
    instanceId: z.string().nullable(),
    reason: z.string().describe('one sentence, access keys masked'),
  })
  .describe('a CloudTrail event decision');

/** `detail` of a GuardDuty decision (docs/detection.md#guardduty-findings). */
export const guardDutyDetailSchema = z
  .object({
    findingId: z.string(),
    accessKeyId: z.string().nullable(),
    remoteIp: z.string().nullable(),
    decision: z.enum(['archive', 'keep']),
    reason: z.string().describe('the GuardDuty rule that decided, e.g. attested, external-use-seen'),
    gatewayId: z.string().nullable(),
    evidence: z.object({
      start: z.array(evidence),
      end: z.array(evidence),
      externalEvents: z.array(
        z.object({ eventId: z.string(), eventTime: iso, sourceIPAddress: z.string(), vpcEndpointId: z.string().nullable().optional() }),
      ),
    }),
    spanStart: iso.nullable(),
    spanEnd: iso.nullable(),
  })
  .describe('a GuardDuty finding decision');

export const decisionRecordSchema = z
  .object({
    version: z.literal(DECISION_RECORD_VERSION).describe('the record format; a change that removes or renames a field raises it'),
    kind: z.enum(['cloudtrail', 'guardduty']),
    id: z.string().describe('the CloudTrail eventID, or the GuardDuty finding id (with its updatedAt when it has one)'),
    time: iso.describe("the event's time (CloudTrail eventTime, GuardDuty eventLastSeen)"),
    decidedAt: iso.describe('when the decision was made'),
    disposition: z.enum(['ignored', 'suppressed', 'finding', 'archive', 'keep']),
    rule: z.string().describe('the rule that decided (CloudTrail) or the GuardDuty reason'),
    accessKeyId: z.string().nullable(),
    sourceIp: z.string().nullable(),
    gatewayId: z.string().nullable(),
    detail: z.union([cloudTrailDetailSchema, guardDutyDetailSchema]),
  })
  .describe('egress-witness decision record, one JSON object per line');

export type DecisionRecord = z.infer<typeof decisionRecordSchema>;

/** A decision as the store keeps it (detector/store StoredDecision). */
export interface DecisionRow {
  kind: 'cloudtrail' | 'guardduty';
  subjectId: string;
  timeMs: number;
  decidedMs: number;
  disposition: string;
  rule: string;
  accessKeyId: string | null;
  sourceIp: string | null;
  gatewayId: string | null;
  detail: unknown;
}

/** Keys in this order, so every producer prints the same line for the same decision. */
export function decisionRecord(d: DecisionRow): Record<string, unknown> {
  return {
    version: DECISION_RECORD_VERSION,
    kind: d.kind,
    id: d.subjectId,
    time: isoTime(d.timeMs),
    decidedAt: isoTime(d.decidedMs),
    disposition: d.disposition,
    rule: d.rule,
    accessKeyId: d.accessKeyId,
    sourceIp: d.sourceIp,
    gatewayId: d.gatewayId,
    detail: d.detail,
  };
}

/** The row the daemon stores for a CloudTrail decision (detector/engine/correlation-engine.ts). */
export function cloudTrailDecisionRow(d: Decision, eventTimeMs: number, decidedMs: number): DecisionRow {
  return {
    kind: 'cloudtrail',
    subjectId: d.eventId,
    timeMs: eventTimeMs,
    decidedMs,
    disposition: d.disposition,
    rule: d.rule,
    accessKeyId: d.accessKeyId,
    sourceIp: d.sourceIPAddress,
    gatewayId: d.gatewayId,
    detail: d,
  };
}

/** The row the daemon stores for a GuardDuty decision (detector/engine/guardduty-processor.ts). */
export function guardDutyDecisionRow(d: GuardDutyDecision, subjectId: string, timeMs: number, decidedMs: number): DecisionRow {
  return {
    kind: 'guardduty',
    subjectId,
    timeMs,
    decidedMs,
    disposition: d.decision,
    rule: d.reason,
    accessKeyId: d.accessKeyId,
    sourceIp: d.remoteIp,
    gatewayId: d.gatewayId,
    detail: d,
  };
}

/** What the findings file shares with the record, said in the JSON Schema too (docs/findings.md has the table). */
export const FINDINGS_OVERLAP =
  "The findings file (findings.file, replay --findings) shares these fields: a finding's egressWitness holds disposition, rule, accessKeyId, sourceIp and gatewayId under these names with these values, and detail.reason and detail.evidence as reason and evidence, all of its latest occurrence, whose id is the last of egressWitness.eventIds; a guardduty-kept line's egressWitness is a GuardDuty record's detail unchanged. See docs/findings.md#findings-and-decision-records.";

/** docs/decision-record.schema.json: the record as JSON Schema (a test holds the file to this). */
export function decisionRecordJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = z.toJSONSchema(decisionRecordSchema, { target: 'draft-2020-12' });
  return {
    $schema,
    $id: `urn:egress-witness:decision-record:${DECISION_RECORD_VERSION}`,
    title: `egress-witness decision record, version ${DECISION_RECORD_VERSION}`,
    $comment: FINDINGS_OVERLAP,
    ...rest,
  };
}

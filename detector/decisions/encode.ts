/**
 * A CloudTrail decision's record line (decisionRecord of cloudTrailDecisionRow, as JSON.stringify
 * prints it) built from its known fields: the keys in their fixed order as constant text, texts that
 * can hold anything through JSON.stringify, numbers and null as they print. Only a Decision with
 * exactly the fields the rules give it, in their order and of their types, takes this path: for any
 * other (a key more, less or moved, a value of another type) the caller stringifies the record.
 * The evidence, whose objects the rules build in more than one place, is stringified as it is.
 */
import { isoTime } from '../correlate/iso-time.js';
import type { Decision } from '../correlate/types.js';
import { DECISION_RECORD_VERSION } from './record.js';

const HEAD = `{"version":${DECISION_RECORD_VERSION},"kind":"cloudtrail","id":`;

/** The Decision's keys in the order decide() gives them, which is the order JSON.stringify prints. */
const KEYS = [
  'eventId',
  'eventTime',
  'accessKeyId',
  'sourceIPAddress',
  'disposition',
  'rule',
  'severity',
  'gatewayId',
  'evidence',
  'instanceId',
  'reason',
] as const;

const str = (s: string): string => JSON.stringify(s);
const strOrNull = (s: string | null): string => (s === null ? 'null' : JSON.stringify(s));
const numOrNull = (n: number | null): string => (n !== null && Number.isFinite(n) ? String(n) : 'null');

/** Whether `d` has exactly KEYS, in order, of the types the encoder prints (nothing that would print otherwise). */
function controlled(d: Decision): boolean {
  const o = d as unknown as Record<string, unknown>;
  if (Object.getPrototypeOf(o) !== Object.prototype || o.toJSON !== undefined) return false;
  let i = 0;
  for (const k in o) {
    if (i >= KEYS.length || k !== KEYS[i]) return false;
    i++;
  }
  if (i !== KEYS.length) return false;
  const isText = (v: unknown): boolean => typeof v === 'string';
  const isTextOrNull = (v: unknown): boolean => v === null || typeof v === 'string';
  const ev = o.evidence;
  return (
    isText(o.eventId) &&
    isText(o.eventTime) &&
    isTextOrNull(o.accessKeyId) &&
    isText(o.sourceIPAddress) &&
    isText(o.disposition) &&
    isText(o.rule) &&
    (o.severity === null || typeof o.severity === 'number') &&
    isTextOrNull(o.gatewayId) &&
    Array.isArray(ev) &&
    Object.getPrototypeOf(ev) === Array.prototype &&
    (ev as { toJSON?: unknown }).toJSON === undefined &&
    isTextOrNull(o.instanceId) &&
    isText(o.reason)
  );
}

/**
 * The line in three pieces — up to and including `"reason":`, the reason, and `}}` — as
 * decisionLineParts gives it; null when `d` is not of the shape this encoder prints.
 */
export function cloudTrailDecisionJsonParts(d: Decision, eventTimeMs: number, decidedMs: number): [string, string, string] | null {
  if (!controlled(d)) return null;
  const accessKeyId = strOrNull(d.accessKeyId);
  const sourceIp = str(d.sourceIPAddress);
  const gatewayId = strOrNull(d.gatewayId);
  const disposition = str(d.disposition);
  const rule = str(d.rule);
  const head =
    HEAD +
    str(d.eventId) +
    ',"time":"' +
    isoTime(eventTimeMs) +
    '","decidedAt":"' +
    isoTime(decidedMs) +
    '","disposition":' +
    disposition +
    ',"rule":' +
    rule +
    ',"accessKeyId":' +
    accessKeyId +
    ',"sourceIp":' +
    sourceIp +
    ',"gatewayId":' +
    gatewayId +
    ',"detail":{"eventId":' +
    str(d.eventId) +
    ',"eventTime":' +
    str(d.eventTime) +
    ',"accessKeyId":' +
    accessKeyId +
    ',"sourceIPAddress":' +
    sourceIp +
    ',"disposition":' +
    disposition +
    ',"rule":' +
    rule +
    ',"severity":' +
    numOrNull(d.severity) +
    ',"gatewayId":' +
    gatewayId +
    ',"evidence":' +
    (d.evidence.length === 0 ? '[]' : JSON.stringify(d.evidence)) +
    ',"instanceId":' +
    strOrNull(d.instanceId) +
    ',"reason":';
  return [head, str(d.reason), '}}'];
}

/**
 * One CloudTrail event may reach the detector more than once: from the trail
 * itself (log files in the watch directory; S3/SQS), and pushed over HTTP
 * (EventBridge, relays — or anyone holding the ingest token). The event ID
 * alone cannot say which copy is true, so each copy carries its origin and a
 * fingerprint of what the decision reads, and a later copy is judged against
 * the one kept:
 *
 *   none kept                                   → new: decide it
 *   same fingerprint                            → duplicate (a more trusted origin is noted)
 *   different, the new copy is more trusted     → supersede: decide the new copy, record the conflict
 *   different, the new copy is not more trusted → conflict: keep the old copy, record the conflict
 *
 * Trust, lowest first: pushed < trail. A copy kept by an older detector has no
 * fingerprint: the next copy is taken as its identity without a decision.
 */
import { hash } from 'node:crypto';
import type { CloudTrailEvent } from '../cloudtrail/parse.js';

export const EVENT_ORIGINS = ['pushed', 'trail'] as const;
export type EventOrigin = (typeof EVENT_ORIGINS)[number];

const TRUST: Readonly<Record<EventOrigin, number>> = { pushed: 1, trail: 2 };

export interface EventCopy {
  origin: EventOrigin;
  fingerprint: string;
}

/** The copy kept for an event ID; `origin` and `fingerprint` are null for rows an older detector wrote. */
export interface KeptCopy {
  origin: EventOrigin | null;
  fingerprint: string | null;
}

export type CopyVerdict =
  | { kind: 'new' }
  /** Same content. `promote`: the new copy's origin is more trusted, note it as the kept origin. */
  | { kind: 'duplicate'; promote: boolean }
  /** An older row without a fingerprint: take this copy as its identity, decide nothing. */
  | { kind: 'adopt' }
  | { kind: 'supersede' }
  | { kind: 'conflict' };

export function isMoreTrusted(a: EventOrigin, than: EventOrigin | null): boolean {
  return than === null || TRUST[a] > TRUST[than];
}

export function judgeCopy(kept: KeptCopy | null, copy: EventCopy): CopyVerdict {
  if (kept === null) return { kind: 'new' };
  if (kept.fingerprint === null) return { kind: 'adopt' };
  if (kept.fingerprint === copy.fingerprint) return { kind: 'duplicate', promote: isMoreTrusted(copy.origin, kept.origin) };
  return isMoreTrusted(copy.origin, kept.origin) ? { kind: 'supersede' } : { kind: 'conflict' };
}

/**
 * A digest of everything the correlation rules and the finding read from an event, so two copies
 * that would be decided alike fingerprint alike (an EventBridge detail and the log file record of
 * one call do), and a copy with any such field changed does not.
 */
export function eventFingerprint(e: CloudTrailEvent): string {
  const id = e.identity;
  const fields = [
    e.eventId,
    e.eventTime,
    e.eventSource,
    e.eventName,
    e.awsRegion,
    e.sourceIPAddress,
    e.userAgent,
    e.errorCode,
    e.recipientAccountId,
    e.vpcEndpointId,
    e.requestHost,
    id.type,
    id.arn,
    id.principalId,
    id.accessKeyId,
    id.accountId,
    id.ec2RoleDelivery,
    id.sessionIssuerArn,
    id.sessionCreationDate,
  ];
  return hash('sha256', JSON.stringify(fields), 'base64url');
}

/** The fields of a copy worth showing in a conflict record (no request or response parameters). */
export function copySummary(e: CloudTrailEvent, origin: EventOrigin): Record<string, string | null> {
  return {
    origin,
    eventTime: e.eventTime,
    eventSource: e.eventSource,
    eventName: e.eventName,
    awsRegion: e.awsRegion,
    sourceIPAddress: e.sourceIPAddress,
    accessKeyId: e.identity.accessKeyId,
    arn: e.identity.arn,
    vpcEndpointId: e.vpcEndpointId,
  };
}

/**
 * CloudTrail delivers about five minutes late and agents ship in batches, so
 * the evidence for a recent call may not have arrived yet. A finding inside
 * its grace period is provisional: the daemon holds it and decides again
 * once eventTime + grace has passed. Suppressions and ignores are final —
 * later evidence can only add attestation, never remove it.
 */
import type { Decision } from './types.js';

export function isProvisional(decision: Decision, nowMs: number, eventTimeMs: number, graceMs: number): boolean {
  return decision.disposition === 'finding' && eventTimeMs + graceMs > nowMs;
}

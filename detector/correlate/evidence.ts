/**
 * Sightings turned into recorded evidence: distance to the event, nearest
 * first, bounded in number, and the small text helpers reasons share.
 */
import { clockTimeOf, isoTime } from '../../common/time/iso-time.js';
import { maskAccessKeyId } from '../../common/log/redact.js';
import { MAX_EVIDENCE, type Evidence, type Sighting } from './types.js';

/** Distance from `atMs` to the sighting's span; 0 when inside it. */
export function distanceMs(s: Sighting, atMs: number): number {
  if (atMs < s.firstSeenMs) return s.firstSeenMs - atMs;
  if (atMs > s.lastSeenMs) return atMs - s.lastSeenMs;
  return 0;
}

export function withinWindow(s: Sighting, atMs: number, windowMs: number): boolean {
  return distanceMs(s, atMs) <= windowMs;
}

export function toEvidence(s: Sighting, atMs: number): Evidence {
  return {
    gatewayId: s.gatewayId,
    clientIp: s.clientIp,
    network: s.network,
    firstSeen: isoTime(s.firstSeenMs),
    lastSeen: isoTime(s.lastSeenMs),
    count: s.count,
    host: s.host,
    service: s.service,
    region: s.region,
    action: s.action,
    mode: s.mode,
    capture: s.capture,
    deltaMs: distanceMs(s, atMs),
  };
}

/** The nearest sightings to `atMs` as evidence, nearest first (latest first on a tie). */
export function nearestEvidence(sightings: readonly Sighting[], atMs: number, max = MAX_EVIDENCE): Evidence[] {
  return nearestSightings(sightings, atMs, max).map((s) => toEvidence(s, atMs));
}

/**
 * The `max` sightings nearest to `atMs`, nearest first (latest first on a tie, then in the given
 * order): a sort of all of them cut to `max`, kept by inserting each into the first `max` instead
 * (no sort of the rest, no wrapper per sighting; usually there are one or two).
 */
export function nearestSightings(sightings: readonly Sighting[], atMs: number, max = MAX_EVIDENCE): readonly Sighting[] {
  if (sightings.length === 1) return sightings;
  const out: Sighting[] = [];
  const dist: number[] = [];
  for (const s of sightings) {
    const d = distanceMs(s, atMs);
    let i = out.length;
    // Before each one it is strictly nearer than (or as near and later): a stable sort's order.
    while (i > 0 && (d - (dist[i - 1] as number) || (out[i - 1] as Sighting).lastSeenMs - s.lastSeenMs) < 0) i--;
    if (i >= max) continue;
    // Shifts the farther ones back by one, the last dropped beyond `max`.
    let j = Math.min(out.length, max - 1);
    for (; j > i; j--) {
      out[j] = out[j - 1] as Sighting;
      dist[j] = dist[j - 1] as number;
    }
    out[i] = s;
    dist[i] = d;
  }
  return out;
}

/** The sighting nearest to `atMs` (latest on a tie), or null. */
export function nearestSighting(sightings: readonly Sighting[], atMs: number): Sighting | null {
  let best: Sighting | null = null;
  let bestD = Infinity;
  for (const s of sightings) {
    const d = distanceMs(s, atMs);
    if (d < bestD || (d === bestD && best !== null && s.lastSeenMs > best.lastSeenMs)) {
      best = s;
      bestD = d;
    }
  }
  return best;
}

/** Per gateway, its sightings: the one gateway whose sighting is nearest to `atMs` (the first on a tie), or null when none has any. */
export function nearestGateway(
  groups: Iterable<{ gatewayId: string; sightings: readonly Sighting[] }>,
  atMs: number,
): { gatewayId: string; sightings: readonly Sighting[]; nearest: Sighting } | null {
  let best: { gatewayId: string; sightings: readonly Sighting[]; nearest: Sighting } | null = null;
  for (const { gatewayId, sightings } of groups) {
    const nearest = nearestSighting(sightings, atMs);
    if (nearest !== null && (best === null || distanceMs(nearest, atMs) < distanceMs(best.nearest, atMs)))
      best = { gatewayId, sightings, nearest };
  }
  return best;
}

/** The point of the sighting's span closest to `atMs`: when the gateway saw it, as near the event as it gets. */
export function nearestPointMs(s: Sighting, atMs: number): number {
  return Math.min(Math.max(atMs, s.firstSeenMs), s.lastSeenMs);
}

/** `ASIAIOSFODNN7EXAMPLE` → `ASIA…MPLE`: enough to tell keys apart in a log, not enough to use one. */
export function maskKey(key: string | null): string {
  return key === null ? '(no key)' : maskAccessKeyId(key);
}

/** `12:01:07Z`: the reason's time of day (the date is in the decision). */
export function clockTime(ms: number): string {
  return clockTimeOf(ms);
}

/** `5m`, `90s`, `2h`: durations in reasons. */
export function shortDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** `10.20.3.4 (vpc-prod)`, `10.20.3.4 (vpc-prod, transparent)` (redirected by the gateway) or `192.168.9.9 (no routed network)`. */
export function describeClient(s: Sighting): string {
  return `${s.clientIp} (${s.network ?? 'no routed network'}${s.capture === 'transparent' ? ', transparent' : ''})`;
}

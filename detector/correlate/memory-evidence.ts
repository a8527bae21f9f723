/**
 * EvidenceView over telemetry records held in memory: for `replay` and for
 * tests. Three indexes, each a SpanIndex (binary search on firstSeen):
 *
 *   by access key               → sightings          keySightings
 *   by gateway+service+region   → sightings          endpointSightings
 *   by gateway                  → heartbeats and observation spans  heartbeatNear
 *
 * Observations whose client is in no routed network (network null) are kept:
 * the unrouted-client rule depends on them. The gateway id passed to
 * `addRecord` (the authenticated sender) wins over the one in the record.
 * Every observation is indexed with its outcome; whether it attests is
 * decided when it is read (`attests`), as the SQLite store does.
 *
 * The SQLite store builds one of these per batch as its evidence snapshot
 * (addKeySighting, addEndpointSighting, addLiveness), so the daemon and
 * replay answer the rules with the same code.
 */
import type { Heartbeat, Observation } from '../../protocol/telemetry.js';
import { SpanIndex } from './span-index.js';
import { attests, type EvidenceView, type Sighting } from './types.js';

/**
 * Liveness spans closer than this are merged. A gateway's records a second
 * apart say it was watching in between; a larger gap stays a gap, so
 * heartbeatNear stays exact at the scale of heartbeat_stale (minutes).
 */
const LIVENESS_JOIN_MS = 1_000;

/** Repeated strings (hosts, networks, services, client addresses) are kept once: a million sightings stay small. */
class Interner {
  private readonly map = new Map<string, string>();
  get(s: string): string;
  get(s: string | null): string | null;
  get(s: string | null): string | null {
    if (s === null) return null;
    const hit = this.map.get(s);
    if (hit !== undefined) return hit;
    if (this.map.size < 1_000_000) this.map.set(s, s);
    return s;
  }
}

export class MemoryEvidence implements EvidenceView {
  private readonly strings = new Interner();
  private readonly byKey = new Map<string, SpanIndex<Sighting>>();
  private readonly byEndpoint = new Map<string, SpanIndex<Sighting>>();
  private readonly liveness = new Map<string, SpanIndex<true>>();
  private sightings = 0;

  /** Number of observations indexed. */
  get size(): number {
    return this.sightings;
  }

  /** Indexes one validated telemetry record; records with unparseable times are skipped (returns false). */
  addRecord(gatewayId: string, record: Observation | Heartbeat): boolean {
    if (record.type === 'heartbeat') {
      const t = Date.parse(record.time);
      if (!Number.isFinite(t)) return false;
      indexFor(this.liveness, gatewayId).addMerged(t, t, true, LIVENESS_JOIN_MS);
      return true;
    }
    const first = Date.parse(record.firstSeen);
    const last = Date.parse(record.lastSeen);
    if (!Number.isFinite(first) || !Number.isFinite(last)) return false;
    const i = this.strings;
    this.addSighting({
      gatewayId: i.get(gatewayId),
      clientIp: i.get(record.clientIp),
      network: i.get(record.network),
      firstSeenMs: Math.min(first, last),
      lastSeenMs: Math.max(first, last),
      count: record.count,
      host: i.get(record.host),
      service: i.get(record.aws?.service ?? null),
      region: i.get(record.aws?.region ?? null),
      action: i.get(record.action),
      accessKeyId: i.get(record.accessKeyId),
      mode: record.mode,
      capture: record.capture ?? 'explicit',
      outcome: i.get(record.outcome),
    });
    return true;
  }

  /** One observation: liveness of its gateway, and a sighting of its key and of its endpoint. */
  addSighting(s: Sighting): void {
    this.sightings++;
    this.addLiveness(s.gatewayId, s.firstSeenMs, s.lastSeenMs);
    this.addKeySighting(s);
    this.addEndpointSighting(s);
  }

  /** A sighting answered by keySightings only (a snapshot fetches the two kinds apart). */
  addKeySighting(s: Sighting): void {
    if (s.accessKeyId !== null) indexFor(this.byKey, s.accessKeyId).add(s.firstSeenMs, s.lastSeenMs, s);
  }

  /** A sighting answered by endpointSightings only. */
  addEndpointSighting(s: Sighting): void {
    if (s.service !== null) indexFor(this.byEndpoint, endpointKey(s.gatewayId, s.service, s.region)).add(s.firstSeenMs, s.lastSeenMs, s);
  }

  /** The gateway sent something over [fromMs, toMs]. */
  addLiveness(gatewayId: string, fromMs: number, toMs: number): void {
    indexFor(this.liveness, gatewayId).addMerged(Math.min(fromMs, toMs), Math.max(fromMs, toMs), true, LIVENESS_JOIN_MS);
  }

  /** Forgets evidence that ended before `olderThanMs` (retention). */
  prune(olderThanMs: number): void {
    for (const indexes of [this.byKey, this.byEndpoint, this.liveness])
      for (const index of indexes.values()) index.removeEndedBefore(olderThanMs);
  }

  keySightings(accessKeyId: string, fromMs: number, toMs: number): Sighting[] {
    return this.byKey.get(accessKeyId)?.overlapping(fromMs, toMs, attests) ?? [];
  }

  endpointSightings(gatewayId: string, service: string, region: string | null, fromMs: number, toMs: number): Sighting[] {
    return this.byEndpoint.get(endpointKey(gatewayId, service, region))?.overlapping(fromMs, toMs, attests) ?? [];
  }

  heartbeatNear(gatewayId: string, fromMs: number, toMs: number): boolean {
    return this.liveness.get(gatewayId)?.hasOverlap(fromMs, toMs) ?? false;
  }
}

function indexFor<T>(map: Map<string, SpanIndex<T>>, key: string): SpanIndex<T> {
  let index = map.get(key);
  if (index === undefined) {
    index = new SpanIndex<T>();
    map.set(key, index);
  }
  return index;
}

/** Gateway ids and service names hold no newline; NUL marks a global (null) region. */
function endpointKey(gatewayId: string, service: string, region: string | null): string {
  return `${gatewayId}\n${service}\n${region ?? '\u0000'}`;
}

/**
 * The user's own GuardDuty findings: decide each one (pure rule in
 * decide.ts), record the decision, and in `archive` mode archive exactly the
 * attested ones — idempotently (the store remembers what was archived) and
 * durably: the archive decision queues the finding in the store's outbox in the
 * transaction that records it, and the common delivery engine makes the call,
 * retries it with backoff and survives a restart. Kept findings can go to the webhook, enriched with the reason
 * and the evidence.
 *
 * Only GuardDuty's word counts: a finding is decided on content read with
 * GetFindings from the configured detector and region (guardduty.detector_id,
 * guardduty.region), never from ones a finding names. Polled findings come from
 * there already; a pushed one (POST /v1/guardduty) only says "look at finding
 * X": the detector reads X back and decides on what GuardDuty answers. A pushed
 * finding that cannot be read back is kept and counted. Before every
 * ArchiveFindings call the finding is read back again and decided again.
 *
 *   poll (GetFindings) ──────────────────────────────┐
 *   push ─▶ id ─▶ GetFindings (configured) ─┬─ found ─┴▶ decide ─▶ store decision ─┬─ archive + outbox row ─(commit)─▶ re-read ─▶ decide ─▶ ArchiveFindings
 *                                           └─ not found / failed / not configured ─▶ keep (unconfirmed, counted)
 *                                                                                  └─ keep ─▶ webhook (optional)
 */
import type { Logger } from '../../common/log/logger.js';
import type { BackoffPolicy, SendOutcome } from '../../common/delivery/retry-policy.js';
import type { DeliveryResult, Settlement } from '../../common/delivery/delivery-engine.js';
import { boundDepth } from '../../common/json/bounded-depth.js';
import { maskAccessKeyId } from '../../common/log/redact.js';
import {
  EMPTY_INVENTORY,
  type CompiledRegistry,
  type CorrelationPolicy,
  type EvidenceView,
  type InventoryView,
} from '../correlate/types.js';
import type { FindingsSink } from '../findings/findings-sink.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import { OutboxWorker } from '../delivery/outbox-worker.js';
import type { DetectorStore, QueuedDelivery, StoreOps } from '../store/store.js';
import {
  parseGuardDutyFinding,
  decideGuardDutyFinding,
  type CloudTrailUse,
  type GuardDutyDecision,
  type GuardDutyFindingView,
} from '../guardduty/decide.js';
import type { GuardDutyApi } from '../guardduty/guardduty-api.js';
import { wireFinding } from '../guardduty/wire-shape.js';

export interface GuardDutyProcessorOptions {
  store: DetectorStore;
  registry: () => CompiledRegistry;
  policy: () => CorrelationPolicy;
  /** The instance inventory of now (none: no binding is checked). */
  inventory?: () => InventoryView;
  mode: () => 'report' | 'archive';
  /** The detector and region whose findings are read and archived (guardduty.detector_id, guardduty.region). */
  target: () => { region: string | null; detectorId: string | null };
  webhookKept: () => boolean;
  api: GuardDutyApi | null;
  sink: Pick<FindingsSink, 'emit'>;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
  /** The first retry of a failed archive call (default 2 s; doubling to 5 min). */
  retryBaseMs?: number;
}

/** The outbox sink of ArchiveFindings calls. */
export const GUARDDUTY_ARCHIVE_SINK = 'guardduty-archive';

/** Why a finding could not be read back from GuardDuty. */
export type ReadBackFailure = 'not_found' | 'failed' | 'not_configured';

export type ProcessResult =
  | { kind: 'decided'; decision: GuardDutyDecision }
  | { kind: 'invalid'; reason: string }
  | { kind: 'seen' }
  /** Pushed, but GuardDuty could not confirm it: kept, never decided on the pushed content. */
  | { kind: 'unconfirmed'; why: ReadBackFailure }
  | { kind: 'failed' };

interface Target {
  region: string;
  detectorId: string;
}

/** Tries of one finding's archive call before it is given up (parked; a later poll queues it again). */
const MAX_ARCHIVE_ATTEMPTS = 6;
/** ArchiveFindings takes at most 50 ids per call. */
const ARCHIVE_BATCH = 50;

/** ArchiveFindings retries: the shared retry policy, 2 s doubling to 5 min, no jitter (one call per finding). */
function archiveBackoff(initialMs: number): BackoffPolicy {
  return { initialMs, maxMs: 300_000, multiplier: 2, jitter: 0, unauthorizedMs: 300_000 };
}

function findingIdOf(value: unknown): string | null {
  const id = value && typeof value === 'object' ? (value as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? id : null;
}

export class GuardDutyProcessor {
  /**
   * The ArchiveFindings calls, from the outbox: while started (on the leader of the detectors that
   * share the store); never without a GuardDuty API (replay).
   */
  private archiver: OutboxWorker | null = null;
  /**
   * Findings this process queued in the outbox and that are not settled yet: a poll that lists one
   * again does not queue it again (which would make it due at once, whatever its backoff).
   */
  private readonly queued = new Set<string>();

  constructor(private readonly opts: GuardDutyProcessorOptions) {}

  /**
   * Starts the archive calls' delivery (what the outbox holds from before a restart, or from other
   * detectors, is due at once). Without it, archive decisions are queued in the outbox for the
   * detector that delivers them. Can start again after stop().
   */
  start(): void {
    if (this.archiver !== null || this.opts.api === null) return;
    const opts = this.opts;
    this.archiver = new OutboxWorker({
      store: opts.store,
      sink: { name: GUARDDUTY_ARCHIVE_SINK, maxBatch: ARCHIVE_BATCH, deliver: (items) => this.archiveQueued(items) },
      policy: archiveBackoff(opts.retryBaseMs ?? 2_000),
      maxAttempts: MAX_ARCHIVE_ATTEMPTS,
      logger: opts.logger,
      now: opts.now,
      onSettled: (s, outcome) => this.archiveSettled(s, outcome),
    });
    this.archiver.start();
  }

  /** Something was queued in the archive outbox (by this detector or another): look now. */
  wake(): void {
    this.archiver?.wake();
  }

  private target(): Target | null {
    const t = this.opts.target();
    return this.opts.api && t.region && t.detectorId ? { region: t.region, detectorId: t.detectorId } : null;
  }

  /**
   * Findings pushed to the detector (POST /v1/guardduty). Only their ids are used: each is read
   * back with GetFindings from the configured detector and region, and GuardDuty's answer is
   * decided; one that cannot be read back is kept and counted. Never throws.
   */
  async processPushed(values: readonly unknown[]): Promise<ProcessResult[]> {
    const claims = values.map((v) => this.parseClaim(v));
    const ids = [...new Set(claims.flatMap((c) => (c.kind === 'claim' ? [c.id] : [])))];
    const read = ids.length > 0 ? await this.readBack(ids) : new Map<string, unknown>();
    const results: ProcessResult[] = [];
    for (const c of claims) {
      if (c.kind !== 'claim') {
        results.push(c);
        continue;
      }
      const content = typeof read === 'string' ? undefined : read.get(c.id);
      if (content === undefined) {
        results.push(this.unconfirmed(c.id, typeof read === 'string' ? read : 'not_found'));
        continue;
      }
      this.opts.metrics.guarddutyReadBacks.inc({ outcome: 'confirmed' });
      results.push(await this.process(content));
    }
    return results;
  }

  /** A pushed finding reduced to the id it names (bounded and parsed like any finding). */
  private parseClaim(input: unknown): { kind: 'claim'; id: string } | { kind: 'invalid'; reason: string } | { kind: 'failed' } {
    const { metrics, logger } = this.opts;
    try {
      const { value, truncated } = boundDepth(input);
      if (truncated) metrics.truncatedRecords.inc({ input: 'guardduty' });
      const parsed = parseGuardDutyFinding(wireFinding(value));
      if (parsed.kind === 'finding') return { kind: 'claim', id: parsed.finding.id };
      metrics.guarddutyFindings.inc({ decision: 'skipped', reason: 'invalid' });
      logger.warn({ event: 'guardduty_finding_invalid', reason: parsed.reason }, 'skipped a GuardDuty finding that could not be read');
      return parsed;
    } catch (err) {
      metrics.guarddutyFindings.inc({ decision: 'skipped', reason: 'failed' });
      logger.error({ event: 'guardduty_finding_failed', err }, 'could not process a GuardDuty finding');
      return { kind: 'failed' };
    }
  }

  /** GetFindings in the configured detector and region: the findings found, by id, or why none could be read. */
  private async readBack(ids: readonly string[]): Promise<Map<string, unknown> | ReadBackFailure> {
    const t = this.target();
    if (!t) return 'not_configured';
    try {
      const found = new Map<string, unknown>();
      for (const f of await this.opts.api!.getFindings(t.detectorId, t.region, ids)) {
        const id = findingIdOf(f);
        if (id !== null && ids.includes(id)) found.set(id, f);
      }
      return found;
    } catch (err) {
      this.opts.logger.warn(
        { event: 'guardduty_read_back_failed', findings: ids.length, err: (err as Error).message },
        'GetFindings failed: the findings it was to confirm are kept',
      );
      return 'failed';
    }
  }

  private unconfirmed(findingId: string, why: ReadBackFailure): ProcessResult {
    this.opts.metrics.guarddutyReadBacks.inc({ outcome: why });
    this.opts.metrics.guarddutyFindings.inc({ decision: 'keep', reason: 'unconfirmed' });
    this.opts.logger.warn(
      { event: 'guardduty_finding_unconfirmed', finding_id: findingId.slice(0, 128), why },
      why === 'not_configured'
        ? 'a pushed GuardDuty finding is kept undecided: set guardduty.region and guardduty.detector_id so that it can be read back'
        : why === 'not_found'
          ? `GuardDuty finding ${findingId.slice(0, 128)} was pushed but the configured detector does not hold it; kept undecided`
          : `GuardDuty finding ${findingId.slice(0, 128)} could not be read back; kept undecided`,
    );
    return { kind: 'unconfirmed', why };
  }

  /**
   * A finding as GuardDuty returned it (GetFindings in the configured detector). Never throws: a
   * finding nested too deep is kept truncated (counted); one that fails anyway is counted and skipped.
   */
  async process(input: unknown): Promise<ProcessResult> {
    const { value, truncated } = boundDepth(input);
    if (truncated) this.opts.metrics.truncatedRecords.inc({ input: 'guardduty' });
    try {
      return await this.processBounded(value);
    } catch (err) {
      this.opts.metrics.guarddutyFindings.inc({ decision: 'skipped', reason: 'failed' });
      this.opts.logger.error({ event: 'guardduty_finding_failed', err }, 'could not process a GuardDuty finding');
      return { kind: 'failed' };
    }
  }

  private async processBounded(input: unknown): Promise<ProcessResult> {
    const { metrics, logger } = this.opts;
    const parsed = parseGuardDutyFinding(wireFinding(input));
    if (parsed.kind === 'invalid') {
      metrics.guarddutyFindings.inc({ decision: 'skipped', reason: 'invalid' });
      logger.warn({ event: 'guardduty_finding_invalid', reason: parsed.reason }, 'skipped a GuardDuty finding that could not be read');
      return parsed;
    }
    const f = parsed.finding;
    const recorded = await this.record(f, this.archiveQueueable());
    if (recorded === null) {
      // Decided already (in report mode, or an archive call given up on): archive now if the
      // decision was "archive" and it has not happened yet.
      if ((await this.opts.store.decisionOf('guardduty', subjectOf(f))) === 'archive') await this.archiveIfDue(f.id, false);
      return { kind: 'seen' };
    }
    if (recorded.decision === 'archive') await this.archiveIfDue(f.id, true);
    if (recorded.decision === 'keep' && this.opts.webhookKept()) {
      void this.opts.sink.emit({ kind: 'guardduty-kept', finding: parsed.body, egressWitness: recorded });
    }
    return { kind: 'decided', decision: recorded };
  }

  /**
   * The pure decision over what it may read, fetched first: the key's sightings over the widened
   * span, its gateways' liveness at both ends, the CloudTrail uses of the key and the detector's own
   * findings for it.
   */
  private async decide(f: GuardDutyFindingView, store: StoreOps): Promise<GuardDutyDecision> {
    const registry = this.opts.registry();
    const policy = this.opts.policy();
    const key = f.accessKeyId;
    const first = Date.parse(f.eventFirstSeen ?? '');
    const last = Date.parse(f.eventLastSeen ?? '');
    const w = policy.windowMs;
    const stale = policy.heartbeatStaleMs;
    let evidence: EvidenceView = NO_EVIDENCE;
    let uses: CloudTrailUse[] = [];
    let own = 0;
    const remoteIp = f.remoteIp;
    const read = key !== null && remoteIp !== null && Number.isFinite(first) && Number.isFinite(last) && last >= first;
    if (read) {
      const gateways = gatewaysOf(registry, remoteIp);
      evidence = await store.evidenceSnapshot({
        keys: [{ accessKeyId: key, fromMs: first - w, toMs: last + w }],
        endpoints: [],
        liveness: gateways.flatMap((g) => [
          { gatewayId: g.id, fromMs: first - stale, toMs: first + stale },
          { gatewayId: g.id, fromMs: last - stale, toMs: last + stale },
        ]),
      });
      uses = await store.cloudTrailUses(key, first - w, last + w);
      own = await store.findingsForKey(key, first - w, last + w);
    }
    const outside = (what: string) => new Error(`GuardDuty decision asked for ${what} outside what was read`);
    return decideGuardDutyFinding(f, {
      registry,
      evidence,
      policy,
      inventory: this.opts.inventory?.() ?? EMPTY_INVENTORY,
      cloudTrailUses: (k, from, to) => {
        if (!read || k !== key || from < first - w || to > last + w) throw outside('CloudTrail uses');
        return uses.filter((u) => {
          const t = Date.parse(u.eventTime);
          return t >= from && t <= to;
        });
      },
      ownFindings: (k, from, to) => {
        if (!read || k !== key || from !== first - w || to !== last + w) throw outside('own findings');
        return own;
      },
    });
  }

  /**
   * Decides and stores a version of a finding not decided before; null when it was. With `queue`, an
   * archive decision queues the archive call in the same transaction.
   */
  private async record(f: GuardDutyFindingView, queue: boolean): Promise<GuardDutyDecision | null> {
    const { metrics, logger } = this.opts;
    const subjectId = subjectOf(f);
    const now = this.opts.now();
    const decision = await this.opts.store.withTransaction(async (tx) => {
      if ((await tx.decisionOf('guardduty', subjectId)) !== null) return null;
      const d = await this.decide(f, tx);
      // The unique key decides between detectors deciding the same version at once: the one whose
      // row is stored records it; the other finds it decided.
      const stored = await tx.saveDecision({
        kind: 'guardduty',
        subjectId,
        timeMs: Date.parse(f.eventLastSeen ?? '') || now,
        decidedMs: now,
        disposition: d.decision,
        rule: d.reason,
        accessKeyId: d.accessKeyId,
        sourceIp: d.remoteIp,
        gatewayId: d.gatewayId,
        detail: d,
      });
      if (!stored) return null;
      if (queue && d.decision === 'archive') await tx.enqueueDelivery(GUARDDUTY_ARCHIVE_SINK, f.id, now);
      return d;
    });
    if (decision === null) return null;
    if (queue && decision.decision === 'archive' && this.archiver !== null) this.queued.add(f.id);
    metrics.guarddutyFindings.inc({ decision: decision.decision, reason: decision.reason });
    logger.info(
      {
        event: 'guardduty_decision',
        finding_id: f.id,
        key: decision.accessKeyId ? maskAccessKeyId(decision.accessKeyId) : null,
        remote_ip: decision.remoteIp,
        decision: decision.decision,
        reason: decision.reason,
        gateway_id: decision.gatewayId,
        mode: this.opts.mode(),
      },
      `GuardDuty finding ${f.id}: ${decision.decision} (${decision.reason})`,
    );
    return decision;
  }

  /** Whether an archive decision made now can be queued: archive mode, a GuardDuty API and a target. */
  private archiveQueueable(): boolean {
    return this.opts.api !== null && this.opts.mode() === 'archive' && this.target() !== null;
  }

  /**
   * After an archive decision: the call is made now, through the outbox (the answer to a push waits
   * for it). `queued` says the deciding transaction queued it; otherwise (a finding decided before)
   * it is queued here unless this process queued it already or it is archived.
   */
  private async archiveIfDue(findingId: string, queued: boolean): Promise<void> {
    const { metrics, logger, store } = this.opts;
    if (this.opts.mode() !== 'archive' || this.opts.api === null) return;
    if (!this.target()) {
      metrics.guarddutyArchiveCalls.inc({ outcome: 'not_configured' });
      logger.error(
        { event: 'guardduty_archive_impossible', finding_id: findingId },
        'cannot archive: guardduty.detector_id and guardduty.region are not set',
      );
      return;
    }
    if (!queued) {
      if (this.queued.has(findingId) || (await store.guardDutyArchived(findingId))) return;
      await store.enqueueDelivery(GUARDDUTY_ARCHIVE_SINK, findingId, this.opts.now());
      if (this.archiver !== null) this.queued.add(findingId);
    }
    // Not delivering here (another detector leads): the leader's delivery is woken by the queued row.
    await this.archiver?.runNow();
  }

  /**
   * The outbox's archive calls: each finding is read back from the configured detector and decided
   * again on what GuardDuty says now, and only the ones still to archive go into one ArchiveFindings
   * call. A failed read or call leaves its findings for a retry.
   */
  private async archiveQueued(items: readonly QueuedDelivery[]): Promise<DeliveryResult> {
    const { metrics, logger, store } = this.opts;
    const answered = new Map<string, SendOutcome>();
    if (this.opts.mode() !== 'archive') {
      logger.info(
        { event: 'guardduty_archive_withdrawn', findings: items.length, reason: 'guardduty.mode is report' },
        `not archiving ${items.length} queued GuardDuty finding(s): guardduty.mode is report`,
      );
      return { kind: 'answered', items: answered };
    }
    const target = this.target();
    if (!target) {
      metrics.guarddutyArchiveCalls.inc({ outcome: 'not_configured' }, items.length);
      return { kind: 'failed', outcome: { kind: 'retryable', reason: 'guardduty.detector_id and guardduty.region are not set' } };
    }
    const ids: string[] = [];
    for (const { itemId } of items) if (!(await store.guardDutyArchived(itemId))) ids.push(itemId);
    if (ids.length === 0) return { kind: 'answered', items: answered };
    /** The findings of a failed read or call wait for a retry; the others are settled. */
    const retry = (failed: readonly string[], why: string, err: unknown) => {
      metrics.guarddutyArchiveCalls.inc({ outcome: 'failure' }, failed.length);
      const reason = `${why}: ${(err as Error).message}`;
      for (const id of failed) answered.set(id, { kind: 'retryable', reason });
      return { kind: 'answered' as const, items: answered };
    };
    let got: unknown[];
    try {
      got = await this.opts.api!.getFindings(target.detectorId, target.region, ids);
    } catch (err) {
      metrics.guarddutyReadBacks.inc({ outcome: 'failed' }, ids.length);
      return retry(ids, 'GetFindings failed', err);
    }
    const toArchive: string[] = [];
    for (const id of ids) if ((await this.confirmForArchive(id, got)) === 'archive') toArchive.push(id);
    if (toArchive.length === 0) return { kind: 'answered', items: answered };
    try {
      await this.opts.api!.archive(target.detectorId, target.region, toArchive);
    } catch (err) {
      return retry(toArchive, 'ArchiveFindings failed', err);
    }
    await store.markGuardDutyArchived(toArchive, this.opts.now());
    metrics.guarddutyArchiveCalls.inc({ outcome: 'success' }, toArchive.length);
    for (const id of toArchive)
      logger.info({ event: 'guardduty_archived', finding_id: id }, `archived GuardDuty finding ${id}: the gateway attested the key`);
    return { kind: 'answered', items: answered };
  }

  private archiveSettled(s: Settlement<QueuedDelivery>, outcome: SendOutcome): void {
    const { logger } = this.opts;
    const findingId = s.item.itemId;
    if (s.kind === 'retry') {
      logger.warn(
        { event: 'guardduty_archive_retry', finding_id: findingId, attempt: s.attempts, err: s.reason },
        'ArchiveFindings failed; will retry',
      );
      return;
    }
    this.queued.delete(findingId);
    if (s.kind === 'failed')
      logger.error(
        { event: 'guardduty_archive_failed', finding_id: findingId, err: s.reason, outcome: outcome.kind },
        'ArchiveFindings keeps failing; giving up on this finding until a poll lists it again (it stays active)',
      );
  }

  /**
   * GuardDuty's current word on a finding about to be archived, from what GetFindings returned
   * from the configured detector, decided again (a new version is recorded as such). Anything but
   * "archive" withdraws the call.
   */
  private async confirmForArchive(findingId: string, got: readonly unknown[]): Promise<'archive' | 'withdrawn' | 'archived'> {
    const { metrics, logger, store } = this.opts;
    const raw = got.find((f) => findingIdOf(f) === findingId);
    const parsed = raw === undefined ? null : parseGuardDutyFinding(wireFinding(boundDepth(raw).value));
    metrics.guarddutyReadBacks.inc({ outcome: parsed === null ? 'not_found' : 'confirmed' });
    const withdraw = (reason: string): 'withdrawn' => {
      metrics.guarddutyArchiveCalls.inc({ outcome: 'withdrawn' });
      logger.warn(
        { event: 'guardduty_archive_withdrawn', finding_id: findingId, reason },
        `not archiving GuardDuty finding ${findingId}: ${reason}`,
      );
      return 'withdrawn';
    };
    if (parsed === null) return withdraw('the configured detector no longer holds it');
    if (parsed.kind === 'invalid') return withdraw(`GuardDuty's copy cannot be read: ${parsed.reason}`);
    const f = parsed.finding;
    if (f.archived === true) {
      await store.markGuardDutyArchived([findingId], this.opts.now());
      return 'archived';
    }
    const decision = (await this.record(f, false)) ?? (await this.decide(f, store));
    return decision.decision === 'archive' ? 'archive' : withdraw(`GuardDuty's current copy is kept (${decision.reason})`);
  }

  /** One poll: list the active OutsideAWS findings of the configured detector and decide each. */
  async poll(): Promise<number> {
    const t = this.target();
    if (!t) return 0;
    try {
      const findings = await this.opts.api!.listOutsideAwsFindings(t.detectorId, t.region);
      for (const f of findings) await this.process(f);
      this.opts.metrics.guarddutyPolls.inc({ outcome: 'success' });
      return findings.length;
    } catch (err) {
      this.opts.metrics.guarddutyPolls.inc({ outcome: 'failure' });
      this.opts.logger.error({ event: 'guardduty_poll_failed', err: (err as Error).message }, 'GuardDuty poll failed');
      return 0;
    }
  }

  /** Stops the archive calls: one in flight finishes (bounded); what is queued stays in the outbox. */
  async stop(): Promise<void> {
    const a = this.archiver;
    this.archiver = null;
    this.queued.clear();
    await a?.stop();
  }
}

/** The gateways whose CIDRs hold the address; none for an address that cannot be read (decided as malformed). */
function gatewaysOf(registry: CompiledRegistry, address: string): readonly { id: string }[] {
  try {
    return registry.gatewaysFor(address);
  } catch {
    return [];
  }
}

/** The evidence of a finding that needs none (decided on its shape alone). */
const NO_EVIDENCE: EvidenceView = { keySightings: () => [], endpointSightings: () => [], heartbeatNear: () => false };

/** A finding is decided once per version: GuardDuty updates it (updatedAt) when activity repeats. */
function subjectOf(f: GuardDutyFindingView): string {
  return `${f.id}@${f.updatedAt ?? f.eventLastSeen ?? ''}`;
}

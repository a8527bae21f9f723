/**
 * The detector, built from a validated config without listening (tests run
 * it in-process). `start()` opens the store and binds the listeners,
 * `reload()` swaps gateways, correlation policy and GuardDuty mode (keeping
 * the old ones on error), `stop()` stops accepting and closes the store.
 *
 *   ingest ─▶ store ◀─ correlation engine ◀─ CloudTrail (watch_dir, /v1/cloudtrail)
 *                          │        └─ pending (grace) ─ tick every second
 *                          └─▶ decisions, findings (file, webhook) ; GuardDuty (/v1/guardduty, poll) ─▶ archive
 *                                   └─ outbox (in the deciding transaction) ─(after commit)─▶ Security Hub, findings webhook
 *   finding resolution (every 30 s): late telemetry attests a finding's occurrences ─▶ finding archived, same sinks
 *
 * Several detectors on one PostgreSQL store elect one leader (store/leader-election.ts): GuardDuty
 * polling and archive calls, retention pruning, finding resolution and the outbox deliveries run
 * on the leader only, started when it gains the lock and stopped when it loses it. Ingest,
 * CloudTrail and pending decisions run on every detector. With SQLite the detector always leads.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../common/log/logger.js';
import { createRegistry } from '../common/metrics/registry.js';
import { createAdminServer, listenAt, closeServer } from '../common/admin/admin-server.js';
import { formatProblem, type ConfigProblem } from '../common/config/load.js';
import { formatDuration } from '../common/config/units.js';
import { readSecretFile } from '../common/runtime/config-file.js';
import { isoFromMs } from '../common/time/iso.js';
import { applyHotReload, restartNeededMessage, type ConfigPath } from '../common/config/hot-reload.js';
import { unauthenticatedEventRoutes, type DetectorConfig } from './config/schema.js';
import { createDetectorMetrics, type DetectorMetrics } from './metrics/metrics.js';
import { openStore } from './store/open-store.js';
import { PostgresStore } from './store/postgres-store.js';
import { ALWAYS_HELD, LeaderElection } from './store/leader-election.js';
import type { DetectorStore, StoreTx } from './store/store.js';
import type { CompiledRegistry, CorrelationPolicy } from './correlate/decide.js';
import { unwrapEventBridge } from './cloudtrail/parse.js';
import { CloudTrailWatcher } from './engine/cloudtrail-watcher.js';
import { decideRecords } from './engine/decide-records.js';
import { SqsTrailSource } from './trail/sqs-source.js';
import { sdkTrailApi, type TrailApi } from './trail/trail-api.js';
import type { CorrelationEngine } from './engine/correlation-engine.js';
import { DecisionPipeline } from './engine/pipeline.js';
import { FindingsSink } from './findings/findings-sink.js';
import { TelemetryIngest, type GatewayKey } from './ingest/telemetry-ingest.js';
import { createIngestServer } from './ingest/http-server.js';
import { GUARDDUTY_ARCHIVE_SINK, type GuardDutyProcessor } from './engine/guardduty-processor.js';
import { sdkGuardDutyApi, type GuardDutyApi } from './guardduty/guardduty-api.js';
import { buildCorrelationContext } from './correlation-context.js';
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../common/delivery/retry-policy.js';
import { OutboxWorker } from './delivery/outbox-worker.js';
import { WEBHOOK_SINK, WebhookOutboxSink, recordWebhookOutcome } from './findings/webhook-delivery.js';
import { FindingResolution, RESOLUTION_INTERVAL_MS } from './engine/finding-resolution.js';
import { defaultProductArn } from './securityhub/asff.js';
import { sdkSecurityHubApi, type SecurityHubApi } from './securityhub/securityhub-api.js';
import { SECURITY_HUB_SINK, SecurityHubExport } from './securityhub/securityhub-export.js';
import { Inventory } from './inventory/inventory.js';
import type { Ec2InventoryApi } from './inventory/ec2-api.js';

export interface DetectorDeps {
  logger: Logger;
  version: string;
  nodeVersion: string;
  registry?: Registry;
  now?: () => number;
  /** GuardDuty API (tests inject one bound to a loopback endpoint). */
  guarddutyApi?: GuardDutyApi | null;
  /** Security Hub API (default: the SDK, from findings.security_hub). */
  securityHubApi?: SecurityHubApi;
  /** Retry timing of the Security Hub export (default: the shipper's, 1 s doubling to 60 s, 5 min when unauthorized). */
  securityHubBackoff?: Partial<BackoffPolicy>;
  /** Retry timing of the findings webhook (default: the shipper's). */
  webhookBackoff?: Partial<BackoffPolicy>;
  /** How often findings are re-examined for resolution (default 30 s). */
  findingResolutionIntervalMs?: number;
  /** The EC2 calls of inventory.ec2 (default: the SDK). */
  ec2Api?: (endpoint: string | null) => Ec2InventoryApi;
  /** How often inventory files are checked for a change (default 5 s). */
  inventoryFileCheckMs?: number;
  /** The process's environment, for store.postgres (PGSSLMODE, PGHOST); none by default. */
  env?: Readonly<Record<string, string | undefined>>;
}

interface Runtime {
  config: DetectorConfig;
  gateways: Map<string, GatewayKey>;
  registry: CompiledRegistry;
  policy: CorrelationPolicy;
  token: Buffer | null;
}

async function buildRuntime(c: DetectorConfig): Promise<Runtime> {
  const { registry, policy } = await buildCorrelationContext(c);
  const gateways = new Map<string, GatewayKey>();
  for (const g of registry.gateways) {
    const conf = c.gateways.find((x) => x.id === g.id);
    if (conf)
      gateways.set(g.id, {
        id: g.id,
        secret: await readSecretFile(conf.secret_file, `the HMAC secret of gateway ${g.id}`),
        egressCidrs: g.cidrs,
        inspect: g.inspect,
      });
  }
  return {
    config: c,
    gateways,
    registry,
    policy,
    token: c.ingest.token_file ? await readSecretFile(c.ingest.token_file, 'the ingest bearer token') : null,
  };
}

/** What SIGHUP applies to a running detector; everything else waits for a restart (and the log says which keys). */
export const DETECTOR_HOT_KEYS: readonly ConfigPath<DetectorConfig>[] = [
  'gateways',
  'aws_ip_ranges',
  'correlation',
  'inventory',
  'store.retention',
  'guardduty.mode',
  'guardduty.region',
  'guardduty.detector_id',
  'guardduty.webhook_kept',
  'ingest',
  'log.level',
];

export class DetectorApp {
  readonly metrics: DetectorMetrics;
  readonly registry: Registry;
  private rt!: Runtime;
  private store: DetectorStore | null = null;
  private engine: CorrelationEngine | null = null;
  private sink: FindingsSink | null = null;
  private guardduty: GuardDutyProcessor | null = null;
  private api: GuardDutyApi | null = null;
  private securityHubApi: SecurityHubApi | null = null;
  private outbox: OutboxWorker | null = null;
  private webhookOutbox: OutboxWorker | null = null;
  /** The outbox workers' makers (findings.security_hub, findings.webhook): workers run while leading. */
  private newSecurityHubWorker: (() => OutboxWorker) | null = null;
  private newWebhookWorker: (() => OutboxWorker) | null = null;
  private election: LeaderElection | null = null;
  /** The periodic tasks of the leader (stopped when it loses the lock). */
  private leaderTimers: NodeJS.Timeout[] = [];
  private webhookSink: WebhookOutboxSink | null = null;
  private resolution: FindingResolution | null = null;
  private inventoryState: Inventory | null = null;
  private watcher: CloudTrailWatcher | null = null;
  private trailApi: TrailApi | null = null;
  private sqsTrail: SqsTrailSource | null = null;
  private ingest: http.Server | null = null;
  private readonly admin: http.Server;
  private timers: NodeJS.Timeout[] = [];
  /** Periodic tasks running now (stop waits for them before it closes the store). */
  private readonly periodic = new Set<Promise<void>>();
  private listening = false;
  private readonly now: () => number;

  constructor(
    private config: DetectorConfig,
    private readonly deps: DetectorDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.registry = deps.registry ?? createRegistry();
    this.metrics = createDetectorMetrics(this.registry, { version: deps.version, nodeVersion: deps.nodeVersion });
    this.admin = createAdminServer({
      registry: this.registry,
      readiness: () => ({
        ready: this.listening,
        checks: { ingest_listening: this.ingest?.listening ?? false, store_open: this.store !== null, config_loaded: true },
      }),
      routes: { '/status': () => this.status() },
    });
  }

  async status(): Promise<Record<string, unknown>> {
    const store = this.store;
    const gateways = [];
    for (const g of this.config.gateways) {
      const last = (await store?.lastHeartbeatMs(g.id, this.heartbeatHorizon())) ?? null;
      gateways.push({ id: g.id, last_heartbeat: last === null ? null : isoFromMs(last) });
    }
    return {
      version: this.deps.version,
      gateways,
      pending_decisions: (await store?.pendingCount()) ?? 0,
      guardduty_mode: this.config.guardduty.mode,
      leader: this.election?.isLeader ?? false,
      ...(this.config.findings.security_hub && store ? { security_hub_outbox: await store.deliveryBacklog(SECURITY_HUB_SINK) } : {}),
      ...(this.config.findings.webhook && store ? { webhook_outbox: await store.deliveryBacklog(WEBHOOK_SINK) } : {}),
      ...(this.config.guardduty.mode === 'archive' && store
        ? { guardduty_archive_outbox: await store.deliveryBacklog(GUARDDUTY_ARCHIVE_SINK) }
        : {}),
    };
  }

  /** The store, for tests and the `decisions` command. */
  get db(): DetectorStore {
    if (!this.store) throw new Error('detector not started');
    return this.store;
  }

  get correlation(): CorrelationEngine {
    if (!this.engine) throw new Error('detector not started');
    return this.engine;
  }

  /** The instance inventory (files and EC2 polling). */
  get inventory(): Inventory {
    if (!this.inventoryState) throw new Error('detector not started');
    return this.inventoryState;
  }

  get guarddutyProcessor(): GuardDutyProcessor {
    if (!this.guardduty) throw new Error('detector not started');
    return this.guardduty;
  }

  async start(): Promise<{ ingest: AddressInfo; admin: AddressInfo }> {
    const c = this.config;
    const { logger, metrics } = { logger: this.deps.logger, metrics: this.metrics };
    this.rt = await buildRuntime(c);
    const inventory = new Inventory(c.inventory, {
      metrics,
      logger,
      now: this.now,
      retentionMs: () => this.rt.config.store.retention,
      ...(this.deps.ec2Api ? { ec2Api: this.deps.ec2Api } : {}),
      ...(this.deps.inventoryFileCheckMs ? { fileCheckMs: this.deps.inventoryFileCheckMs } : {}),
    });
    await inventory.load();
    this.inventoryState = inventory;
    const store = (this.store = await openStore(c.store, {
      createDirectory: true,
      postgres: {
        env: this.deps.env ?? {},
        onQuery: (kind, ms) => metrics.postgresQueryDuration.observe({ statement: kind }, ms / 1000),
        onIdleError: (err) =>
          logger.warn({ event: 'store_connection_lost', err: err.message }, 'an idle PostgreSQL connection failed; the pool replaces it'),
      },
    }));
    if (store instanceof PostgresStore) metrics.poolStats.read = () => store.poolStats();
    const sink = (this.sink = new FindingsSink({ file: c.findings.file, webhook: c.findings.webhook, metrics, logger, now: this.now }));
    const securityHubChanged = this.startSecurityHub(c, store);
    const webhookChanged = this.startWebhook(c, store);
    const findingChanged = async (tx: StoreTx, findingId: string): Promise<void> => {
      await securityHubChanged(tx, findingId);
      await webhookChanged(tx, findingId);
    };
    const gd = c.guardduty;
    this.api =
      this.deps.guarddutyApi !== undefined
        ? this.deps.guarddutyApi
        : sdkGuardDutyApi({ endpoint: gd.endpoint, extraCa: gd.ca_file ? readFileSync(gd.ca_file, 'utf8') : null });
    const pipeline = new DecisionPipeline({
      store,
      registry: () => this.rt.registry,
      policy: () => this.rt.policy,
      inventory: () => inventory.view(),
      graceMs: () => this.rt.config.correlation.grace,
      sink,
      metrics,
      logger,
      now: this.now,
      findingChanged,
      guardduty: {
        mode: () => this.rt.config.guardduty.mode,
        target: () => ({ region: this.rt.config.guardduty.region, detectorId: this.rt.config.guardduty.detector_id }),
        webhookKept: () => this.rt.config.guardduty.webhook_kept,
        api: this.api,
      },
    });
    this.engine = pipeline.cloudtrail;
    this.guardduty = pipeline.guardduty;
    this.resolution = new FindingResolution({
      store,
      registry: () => this.rt.registry,
      policy: () => this.rt.policy,
      inventory: () => inventory.view(),
      retentionMs: () => this.rt.config.store.retention,
      sink,
      findingChanged,
      metrics,
      logger,
      now: this.now,
    });
    const telemetry = new TelemetryIngest({
      gateways: () => this.rt.gateways,
      store,
      metrics,
      logger,
      now: this.now,
      clockSkewMs: () => this.rt.config.ingest.clock_skew,
      maxObservationSpanMs: () => this.rt.config.ingest.max_observation_span,
      // A gzip body inflates to no more than an identity body may be: JSON parsed onto the heap
      // costs many times its text, and a signed body that inflates 1000× must not cost more than
      // a plain one. The agent splits a batch refused as too large.
      maxDecodedBytes: () => this.rt.config.ingest.max_body_bytes,
    });
    this.ingest = createIngestServer({
      routes: {
        telemetry,
        cloudtrail: async (value) => {
          const counts: Record<string, number> = { records: 0 };
          const records = unwrapEventBridge(value);
          const outcomes = this.engine ? await this.engine.processBatch(records, 'pushed') : records.map(() => 'invalid');
          for (const o of outcomes) {
            counts.records = (counts.records ?? 0) + 1;
            counts[o] = (counts[o] ?? 0) + 1;
          }
          return counts;
        },
        guardduty: async (values: unknown[]) => {
          const counts: Record<string, number> = { findings: 0 };
          for (const r of await this.guardduty!.processPushed(values)) {
            counts.findings = (counts.findings ?? 0) + 1;
            const k = r.kind === 'decided' ? r.decision.decision : r.kind;
            counts[k] = (counts[k] ?? 0) + 1;
          }
          return counts;
        },
      },
      limits: () => {
        const i = this.rt.config.ingest;
        return {
          maxBodyBytes: i.max_body_bytes,
          maxConcurrent: i.max_concurrent,
          maxConcurrentPerGateway: i.max_concurrent_per_gateway,
          maxConcurrentEvents: i.max_concurrent_events,
          bodyTimeoutMs: i.body_timeout,
        };
      },
      token: () => this.rt.token,
      tls: c.tls.cert && c.tls.key ? { cert: readFileSync(c.tls.cert, 'utf8'), key: readFileSync(c.tls.key, 'utf8') } : null,
      metrics,
      logger,
    });
    const ingestAddr = await listenAt('listen', this.ingest, c.listen.host, c.listen.port);
    const adminAddr = await listenAt('admin.listen', this.admin, c.admin.listen.host, c.admin.listen.port);
    if (c.cloudtrail.watch_dir) {
      this.watcher = new CloudTrailWatcher({
        dir: c.cloudtrail.watch_dir,
        intervalMs: c.cloudtrail.poll_interval,
        maxFileBytes: c.cloudtrail.max_file_bytes,
        store,
        engine: this.engine,
        metrics,
        logger,
        now: this.now,
      });
      this.watcher.start();
    }
    if (c.cloudtrail.sqs) {
      const q = c.cloudtrail.sqs;
      const engine = this.engine;
      this.trailApi = sdkTrailApi({ region: q.region, roleArn: q.role_arn });
      this.sqsTrail = new SqsTrailSource({
        queueUrl: q.queue_url,
        maxMessages: q.max_messages,
        waitSeconds: q.wait_time / 1000,
        visibilitySeconds: q.visibility_timeout / 1000,
        concurrency: q.concurrency,
        maxFileBytes: c.cloudtrail.max_file_bytes,
        api: this.trailApi,
        decide: async (records) => {
          const r = await decideRecords(engine, records, 'trail');
          return { records: r.records, rejected: r.invalid + r.failed };
        },
        metrics,
        logger,
        now: this.now,
      });
      this.sqsTrail.start();
    }
    inventory.start();
    this.every(1_000, () => this.engine?.tick());
    this.every(5_000, () => this.refreshGauges());
    const pg = c.store.postgres;
    this.election = new LeaderElection({
      lock:
        store instanceof PostgresStore && pg
          ? store.leaderLock({ checkTimeoutMs: Math.min(pg.leader_check, 10_000), onOutbox: (sink) => this.wakeOutbox(sink) })
          : ALWAYS_HELD,
      intervalMs: pg?.leader_check ?? 60_000,
      onChange: (leader, reason) => (leader ? this.lead(reason) : this.follow(reason)),
      onError: (reason) => logger.warn({ event: 'leader_lock_failed', err: reason }, 'could not try or check the leader lock'),
    });
    metrics.leader.set(0);
    await this.election.start();
    await this.refreshGauges();
    this.markReload(true);
    this.listening = true;
    logger.info(
      {
        event: 'started',
        listen: c.listen.text,
        tls: c.tls.cert !== null,
        admin_listen: c.admin.listen.text,
        store: c.store.postgres ? 'postgres' : c.store.path,
        retention: formatDuration(c.store.retention),
        gateways: c.gateways.map((g) => `${g.id}=${g.egress_cidrs.join(',')}${g.inspect ? '' : ' (tunnel-only)'}`),
        cloudtrail_watch_dir: c.cloudtrail.watch_dir,
        cloudtrail_sqs: c.cloudtrail.sqs?.queue_url ?? null,
        aws_ip_ranges: c.aws_ip_ranges,
        inventory: {
          files: c.inventory.files,
          ec2: c.inventory.ec2 ? { regions: c.inventory.ec2.regions, accounts_through_roles: c.inventory.ec2.role_arns.length } : null,
          translated_networks: c.inventory.translated_networks,
          instances: inventory.size.current,
        },
        correlation: {
          window: formatDuration(c.correlation.window),
          grace: formatDuration(c.correlation.grace),
          heartbeat_stale: formatDuration(c.correlation.heartbeat_stale),
          endpoint_attestation: c.correlation.endpoint_attestation,
        },
        findings: {
          file: c.findings.file,
          webhook: c.findings.webhook,
          security_hub: c.findings.security_hub
            ? { region: c.findings.security_hub.region, account_id: c.findings.security_hub.account_id, product_arn: this.productArn(c) }
            : null,
        },
        guardduty: { mode: gd.mode, polling: gd.poll_interval !== null },
        leader: this.election.isLeader,
        ingest_port: ingestAddr.port,
        admin_port: adminAddr.port,
      },
      'egress-witness detector started',
    );
    this.warnIfUnauthenticated(c);
    return { ingest: ingestAddr, admin: adminAddr };
  }

  /** ingest.allow_unauthenticated is a choice to be reminded of: at every start, and on a reload that keeps it. */
  private warnIfUnauthenticated(c: DetectorConfig): void {
    if (!unauthenticatedEventRoutes(c)) return;
    this.deps.logger.warn(
      { event: 'ingest_unauthenticated', listen: c.listen.text },
      `/v1/cloudtrail and /v1/guardduty on ${c.listen.text} accept events from anyone who reaches them (ingest.allow_unauthenticated: true); set ingest.token_file`,
    );
  }

  private productArn(c: DetectorConfig): string | null {
    const sh = c.findings.security_hub;
    return sh ? (sh.product_arn ?? defaultProductArn(sh.region, sh.account_id)) : null;
  }

  /**
   * With findings.security_hub: the export's outbox worker, and the hook that queues a changed finding
   * in the deciding transaction (the worker only runs after it committed). Without: a no-op hook.
   */
  private startSecurityHub(c: DetectorConfig, store: DetectorStore): (tx: StoreTx, findingId: string) => Promise<void> {
    const sh = c.findings.security_hub;
    if (!sh) return () => Promise.resolve();
    const { logger, metrics } = { logger: this.deps.logger, metrics: this.metrics };
    const api = (this.securityHubApi =
      this.deps.securityHubApi ??
      sdkSecurityHubApi({ region: sh.region, endpoint: sh.endpoint, extraCa: sh.ca_file ? readFileSync(sh.ca_file, 'utf8') : null }));
    this.newSecurityHubWorker = () =>
      new OutboxWorker({
        store,
        sink: new SecurityHubExport({
          store,
          api,
          target: { region: sh.region, accountId: sh.account_id, productArn: this.productArn(c)! },
          metrics,
          logger,
          now: this.now,
        }),
        policy: { ...DEFAULT_BACKOFF, ...this.deps.securityHubBackoff },
        logger,
        now: this.now,
        afterCycle: () =>
          void this.refreshOutboxGauges().catch((err: unknown) =>
            this.deps.logger.error({ event: 'timer_failed', err }, 'could not refresh the outbox gauges'),
          ),
      });
    return async (tx, findingId) => {
      await tx.enqueueDelivery(SECURITY_HUB_SINK, findingId, this.now());
      // Woken once the row is committed (its reads go through another connection); on a replica that
      // is not the leader there is no worker here: the leader's is woken through the database.
      tx.afterCommit(() => this.outbox?.wake());
    };
  }

  /**
   * With findings.webhook: its outbox worker, and the hook that queues a changed finding in the
   * deciding transaction (delivered after the commit, in the finding's state then).
   */
  private startWebhook(c: DetectorConfig, store: DetectorStore): (tx: StoreTx, findingId: string) => Promise<void> {
    const url = c.findings.webhook;
    if (!url) return () => Promise.resolve();
    const { logger, metrics } = { logger: this.deps.logger, metrics: this.metrics };
    const sink = (this.webhookSink = new WebhookOutboxSink({ url, store, metrics, logger, now: this.now }));
    this.newWebhookWorker = () =>
      new OutboxWorker({
        store,
        sink,
        policy: { ...DEFAULT_BACKOFF, ...this.deps.webhookBackoff },
        logger,
        now: this.now,
        onSettled: (s, outcome) => recordWebhookOutcome(metrics, logger, s, outcome, s.item.itemId, this.now),
      });
    return async (tx, findingId) => {
      await tx.enqueueDelivery(WEBHOOK_SINK, findingId, this.now());
      tx.afterCommit(() => this.webhookOutbox?.wake());
    };
  }

  private async refreshOutboxGauges(): Promise<void> {
    const store = this.store;
    if (!store) return;
    const c = this.config;
    const sinks = [
      ...(c.findings.security_hub ? [SECURITY_HUB_SINK] : []),
      ...(c.findings.webhook ? [WEBHOOK_SINK] : []),
      ...(this.api !== null && c.guardduty.mode === 'archive' ? [GUARDDUTY_ARCHIVE_SINK] : []),
    ];
    for (const sink of sinks) {
      const b = await store.deliveryBacklog(sink);
      this.metrics.outboxItems.set({ sink, state: 'pending' }, b.pending);
      this.metrics.outboxItems.set({ sink, state: 'failed' }, b.failed);
      if (sink !== SECURITY_HUB_SINK) continue;
      this.metrics.securityhubQueued.set({ state: 'pending' }, b.pending);
      this.metrics.securityhubQueued.set({ state: 'failed' }, b.failed);
      this.metrics.securityhubOldestPending.set(b.oldestPendingMs === null ? 0 : Math.max(0, (this.now() - b.oldestPendingMs) / 1000));
    }
  }

  /** A row was queued in the outbox by another detector (PostgreSQL NOTIFY): the leader delivers it now. */
  private wakeOutbox(sink: string): void {
    if (sink === SECURITY_HUB_SINK) this.outbox?.wake();
    else if (sink === WEBHOOK_SINK) this.webhookOutbox?.wake();
    else if (sink === GUARDDUTY_ARCHIVE_SINK) this.guardduty?.wake();
  }

  /** Leadership gained: the leader's work starts (the outboxes deliver what is queued, by any detector). */
  private lead(reason: string): void {
    const gd = this.config.guardduty;
    this.outbox = this.newSecurityHubWorker?.() ?? null;
    this.outbox?.start();
    this.webhookOutbox = this.newWebhookWorker?.() ?? null;
    this.webhookOutbox?.start();
    this.guardduty?.start();
    const timers = this.leaderTimers;
    this.every(this.deps.findingResolutionIntervalMs ?? RESOLUTION_INTERVAL_MS, () => this.resolution?.sweep(), timers);
    this.every(60_000, () => this.prune(), timers);
    if (gd.poll_interval !== null) {
      void this.guardduty?.poll();
      this.every(gd.poll_interval, () => void this.guardduty?.poll(), timers);
    }
    this.metrics.leader.set(1);
    if (this.config.store.postgres)
      this.deps.logger.info(
        { event: 'leader_gained', reason },
        'this detector leads: GuardDuty polling and archiving, pruning, finding resolution and outbox deliveries run here',
      );
  }

  /** Leadership lost (or stopping): the leader's work stops at once; what is queued stays for the next leader. */
  private async follow(reason: string): Promise<void> {
    for (const t of this.leaderTimers) clearInterval(t);
    this.leaderTimers = [];
    this.metrics.leader.set(0);
    if (this.config.store.postgres && reason !== 'stopping')
      this.deps.logger.warn(
        { event: 'leader_lost', reason },
        `this detector no longer leads (${reason}): its leader work stopped; another detector takes over`,
      );
    const outbox = this.outbox;
    const webhook = this.webhookOutbox;
    this.outbox = null;
    this.webhookOutbox = null;
    await Promise.all([outbox?.stop(), webhook?.stop(), this.guardduty?.stop()]);
  }

  /** Runs `fn` every `ms`; a run still going when the next is due is not overlapped (the next is skipped). */
  private every(ms: number, fn: () => unknown, timers: NodeJS.Timeout[] = this.timers): void {
    let running: Promise<void> | null = null;
    const t = setInterval(() => {
      if (running) return;
      const run = Promise.resolve()
        .then(fn)
        .then(
          () => undefined,
          (err: unknown) => this.deps.logger.error({ event: 'timer_failed', err }, 'periodic task failed'),
        )
        .finally(() => {
          running = null;
          this.periodic.delete(run);
        });
      running = run;
      this.periodic.add(run);
    }, ms);
    t.unref();
    timers.push(t);
  }

  async refreshGauges(): Promise<void> {
    const store = this.store;
    if (!store) return;
    const now = this.now();
    for (const g of this.config.gateways) {
      const last = await store.lastHeartbeatMs(g.id, this.heartbeatHorizon());
      if (last !== null) this.metrics.gatewayHeartbeatAge.set({ gateway: g.id }, Math.max(0, (now - last) / 1000));
    }
    this.metrics.storeBytes.set(await store.sizeBytes());
    this.metrics.pendingDecisions.set(await store.pendingCount());
    await this.refreshOutboxGauges();
  }

  /** Heartbeats later than this are not believed (ingest rejects them; a store from an older version may hold some). */
  private heartbeatHorizon(): number {
    return this.now() + this.rt.config.ingest.clock_skew;
  }

  private async prune(): Promise<void> {
    if (!this.store) return;
    const r = await this.store.prune(this.now() - this.rt.config.store.retention);
    if (r.observations + r.heartbeats + r.events > 0)
      this.deps.logger.info({ event: 'pruned', ...r }, 'pruned evidence older than store.retention');
  }

  private markReload(ok: boolean): void {
    this.metrics.configReloadSuccessful.set(ok ? 1 : 0);
    if (ok) this.metrics.configReloadTimestamp.set(Math.floor(this.now() / 1000));
  }

  async reload(result: { ok: true; value: DetectorConfig } | { ok: false; problems: ConfigProblem[] }): Promise<boolean> {
    const log = this.deps.logger;
    if (!result.ok) {
      this.markReload(false);
      log.error(
        { event: 'reload_failed', problems: result.problems.map(formatProblem) },
        'configuration reload failed; keeping the running configuration',
      );
      return false;
    }
    try {
      const { effective, needsRestart } = applyHotReload(this.config, result.value, DETECTOR_HOT_KEYS);
      // The file was checked with its own listen address; the running one stays until a restart.
      if (unauthenticatedEventRoutes(effective) && !effective.ingest.allow_unauthenticated) {
        return await this.reload({
          ok: false,
          problems: [
            {
              path: 'ingest.token_file',
              message: `the running listener ${effective.listen.text} is reachable from other hosts: keep ingest.token_file until the detector restarts on loopback`,
            },
          ],
        });
      }
      this.rt = await buildRuntime(effective);
      this.config = effective;
      await this.inventoryState?.reconfigure(effective.inventory);
      log.level = effective.log.level;
      this.markReload(true);
      this.warnIfUnauthenticated(effective);
      if (needsRestart.length > 0)
        log.warn({ event: 'reload_partial', keys_needing_restart: needsRestart }, restartNeededMessage(needsRestart));
      else log.info({ event: 'reloaded', gateways: result.value.gateways.map((g) => g.id) }, 'configuration reloaded');
      return true;
    } catch (err) {
      this.markReload(false);
      log.error({ event: 'reload_failed', err }, 'configuration reload failed; keeping the running configuration');
      return false;
    }
  }

  async stop(): Promise<void> {
    this.listening = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    // A leader steps down first: its lock goes, and another detector can take over while this one drains.
    await this.election?.stop();
    this.election = null;
    // A periodic task still running finishes before the store closes.
    await Promise.all(this.periodic);
    if (this.ingest) await closeServer(this.ingest);
    await this.inventoryState?.stop();
    await this.watcher?.stop();
    await this.sqsTrail?.stop();
    this.trailApi?.close();
    await this.guardduty?.stop();
    this.api?.close();
    await this.outbox?.stop();
    this.outbox = null;
    await this.webhookOutbox?.stop();
    this.webhookOutbox = null;
    await this.webhookSink?.close();
    this.webhookSink = null;
    this.securityHubApi?.close();
    await this.sink?.close();
    await this.store?.close();
    this.store = null;
    await closeServer(this.admin);
    this.deps.logger.info({ event: 'stopped' }, 'egress-witness detector stopped');
  }
}

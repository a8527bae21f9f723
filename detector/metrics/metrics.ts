/**
 * Every metric the detector exports, on an injected registry. Labels are
 * bounded: outcomes, rules, dispositions, and gateway ids (a configured set).
 */
import { createDaemonMetrics, type DaemonMetrics } from '../../common/metrics/daemon-metrics.js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** A PostgreSQL pool's connections, read when the metrics are collected. */
export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

export interface DetectorMetrics extends DaemonMetrics {
  readonly registry: Registry;
  ingestBatches: Counter<'outcome'>;
  ingestResponses: Counter<'route' | 'status'>;
  ingestRecords: Counter<'type'>;
  rejectedRecords: Counter<'reason'>;
  declaredCidrsIgnored: Counter<'gateway'>;
  cloudtrailRecords: Counter<'outcome'>;
  cloudtrailFiles: Counter<'outcome'>;
  cloudtrailConflicts: Counter<'resolution'>;
  truncatedRecords: Counter<'input'>;
  cloudtrailNewestEvent: Gauge;
  sqsMessages: Counter<'outcome'>;
  sqsReceiveErrors: Counter;
  sqsOldestMessageAge: Gauge;
  s3Objects: Counter<'outcome'>;
  s3Bytes: Counter;
  s3ObjectsInFlight: Gauge;
  decisions: Counter<'disposition' | 'rule'>;
  findingsRaised: Counter<'rule'>;
  pendingDecisions: Gauge;
  gatewayHeartbeatAge: Gauge<'gateway'>;
  storeBytes: Gauge;
  webhookDeliveries: Counter<'outcome'>;
  guarddutyFindings: Counter<'decision' | 'reason'>;
  guarddutyArchiveCalls: Counter<'outcome'>;
  guarddutyReadBacks: Counter<'outcome'>;
  guarddutyPolls: Counter<'outcome'>;
  findingsResolved: Counter<'rule'>;
  securityhubImports: Counter<'outcome'>;
  securityhubFindings: Counter<'outcome'>;
  securityhubQueued: Gauge<'state'>;
  securityhubOldestPending: Gauge;
  inventoryInstances: Gauge;
  inventoryReads: Counter<'source' | 'outcome'>;
  inventoryRejected: Counter<'source'>;
  leader: Gauge;
  outboxItems: Gauge<'sink' | 'state'>;
  postgresPoolConnections: Gauge<'state'>;
  postgresPoolWaiting: Gauge;
  postgresQueryDuration: Histogram<'statement'>;
  /** Where the pool gauges read from at collect time (set by the daemon when its store is PostgreSQL). */
  poolStats: { read: (() => PoolStats) | null };
}

export function createDetectorMetrics(registry: Registry, build: { version: string; nodeVersion: string }): DetectorMetrics {
  const r = [registry];
  const poolStats: DetectorMetrics['poolStats'] = { read: null };
  const m: DetectorMetrics = {
    registry,
    poolStats,
    leader: new Gauge({
      name: 'egress_witness_detector_leader',
      help: 'Whether this detector leads the detectors that share its store (1) or not (0): GuardDuty polling and archiving, retention pruning, finding resolution and the outboxes run on the leader.',
      registers: r,
    }),
    outboxItems: new Gauge({
      name: 'egress_witness_detector_outbox_items',
      help: "Rows in the store's outbox, by sink (securityhub, webhook, guardduty-archive) and state (pending: to be delivered; failed: refused, waiting for a change).",
      labelNames: ['sink', 'state'],
      registers: r,
    }),
    postgresPoolConnections: new Gauge({
      name: 'egress_witness_detector_postgres_pool_connections',
      help: "Connections of the PostgreSQL store's pool, by state (in_use, idle); 0 with SQLite.",
      labelNames: ['state'],
      registers: r,
      collect() {
        const s = poolStats.read?.();
        this.set({ state: 'in_use' }, s ? s.total - s.idle : 0);
        this.set({ state: 'idle' }, s ? s.idle : 0);
      },
    }),
    postgresPoolWaiting: new Gauge({
      name: 'egress_witness_detector_postgres_pool_waiting_requests',
      help: "Operations waiting for a connection of the PostgreSQL store's pool (all store.postgres.pool_size in use); 0 with SQLite.",
      registers: r,
      collect() {
        this.set(poolStats.read?.().waiting ?? 0);
      },
    }),
    postgresQueryDuration: new Histogram({
      name: 'egress_witness_detector_postgres_query_duration_seconds',
      help: 'PostgreSQL store statements, from sending to the answer, by statement kind (a fixed set: ingest_batch, evidence_keys, decision_put, outbox_due, …).',
      labelNames: ['statement'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: r,
    }),
    ...createDaemonMetrics(registry, build),
    inventoryInstances: new Gauge({
      name: 'egress_witness_detector_inventory_instances',
      help: 'Instances holding an address now by the inventory (files and EC2 polling); their address history is kept besides.',
      registers: r,
    }),
    inventoryReads: new Counter({
      name: 'egress_witness_detector_inventory_reads_total',
      help: 'Inventory reads, by source (file, ec2: one region of one account) and outcome (ok, failed: the last good inventory of that source is kept).',
      labelNames: ['source', 'outcome'],
      registers: r,
    }),
    inventoryRejected: new Counter({
      name: 'egress_witness_detector_inventory_rejected_entries_total',
      help: 'Inventory entries left out (no instance id, an address that is not one), by source (file, ec2).',
      labelNames: ['source'],
      registers: r,
    }),
    ingestBatches: new Counter({
      name: 'egress_witness_detector_ingested_batches_total',
      help: 'Telemetry batches received, by outcome (stored, duplicate, invalid, unauthorized, too_large, overloaded, store_error).',
      labelNames: ['outcome'],
      registers: r,
    }),
    ingestResponses: new Counter({
      name: 'egress_witness_detector_ingest_responses_total',
      help: 'Answers of the ingest listener, by route (telemetry, cloudtrail, guardduty, healthz, other) and HTTP status.',
      labelNames: ['route', 'status'],
      registers: r,
    }),
    ingestRecords: new Counter({
      name: 'egress_witness_detector_ingested_records_total',
      help: 'Telemetry records stored, by type.',
      labelNames: ['type'],
      registers: r,
    }),
    rejectedRecords: new Counter({
      name: 'egress_witness_detector_rejected_records_total',
      help: 'Telemetry records rejected one by one (the rest of their batch stored), by reason (first_after_last, in_future, span_too_long).',
      labelNames: ['reason'],
      registers: r,
    }),
    declaredCidrsIgnored: new Counter({
      name: 'egress_witness_detector_declared_cidrs_ignored_total',
      help: "Batches declaring egress CIDRs outside the gateway's configured ones (ignored).",
      labelNames: ['gateway'],
      registers: r,
    }),
    cloudtrailRecords: new Counter({
      name: 'egress_witness_detector_cloudtrail_records_total',
      help: 'CloudTrail records read, by outcome (decided, not_instance_credential, invalid, duplicate, conflict, failed).',
      labelNames: ['outcome'],
      registers: r,
    }),
    cloudtrailConflicts: new Counter({
      name: 'egress_witness_detector_cloudtrail_conflicts_total',
      help: 'Copies of one CloudTrail event ID that disagree, by resolution (superseded: a copy from the trail replaced a pushed one and was decided; rejected: the kept copy stands).',
      labelNames: ['resolution'],
      registers: r,
    }),
    cloudtrailFiles: new Counter({
      name: 'egress_witness_detector_cloudtrail_files_total',
      help: 'CloudTrail log files, by outcome (processed, failed).',
      labelNames: ['outcome'],
      registers: r,
    }),
    truncatedRecords: new Counter({
      name: 'egress_witness_detector_truncated_records_total',
      help: 'CloudTrail records and GuardDuty findings nested too deep, kept with their deep parts cut off, by input.',
      labelNames: ['input'],
      registers: r,
    }),
    cloudtrailNewestEvent: new Gauge({
      name: 'egress_witness_detector_cloudtrail_newest_event_timestamp_seconds',
      help: 'eventTime of the newest valid CloudTrail record read, in Unix seconds (0: none yet); time() minus it is the CloudTrail lag.',
      registers: r,
    }),
    sqsMessages: new Counter({
      name: 'egress_witness_detector_cloudtrail_sqs_messages_total',
      help: 'SQS messages of cloudtrail.sqs, by outcome (received; deleted: every object decided; test: s3:TestEvent, deleted; invalid: not a notification, left for the redrive policy; failed: an object could not be read or decided, left to come back).',
      labelNames: ['outcome'],
      registers: r,
    }),
    sqsReceiveErrors: new Counter({
      name: 'egress_witness_detector_cloudtrail_sqs_receive_errors_total',
      help: 'ReceiveMessage calls of cloudtrail.sqs that failed (retried with backoff).',
      registers: r,
    }),
    sqsOldestMessageAge: new Gauge({
      name: 'egress_witness_detector_cloudtrail_sqs_oldest_message_age_seconds',
      help: 'Age (now - SentTimestamp) of the oldest message in the last non-empty receive: how far the detector is behind the bucket.',
      registers: r,
    }),
    s3Objects: new Counter({
      name: 'egress_witness_detector_cloudtrail_s3_objects_total',
      help: 'CloudTrail objects named by cloudtrail.sqs notifications, by outcome (processed, skipped: digest or not a log file, poison: unreadable content, failed: transient).',
      labelNames: ['outcome'],
      registers: r,
    }),
    s3Bytes: new Counter({
      name: 'egress_witness_detector_cloudtrail_s3_bytes_total',
      help: 'Bytes of CloudTrail log text read from S3 (after gunzip).',
      registers: r,
    }),
    s3ObjectsInFlight: new Gauge({
      name: 'egress_witness_detector_cloudtrail_s3_objects_in_flight',
      help: 'CloudTrail objects being fetched and decided now (at most cloudtrail.sqs.concurrency).',
      registers: r,
    }),
    decisions: new Counter({
      name: 'egress_witness_detector_decisions_total',
      help: 'Final decisions on instance-credential events, by disposition and rule.',
      labelNames: ['disposition', 'rule'],
      registers: r,
    }),
    findingsRaised: new Counter({
      name: 'egress_witness_detector_findings_total',
      help: 'Findings raised (each occurrence), by rule.',
      labelNames: ['rule'],
      registers: r,
    }),
    pendingDecisions: new Gauge({
      name: 'egress_witness_detector_pending_decisions',
      help: 'Findings waiting for the grace period (late telemetry) before they are final.',
      registers: r,
    }),
    gatewayHeartbeatAge: new Gauge({
      name: 'egress_witness_detector_gateway_last_heartbeat_age_seconds',
      help: 'Seconds since the last heartbeat from each configured gateway (absent: never heard).',
      labelNames: ['gateway'],
      registers: r,
    }),
    storeBytes: new Gauge({
      name: 'egress_witness_detector_store_bytes',
      help: 'Size of the store on disk (database plus WAL).',
      registers: r,
    }),
    webhookDeliveries: new Counter({
      name: 'egress_witness_detector_webhook_deliveries_total',
      help: 'Findings webhook deliveries, by outcome.',
      labelNames: ['outcome'],
      registers: r,
    }),
    guarddutyFindings: new Counter({
      name: 'egress_witness_detector_guardduty_findings_total',
      help: 'GuardDuty findings decided, by decision and reason.',
      labelNames: ['decision', 'reason'],
      registers: r,
    }),
    guarddutyArchiveCalls: new Counter({
      name: 'egress_witness_detector_guardduty_archive_calls_total',
      help: 'ArchiveFindings calls, by outcome (success, failure, not_configured, withdrawn: not made because the finding read back no longer qualifies).',
      labelNames: ['outcome'],
      registers: r,
    }),
    guarddutyReadBacks: new Counter({
      name: 'egress_witness_detector_guardduty_read_backs_total',
      help: 'GuardDuty findings read back with GetFindings from the configured detector (pushed findings, and before each archive), by outcome (confirmed, not_found, failed, not_configured).',
      labelNames: ['outcome'],
      registers: r,
    }),
    guarddutyPolls: new Counter({
      name: 'egress_witness_detector_guardduty_polls_total',
      help: 'GuardDuty polls (ListFindings + GetFindings), by outcome.',
      labelNames: ['outcome'],
      registers: r,
    }),
    findingsResolved: new Counter({
      name: 'egress_witness_detector_findings_resolved_total',
      help: 'Findings resolved by a later decision (late telemetry attests every occurrence), by the rule that raised them.',
      labelNames: ['rule'],
      registers: r,
    }),
    securityhubImports: new Counter({
      name: 'egress_witness_detector_securityhub_imports_total',
      help: 'BatchImportFindings calls, by outcome (success, throttled, unauthorized, rejected, failure, invalid_response).',
      labelNames: ['outcome'],
      registers: r,
    }),
    securityhubFindings: new Counter({
      name: 'egress_witness_detector_securityhub_findings_total',
      help: 'Finding updates sent to Security Hub, by outcome (imported, retried, failed: refused for good).',
      labelNames: ['outcome'],
      registers: r,
    }),
    securityhubQueued: new Gauge({
      name: 'egress_witness_detector_securityhub_queued_findings',
      help: 'Finding updates in the Security Hub outbox, by state (pending: to be sent; failed: refused, waiting for a change).',
      labelNames: ['state'],
      registers: r,
    }),
    securityhubOldestPending: new Gauge({
      name: 'egress_witness_detector_securityhub_oldest_pending_seconds',
      help: 'Age of the oldest finding update not yet imported into Security Hub (0: none).',
      registers: r,
    }),
  };
  for (const state of ['pending', 'failed']) m.securityhubQueued.set({ state }, 0);
  return m;
}

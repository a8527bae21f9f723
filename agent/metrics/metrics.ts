/**
 * Every metric the agent exports, defined in one place on an injected
 * registry. Labels are bounded sets — never a host, an address or a key.
 * Names follow Prometheus conventions (docs/metrics.md lists them all).
 */
import { createDaemonMetrics, type DaemonMetrics } from '../../common/metrics/daemon-metrics.js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Services that get their own label value; everything else is `other`. */
export const SERVICE_LABELS = new Set([
  'sts',
  'iam',
  'ec2',
  's3',
  's3-control',
  's3express',
  'dynamodb',
  'kms',
  'ssm',
  'ssmmessages',
  'ec2messages',
  'secretsmanager',
  'logs',
  'monitoring',
  'sqs',
  'sns',
  'lambda',
  'ecr',
  'api.ecr',
  'ecs',
  'eks',
  'rds',
  'cloudformation',
  'elasticloadbalancing',
  'autoscaling',
  'events',
  'kinesis',
  'firehose',
  'athena',
  'glue',
  'route53',
  'organizations',
  'sso',
  'portal.sso',
  'xray',
  'cloudtrail',
  'config',
  'guardduty',
]);

export function serviceLabel(service: string | null | undefined): string {
  if (!service) return 'none';
  return SERVICE_LABELS.has(service) ? service : 'other';
}

export interface AgentMetrics extends DaemonMetrics {
  readonly registry: Registry;
  proxyRequests: Counter<'kind' | 'outcome'>;
  tunnelsActive: Gauge;
  tunnelsMax: Gauge;
  tunnelBytes: Counter<'direction'>;
  awsRequests: Counter<'service' | 'mode'>;
  denied: Counter<'reason'>;
  connectDuration: Histogram;
  inspectedRequests: Counter<'service' | 'status_class'>;
  tlsInterceptFailures: Counter<'cause'>;
  passthroughEntries: Gauge;
  passthroughAdditions: Counter<'cause'>;
  certCacheHits: Counter;
  certCacheMisses: Counter;
  upstreamDuration: Histogram;
  unattributedRequests: Counter<'reason'>;
  transparentRejected: Counter<'reason'>;
  transparentOriginalMismatch: Counter;
  transparentOriginalDestination: Gauge;
  observationsDropped: Counter<'reason'>;
  observationsPending: Gauge;
  spoolBytes: Gauge;
  spoolMaxBytes: Gauge;
  spoolBatches: Gauge;
  spoolOldestAge: Gauge;
  spoolDropped: Counter;
  spoolTruncated: Counter;
  spoolDeadLettered: Counter;
  telemetryBatches: Counter<'outcome'>;
  telemetrySplitBatches: Counter;
  telemetryRecords: Counter;
  spoolAppendedBatches: Counter;
  spoolAppendedRecords: Counter;
  telemetrySendDuration: Histogram;
  telemetrySinkErrors: Counter<'sink'>;
  egressIpInCidrs: Gauge;
  egressCheckTimestamp: Gauge;
  proxyWorkers: Gauge;
  proxyWorkerRestarts: Counter;
}

export function createAgentMetrics(registry: Registry, build: { version: string; nodeVersion: string }): AgentMetrics {
  const r = [registry];
  const m: AgentMetrics = {
    registry,
    ...createDaemonMetrics(registry, build),
    proxyRequests: new Counter({
      name: 'egress_witness_proxy_requests_total',
      help: 'Proxy connections and requests by kind (connect, http, invalid; transparent for redirected connections, transparent_http for requests on redirected plain-HTTP connections; inspected for decrypted requests) and how they ended.',
      labelNames: ['kind', 'outcome'],
      registers: r,
    }),
    tunnelsActive: new Gauge({
      name: 'egress_witness_tunnels_active',
      help: 'Open tunnels, CONNECT and redirected (transparent) alike, inspected ones included.',
      registers: r,
    }),
    tunnelsMax: new Gauge({
      name: 'egress_witness_tunnels_max',
      help: 'The tunnel cap (proxy.max_tunnels): CONNECTs and redirected connections beyond it are refused.',
      registers: r,
    }),
    tunnelBytes: new Counter({
      name: 'egress_witness_tunnel_bytes_total',
      help: 'Bytes carried through the proxy, by direction (up = client to upstream).',
      labelNames: ['direction'],
      registers: r,
    }),
    awsRequests: new Counter({
      name: 'egress_witness_aws_requests_total',
      help: 'Tunnels and requests to AWS endpoints, by service and mode.',
      labelNames: ['service', 'mode'],
      registers: r,
    }),
    denied: new Counter({
      name: 'egress_witness_denied_total',
      help: 'Refused clients and destinations, by reason.',
      labelNames: ['reason'],
      registers: r,
    }),
    connectDuration: new Histogram({
      name: 'egress_witness_connect_duration_seconds',
      help: 'Time to open the TCP connection to the checked upstream address (after DNS and the policy check).',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    inspectedRequests: new Counter({
      name: 'egress_witness_inspected_requests_total',
      help: 'HTTP requests read in inspect mode, by service and upstream status class.',
      labelNames: ['service', 'status_class'],
      registers: r,
    }),
    tlsInterceptFailures: new Counter({
      name: 'egress_witness_tls_intercept_failures_total',
      help: 'TLS interceptions that failed, by cause.',
      labelNames: ['cause'],
      registers: r,
    }),
    passthroughEntries: new Gauge({
      name: 'egress_witness_inspect_passthrough_entries',
      help: '(client, host) pairs on the automatic passthrough list.',
      // Every proxy worker holds the whole list (each tells the others its additions): one copy counts.
      aggregator: 'max',
      registers: r,
    }),
    passthroughAdditions: new Counter({
      name: 'egress_witness_inspect_passthrough_additions_total',
      help: 'Pairs put on the automatic passthrough list, by how the client rejected the certificate.',
      labelNames: ['cause'],
      registers: r,
    }),
    certCacheHits: new Counter({ name: 'egress_witness_cert_cache_hits_total', help: 'Leaf certificate cache hits.', registers: r }),
    certCacheMisses: new Counter({ name: 'egress_witness_cert_cache_misses_total', help: 'Leaf certificates minted.', registers: r }),
    upstreamDuration: new Histogram({
      name: 'egress_witness_upstream_duration_seconds',
      help: 'Time from forwarding an inspected request to the upstream response headers.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    unattributedRequests: new Counter({
      name: 'egress_witness_unattributed_requests_total',
      help: 'Inspected or plain-HTTP requests without an access key, by reason.',
      labelNames: ['reason'],
      registers: r,
    }),
    transparentRejected: new Counter({
      name: 'egress_witness_transparent_rejected_total',
      help: 'Redirected connections closed before they could be routed, by reason (no-sni, bad-sni, malformed-hello, header-timeout, not-tls-or-http, malformed-http, no-host, client-closed).',
      labelNames: ['reason'],
      registers: r,
    }),
    transparentOriginalMismatch: new Counter({
      name: 'egress_witness_transparent_original_ip_mismatch_total',
      help: 'Redirected connections whose original destination is not among the addresses their SNI / Host name resolves to (the agent connected to those).',
      registers: r,
    }),
    transparentOriginalDestination: new Gauge({
      name: 'egress_witness_transparent_original_destination_available',
      help: 'Whether the transparent listener can read original destinations (1) or assumes port 443 for TLS and 80 for HTTP (0, the native addon is missing).',
      registers: r,
    }),
    observationsDropped: new Counter({
      name: 'egress_witness_observations_dropped_total',
      help: 'Observations the aggregator could not keep, by reason.',
      labelNames: ['reason'],
      registers: r,
    }),
    observationsPending: new Gauge({
      name: 'egress_witness_observations_pending',
      help: 'Aggregated records waiting for the next flush.',
      registers: r,
    }),
    spoolBytes: new Gauge({ name: 'egress_witness_spool_bytes', help: 'Bytes of batches in the telemetry spool.', registers: r }),
    spoolMaxBytes: new Gauge({
      name: 'egress_witness_spool_max_bytes',
      help: 'The spool cap (telemetry.spool_max_bytes): beyond it the oldest batch is dropped; 0 without shipping.',
      registers: r,
    }),
    spoolBatches: new Gauge({
      name: 'egress_witness_spool_batches',
      help: 'Batches in the telemetry spool, in flight included.',
      registers: r,
    }),
    spoolOldestAge: new Gauge({
      name: 'egress_witness_spool_oldest_age_seconds',
      help: 'Age of the oldest batch in the spool.',
      registers: r,
    }),
    spoolDropped: new Counter({
      name: 'egress_witness_spool_dropped_batches_total',
      help: 'Batches dropped because the spool was full (oldest first).',
      registers: r,
    }),
    spoolTruncated: new Counter({
      name: 'egress_witness_spool_truncated_bytes_total',
      help: 'Bytes of torn or corrupt spool tails truncated at start-up.',
      registers: r,
    }),
    spoolDeadLettered: new Counter({
      name: 'egress_witness_spool_dead_lettered_batches_total',
      help: 'Batches the detector refused permanently, moved to the dead-letter folder.',
      registers: r,
    }),
    telemetryBatches: new Counter({
      name: 'egress_witness_telemetry_batches_total',
      help: 'Batch send attempts by outcome (success, retryable, permanent, unauthorized).',
      labelNames: ['outcome'],
      registers: r,
    }),
    telemetrySplitBatches: new Counter({
      name: 'egress_witness_telemetry_split_batches_total',
      help: 'Batches the detector refused as too large (413), sent again as two smaller batches.',
      registers: r,
    }),
    spoolAppendedBatches: new Counter({
      name: 'egress_witness_spool_appended_batches_total',
      help: 'Batches sealed and written (fsync) to the spool: accepted for delivery.',
      registers: r,
    }),
    spoolAppendedRecords: new Counter({
      name: 'egress_witness_spool_appended_records_total',
      help: 'Records in the batches written to the spool.',
      registers: r,
    }),
    telemetryRecords: new Counter({
      name: 'egress_witness_telemetry_records_total',
      help: 'Records acknowledged by the detector.',
      registers: r,
    }),
    telemetrySendDuration: new Histogram({
      name: 'egress_witness_telemetry_send_duration_seconds',
      help: 'Time to send one batch to the detector.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    telemetrySinkErrors: new Counter({
      name: 'egress_witness_telemetry_sink_errors_total',
      help: 'Failures writing records to a sink (file, spool).',
      labelNames: ['sink'],
      registers: r,
    }),
    egressIpInCidrs: new Gauge({
      name: 'egress_witness_egress_ip_in_configured_cidrs',
      help: 'Whether the public address AWS sees lies in gateway.egress_cidrs (1) or not (0); 0 until the first check succeeds (see egress_witness_egress_check_last_success_timestamp_seconds).',
      registers: r,
    }),
    egressCheckTimestamp: new Gauge({
      name: 'egress_witness_egress_check_last_success_timestamp_seconds',
      help: 'Time of the last successful egress self-check.',
      registers: r,
    }),
    proxyWorkers: new Gauge({
      name: 'egress_witness_proxy_workers',
      help: 'Processes serving the proxy and transparent listeners (proxy.workers): 1 without workers, else the workers listening now.',
      registers: r,
    }),
    proxyWorkerRestarts: new Counter({
      name: 'egress_witness_proxy_worker_restarts_total',
      help: 'Proxy workers that exited while the agent ran and were started again.',
      registers: r,
    }),
  };
  for (const direction of ['up', 'down']) m.tunnelBytes.inc({ direction }, 0);
  m.tunnelsActive.set(0);
  return m;
}

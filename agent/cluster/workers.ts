/**
 * `proxy.workers`: how many, what each is given, and how their metrics add up.
 * Pure, apart from reading the CPU count for "auto".
 */
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { AgentConfig } from '../config/schema.js';

export function resolveWorkers(v: AgentConfig['proxy']['workers'], cpus: () => number = availableParallelism): number {
  return v === 'auto' ? Math.max(1, cpus()) : v;
}

type Metrics = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The primary's own series, which a worker's registry has too (at zero or a copy): build and reload
 * state, telemetry, spool and shipping. Taken from the primary alone; everything else is summed over
 * the workers (counters, open tunnels) or aggregated the way prom-client's metric says (averages of
 * event-loop lag, and so on).
 */
export const PRIMARY_METRICS = new Set([
  'egress_witness_build_info',
  'egress_witness_config_last_reload_successful',
  'egress_witness_config_last_reload_success_timestamp_seconds',
  'egress_witness_proxy_workers',
  'egress_witness_proxy_worker_restarts_total',
  'egress_witness_tunnels_max',
  'egress_witness_observations_dropped_total',
  'egress_witness_observations_pending',
  'egress_witness_spool_bytes',
  'egress_witness_spool_max_bytes',
  'egress_witness_spool_batches',
  'egress_witness_spool_oldest_age_seconds',
  'egress_witness_spool_dropped_batches_total',
  'egress_witness_spool_truncated_bytes_total',
  'egress_witness_spool_dead_lettered_batches_total',
  'egress_witness_telemetry_batches_total',
  'egress_witness_telemetry_split_batches_total',
  'egress_witness_telemetry_records_total',
  'egress_witness_spool_appended_batches_total',
  'egress_witness_spool_appended_records_total',
  'egress_witness_telemetry_send_duration_seconds',
  'egress_witness_telemetry_sink_errors_total',
  'egress_witness_egress_ip_in_configured_cidrs',
  'egress_witness_egress_check_last_success_timestamp_seconds',
  'egress_witness_transparent_original_destination_available',
  'nodejs_version_info',
  'process_start_time_seconds',
]);

/**
 * The registries to aggregate: the primary's (its own series taken as they are), and each worker's
 * without the primary's own series. CPU, memory and descriptors add up over the processes.
 */
export function metricsToAggregate(primary: Metrics, workers: Metrics[]): Metrics[] {
  const own = primary.map((m) => (PRIMARY_METRICS.has(m.name) ? { ...m, aggregator: 'first' as const } : m));
  return [own, ...workers.map((w) => w.filter((m) => !PRIMARY_METRICS.has(m.name)))];
}

/**
 * The worker entry module. Built, it sits next to this file; run from TypeScript sources (tests),
 * the built copy under dist/ is used.
 */
export function workerEntry(): string {
  const here = new URL('../worker/main.js', import.meta.url);
  if (existsSync(here)) return fileURLToPath(here);
  return fileURLToPath(new URL('../../dist/agent/worker/main.js', import.meta.url));
}

/**
 * The primary's V8 heap flags that its workers start with too (the launcher's
 * `--no-memory-reducer`, an operator's heap sizes): the workers carry the data
 * path. Nothing else of the primary's command line is passed on (a profiler's
 * or debugger's flags stay the primary's own).
 */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  return execArgv.filter((a) => /^--(?:no-memory-reducer|(?:max-old|min-semi|max-semi)-space-size=\d+)$/.test(a));
}

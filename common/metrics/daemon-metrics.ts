/** The metrics every egress-witness daemon exports: build information and the configuration reload state. */
import { Gauge, type Registry } from 'prom-client';

export interface DaemonMetrics {
  buildInfo: Gauge<'version' | 'node_version'>;
  configReloadSuccessful: Gauge;
  configReloadTimestamp: Gauge;
}

export function createDaemonMetrics(registry: Registry, build: { version: string; nodeVersion: string }): DaemonMetrics {
  const r = [registry];
  const m: DaemonMetrics = {
    buildInfo: new Gauge({
      name: 'egress_witness_build_info',
      help: 'Build information; always 1.',
      labelNames: ['version', 'node_version'],
      registers: r,
    }),
    configReloadSuccessful: new Gauge({
      name: 'egress_witness_config_last_reload_successful',
      help: 'Whether the last configuration load or reload succeeded (1) or failed (0).',
      registers: r,
    }),
    configReloadTimestamp: new Gauge({
      name: 'egress_witness_config_last_reload_success_timestamp_seconds',
      help: 'Time of the last successful configuration load, in Unix seconds.',
      registers: r,
    }),
  };
  m.buildInfo.set({ version: build.version, node_version: build.nodeVersion }, 1);
  return m;
}

/**
 * One prom-client Registry per daemon instance (and per test). Default
 * process metrics are collected, minus the three gauges whose names end in
 * `_total` (promtool rejects them; the same counts remain without the suffix).
 */
import { Registry, collectDefaultMetrics } from 'prom-client';

const PROMTOOL_UNFRIENDLY = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of PROMTOOL_UNFRIENDLY) registry.removeSingleMetric(name);
  return registry;
}

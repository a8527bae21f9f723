// The Grafana dashboard in observability/grafana: its shape (schema version, the datasource and gateway
// variables, every panel on the variable datasource) and every query parsing — by promtool, through a rules
// file that holds each query as a recording rule, and by Prometheus's Lezer grammar. Which metrics the queries
// may name is checked against live daemons in test/integration/observability/exported-metrics.test.ts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { runPromtool } from '../common/metrics/promtool.js';
import { dashboardQueries, selectedMetrics, withGrafanaVariables, type Dashboard, type Query } from '../../helpers/promql.js';

interface GridPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { datasource?: { uid: string }; expr: string; refId: string }[];
  panels?: GridPanel[];
}
type FullDashboard = Omit<Dashboard, 'panels' | 'templating'> & {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: GridPanel[];
  templating: { list: { name: string; type: string; query: unknown; includeAll?: boolean; allValue?: string; multi?: boolean }[] };
};

const dashboard = JSON.parse(readFileSync(resolve('observability/grafana/egress-witness.json'), 'utf8')) as FullDashboard;
const queries = dashboardQueries(dashboard);
const scratch = mkdtempSync(join(tmpdir(), 'ew-dashboard-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Each query as a recording rule, so that `promtool check rules` parses it with the Prometheus it ships. */
async function promtoolParses(qs: readonly Query[]): Promise<{ code: number | null; output: string }> {
  const rules = {
    groups: [{ name: 'dashboard', rules: qs.map((q, i) => ({ record: `dashboard:query_${i}`, expr: withGrafanaVariables(q.expr) })) }],
  };
  const file = join(scratch, `queries-${qs.length}-${Date.now()}.rules.yml`);
  writeFileSync(file, stringify(rules));
  return runPromtool(['check', 'rules', file]);
}

describe('observability/grafana/egress-witness.json', () => {
  it('is a current Grafana dashboard with a fixed uid', () => {
    expect(dashboard.schemaVersion).toBe(42);
    expect(dashboard.uid).toBe('egress-witness');
    expect(dashboard.title).toBe('egress-witness');
  });

  it('takes the datasource and the gateway as variables', () => {
    const byName = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(byName.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(byName.get('gateway')).toMatchObject({ type: 'query', includeAll: true, allValue: '.*', multi: true });
  });

  it('puts every panel and query on the datasource variable, with unique ids, inside the 24-column grid', () => {
    const all = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    const ids = all.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const wrong: string[] = [];
    for (const p of all) {
      if (p.gridPos.x + p.gridPos.w > 24) wrong.push(`${p.title}: wider than the grid`);
      if (p.type === 'row') continue;
      if (p.datasource?.uid !== '${datasource}') wrong.push(`${p.title}: panel datasource`);
      for (const t of p.targets ?? []) if (t.datasource?.uid !== '${datasource}') wrong.push(`${p.title} ${t.refId}: target datasource`);
      if ((p.targets ?? []).length === 0) wrong.push(`${p.title}: no query`);
    }
    expect(wrong).toEqual([]);
  });

  it('shows what an operator watches: traffic, tunnels, inspection, telemetry, decisions, findings, heartbeats, GuardDuty, Security Hub', () => {
    const rows = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(rows).toEqual([
      'Overview',
      'Agent traffic',
      'Tunnels',
      'TLS inspection',
      'Telemetry pipeline and spool',
      'Detector: ingest and CloudTrail',
      'Decisions and findings',
      'GuardDuty',
      'Security Hub',
      'Processes',
    ]);
    expect(queries.length).toBeGreaterThan(40);
  });

  it('filters the agent panels by the gateway variable', () => {
    const agentQueries = queries.filter((q) => /egress_witness_(?!detector_|config_)/.test(q.expr));
    expect(agentQueries.length).toBeGreaterThan(20);
    expect(agentQueries.filter((q) => !q.expr.includes('gateway=~"$gateway"')).map((q) => q.where)).toEqual([]);
  });

  it('every query parses: promtool check rules accepts them all as recording rules', async () => {
    const r = await promtoolParses(queries);
    expect(r.output).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(r.code).toBe(0);
  });

  it('every query parses by the Lezer grammar and selects metrics by name', () => {
    const problems = queries.flatMap((q) => {
      const s = selectedMetrics(withGrafanaVariables(q.expr));
      return [...s.problems, ...(s.names.length === 0 ? ['no metric selected'] : [])].map((p) => `${q.where}: ${p}`);
    });
    expect(problems).toEqual([]);
  });

  it('a broken query fails both checks (the checks above can fail)', async () => {
    const broken = { where: 'panel "broken" A', expr: 'sum by (service) (rate(egress_witness_aws_requests_total[$__rate_interval])' };
    const r = await promtoolParses([...queries, broken]);
    expect(r.code).not.toBe(0);
    expect(selectedMetrics(withGrafanaVariables(broken.expr)).problems.length).toBeGreaterThan(0);
  });

  it('reads the metric names a query selects, and only those', () => {
    expect(
      selectedMetrics(
        'histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{x="y"}[5m]))) / on (job) group_left (gateway) b unless {__name__="c"} offset 1h',
      ),
    ).toEqual({ names: ['a_bucket', 'b', 'c'], problems: [] });
    expect(selectedMetrics('{__name__=~"egress_.*"}').problems).toHaveLength(1);
  });
});

/**
 * PromQL as the observability tests need it: the expressions of the Grafana dashboard and of the alerting
 * rules, the metric names each one selects (read from Prometheus's own Lezer grammar, not with a regex),
 * and the metric names a /metrics exposition offers.
 *
 *   dashboard JSON ─▶ dashboardQueries() ─▶ { where, expr } ─▶ withGrafanaVariables() ─▶ promtool / selectedMetrics()
 *   rules YAML     ─▶ ruleQueries()      ─┘
 *   /metrics text  ─▶ exportedMetrics()  ─▶ names, histogram and summary series included
 *   unknownMetrics(queries, exported)    ─▶ "where: name" for every selector no daemon exports
 */
import { parser } from '@prometheus-io/lezer-promql';

export interface Query {
  /** Where the expression comes from: `panel "Title" A`, `variable gateway`, `alert Name`. */
  where: string;
  expr: string;
}

interface Panel {
  title?: string;
  type?: string;
  panels?: Panel[];
  targets?: { refId?: string; expr?: string }[];
}

export interface Dashboard {
  panels?: Panel[];
  templating?: { list?: { name: string; type: string; definition?: string; query?: unknown }[] };
}

/** Every query of a dashboard: each panel target (rows' nested panels included) and each query variable. */
export function dashboardQueries(dashboard: Dashboard): Query[] {
  const out: Query[] = [];
  const walk = (panels: Panel[] = []): void => {
    for (const p of panels) {
      for (const t of p.targets ?? [])
        if (t.expr !== undefined) out.push({ where: `panel "${p.title ?? '?'}" ${t.refId ?? '?'}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : ((v.query as { query?: string } | undefined)?.query ?? v.definition ?? '');
    // label_values(selector, label) and query_result(expr) are Grafana functions around a PromQL selector/expression.
    const inner = /^\s*(?:label_values|query_result)\((.*?)(?:,\s*[a-zA-Z_][a-zA-Z0-9_]*)?\)\s*$/.exec(q);
    out.push({ where: `variable ${v.name}`, expr: inner ? inner[1]! : q });
  }
  return out;
}

/** Every alert and recording rule expression of a rules file (parsed YAML). */
export function ruleQueries(rules: { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] }): Query[] {
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: r.alert ? `alert ${r.alert}` : `record ${r.record}`, expr: r.expr })));
}

/**
 * Grafana's built-in interval variables replaced by durations, so that promtool and the grammar see PromQL;
 * template variables stay (inside label matcher strings, where they are plain text to PromQL).
 */
export function withGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, '5m')
    .replace(/\$__interval|\$\{__interval\}/g, '1m')
    .replace(/\$__range|\$\{__range\}/g, '6h');
}

export interface Selection {
  /** Metric names the expression selects. */
  names: string[];
  /** Parse errors (positions) and selectors whose name cannot be known (`{__name__=~"…"}`). */
  problems: string[];
}

/** The metric names an expression selects, from the syntax tree of Prometheus's Lezer PromQL grammar. */
export function selectedMetrics(expr: string): Selection {
  const names: string[] = [];
  const problems: string[] = [];
  const tree = parser.parse(expr);
  tree.iterate({
    enter: (node) => {
      if (node.type.isError) {
        problems.push(`syntax error at ${node.from}: ${JSON.stringify(expr.slice(Math.max(0, node.from - 10), node.to + 10))}`);
        return;
      }
      if (node.name !== 'VectorSelector') return;
      const id = node.node.getChild('Identifier');
      if (id) names.push(expr.slice(id.from, id.to));
      const matchers = node.node.getChild('LabelMatchers');
      for (const m of matchers?.getChildren('UnquotedLabelMatcher') ?? []) {
        const label = m.getChild('LabelName');
        if (!label || expr.slice(label.from, label.to) !== '__name__') continue;
        const op = m.getChild('MatchOp');
        const value = m.getChild('StringLiteral');
        if (op && value && expr.slice(op.from, op.to) === '=') names.push(JSON.parse(expr.slice(value.from, value.to)) as string);
        else problems.push(`a __name__ matcher other than = cannot be checked: ${expr.slice(m.from, m.to)}`);
      }
    },
  });
  return { names, problems };
}

/** The metric names a Prometheus text exposition offers: every family in a TYPE line, with the series of histograms and summaries. */
export function exportedMetrics(exposition: string): Set<string> {
  const out = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    out.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) out.add(name + s);
  }
  for (const m of exposition.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^\n]*\})? \S+/gm)) out.add(m[1]!);
  return out;
}

/** `where: name` for every metric a query selects that is neither exported nor one of `external` (series Prometheus makes itself). */
export function unknownMetrics(queries: readonly Query[], exported: ReadonlySet<string>, external: readonly string[] = []): string[] {
  const known = new Set([...exported, ...external]);
  return queries.flatMap((q) =>
    selectedMetrics(withGrafanaVariables(q.expr))
      .names.filter((n) => !known.has(n))
      .map((n) => `${q.where}: ${n}`),
  );
}

/** Series Prometheus records itself for every target (`up`), and the blackbox exporter's probe result. */
export const PROMETHEUS_OWN_SERIES = ['up', 'probe_success'] as const;

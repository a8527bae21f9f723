/**
 * Result rows, their ratios to direct and to Squid, the targets, the stdout
 * table and the JSON file. Ratios are value ÷ reference within one run
 * (absolute numbers drift ±30 % between runs on this kind of machine).
 */
import os from 'node:os';
import type { PeerName } from './peers.js';
import { fmt } from './stats.js';

export interface Row {
  /** Scenario name (as in --only). */
  scenario: string;
  /** What is measured, e.g. "requests/s", "p99 latency". */
  metric: string;
  unit: string;
  better: 'higher' | 'lower';
  /** The system measured; null for figures of egress-witness alone (they name `subject`). */
  peer: PeerName | null;
  subject?: string;
  /** The median of `runs`, or the single measurement. */
  value: number | null;
  runs?: number[];
  /** Why there is no value. */
  skipped?: string;
  /** Load generator CPU, % of one core, over the measurement. */
  clientCpuPct?: number | null;
  /** The proxy process's CPU, % of one core. */
  proxyCpuPct?: number | null;
  /** The fake AWS server's CPU, % of one core. */
  serverCpuPct?: number | null;
  /** CPU used by everything else on the machine meanwhile (% of one core): unrelated processes disturb the figure. */
  otherCpuPct?: number | null;
  note?: string;
  ratios?: { direct: number | null; squid: number | null; squidBump: number | null };
}

export interface Target {
  id: string;
  text: string;
  /** null: not measured in this run. */
  met: boolean | null;
  detail: string;
}

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryMiB: number;
  node: string;
  platform: string;
  kernel: string;
  fdLimit: number;
  date: string;
}

export function machine(fdLimit: number): Machine {
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryMiB: Math.round(os.totalmem() / 1024 / 1024),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    fdLimit,
    date: new Date().toISOString(),
  };
}

/** Fills `ratios` of every peer row from the direct, squid and squid-bump rows of the same figure. */
export function addRatios(rows: Row[]): void {
  const key = (r: Row): string => `${r.scenario}\u0000${r.metric}`;
  const refs = new Map<string, Partial<Record<PeerName, number>>>();
  for (const r of rows) {
    if (r.peer === null || r.value === null) continue;
    const m = refs.get(key(r)) ?? {};
    m[r.peer] = r.value;
    refs.set(key(r), m);
  }
  const ratio = (v: number | null, ref: number | undefined): number | null =>
    v === null || ref === undefined || ref === 0 ? null : v / ref;
  for (const r of rows) {
    if (r.peer === null) continue;
    const m = refs.get(key(r)) ?? {};
    r.ratios = { direct: ratio(r.value, m.direct), squid: ratio(r.value, m.squid), squidBump: ratio(r.value, m['squid-bump']) };
  }
}

function find(rows: readonly Row[], scenario: string, metric: string, peer: PeerName | null, subject?: string): Row | undefined {
  return rows.find(
    (r) =>
      r.scenario === scenario &&
      r.metric === metric &&
      r.peer === peer &&
      (subject === undefined || r.subject === subject) &&
      r.value !== null,
  );
}

/** The issue's targets, checked against this run's rows. */
export function evaluateTargets(rows: readonly Row[]): Target[] {
  const vs = (
    id: string,
    text: string,
    scenario: string,
    metric: string,
    peer: PeerName,
    ref: PeerName,
    factor: number,
    lowerIsBetter = false,
  ): Target => {
    const a = find(rows, scenario, metric, peer);
    const b = find(rows, scenario, metric, ref);
    if (!a || !b || a.value === null || b.value === null) return { id, text, met: null, detail: 'not measured in this run' };
    const ratio = a.value / b.value;
    const met = lowerIsBetter ? a.value <= b.value * factor : a.value >= b.value * factor;
    const cpuMetric = scenario === 'bulk' ? 'proxy CPU per MB' : 'proxy CPU per request';
    const ca = find(rows, scenario, cpuMetric, peer);
    const cb = find(rows, scenario, cpuMetric, ref);
    const cpu =
      ca?.value != null && cb?.value != null && cb.value > 0
        ? `; ${cpuMetric} ${fmt(ca.value)} vs ${fmt(cb.value)} ${ca.unit} (×${(ca.value / cb.value).toFixed(2)})`
        : '';
    return { id, text, met, detail: `${fmt(a.value)} vs ${fmt(b.value)} ${a.unit} (×${ratio.toFixed(2)})${cpu}` };
  };
  const targets: Target[] = [
    vs(
      'tunnel-rps-keepalive',
      'tunnel requests/s ≥ Squid (keep-alive, 64 clients)',
      'small-keepalive',
      'requests/s',
      'ew-tunnel',
      'squid',
      1,
    ),
    vs(
      'tunnel-rps-newconn',
      'tunnel requests/s ≥ Squid (new connection per request)',
      'new-connection',
      'requests/s',
      'ew-tunnel',
      'squid',
      1,
    ),
    vs('tunnel-bulk', 'tunnel bulk ≥ 90 % of direct', 'bulk', 'throughput', 'ew-tunnel', 'direct', 0.9),
    vs(
      'inspect-rps-keepalive',
      'inspect requests/s ≥ Squid ssl-bump (keep-alive)',
      'small-keepalive',
      'requests/s',
      'ew-inspect',
      'squid-bump',
      1,
    ),
    vs(
      'inspect-rps-newconn',
      'inspect requests/s ≥ Squid ssl-bump (new connection per request)',
      'new-connection',
      'requests/s',
      'ew-inspect',
      'squid-bump',
      1,
    ),
  ];
  const idle = find(rows, 'idle-tunnels', 'RSS per idle tunnel', 'ew-tunnel');
  targets.push(
    idle?.value != null
      ? { id: 'idle-rss', text: '≤ 16 KiB RSS per idle tunnel', met: idle.value <= 16, detail: `${fmt(idle.value)} KiB per tunnel` }
      : { id: 'idle-rss', text: '≤ 16 KiB RSS per idle tunnel', met: null, detail: 'not measured in this run' },
  );
  const ship = find(rows, 'shipping-overhead', 'shipping cost', null);
  const shipCpu = find(rows, 'shipping-overhead', 'shipping CPU cost', null);
  targets.push(
    ship?.value != null
      ? {
          id: 'shipping-cost',
          text: 'telemetry shipping costs < 5 % of the tunnel rate',
          met: ship.value < 5,
          detail: `${fmt(ship.value)} % lower rate with shipping on${shipCpu?.value != null ? `; ${fmt(shipCpu.value)} % more proxy CPU per tunnel` : ''} (medians of paired rounds)`,
        }
      : { id: 'shipping-cost', text: 'telemetry shipping costs < 5 % of the tunnel rate', met: null, detail: 'not measured in this run' },
  );
  return targets;
}

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : `${Math.round(v)}%`);
const ratioText = (v: number | null | undefined): string => (v === null || v === undefined ? '' : `×${v.toFixed(2)}`);

/** The stdout table: one line per figure, grouped by scenario. */
export function formatTable(rows: readonly Row[]): string {
  const header = [
    'scenario',
    'metric',
    'system',
    'value',
    'unit',
    '/direct',
    '/squid',
    '/bump',
    'client cpu',
    'proxy cpu',
    'server cpu',
    'other cpu',
    'runs / note',
  ];
  const lines: string[][] = [header];
  for (const r of rows) {
    lines.push([
      r.scenario,
      r.metric,
      r.peer ?? r.subject ?? '',
      r.skipped ? 'skipped' : fmt(r.value),
      r.unit,
      ratioText(r.ratios?.direct),
      ratioText(r.ratios?.squid),
      ratioText(r.ratios?.squidBump),
      pct(r.clientCpuPct),
      pct(r.proxyCpuPct),
      pct(r.serverCpuPct),
      pct(r.otherCpuPct),
      r.skipped
        ? r.skipped
        : [r.runs && r.runs.length > 1 ? `[${r.runs.map(fmt).join(', ')}]` : '', r.note ?? ''].filter(Boolean).join(' '),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  const numeric = new Set([3, 5, 6, 7, 8, 9, 10, 11]);
  const out = lines.map((l, n) => {
    const cells = l.map((c, i) =>
      i === l.length - 1 ? c : numeric.has(i) && n > 0 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0),
    );
    return cells.join('  ').trimEnd();
  });
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}

/** Markdown table of the same rows (for bench/README.md). */
export function formatMarkdown(rows: readonly Row[]): string {
  const head =
    '| scenario | metric | system | value | unit | ×direct | ×squid | ×bump | client cpu | proxy cpu | server cpu | other cpu |\n|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|';
  const body = rows.map(
    (r) =>
      `| ${r.scenario} | ${r.metric} | ${r.peer ?? r.subject ?? ''} | ${r.skipped ? `skipped: ${r.skipped}` : fmt(r.value)} | ${r.unit} | ${ratioText(r.ratios?.direct)} | ${ratioText(r.ratios?.squid)} | ${ratioText(r.ratios?.squidBump)} | ${pct(r.clientCpuPct)} | ${pct(r.proxyCpuPct)} | ${pct(r.serverCpuPct)} | ${pct(r.otherCpuPct)} |`,
  );
  return [head, ...body].join('\n');
}

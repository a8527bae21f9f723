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

/** The minimum CloudTrail records/s of replay (in-memory store) the detector is held to. */
export const REPLAY_GOAL = 50_000;
/**
 * The SQS path (durable store, S3 objects through the loopback fakes) is held to the same order of
 * magnitude as replay's goal: at least a tenth of it.
 */
export const SQS_GOAL = REPLAY_GOAL / 10;

/** The goals this run is checked against (data path, memory, shipping, detector rates). */
export function evaluateTargets(rows: readonly Row[]): Target[] {
  const notMeasured = (id: string, text: string): Target => ({ id, text, met: null, detail: 'not measured in this run' });
  /** `metric` of `peer` against the same figure of `ref`: met when the ratio is within `factor` on the good side. */
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
    if (!a || !b || a.value === null || b.value === null || b.value === 0) return notMeasured(id, text);
    const ratio = a.value / b.value;
    const met = lowerIsBetter ? ratio <= factor : ratio >= factor;
    return { id, text, met, detail: `${fmt(a.value)} vs ${fmt(b.value)} ${a.unit} (×${ratio.toFixed(2)})` };
  };
  /** A figure of egress-witness alone against an absolute bound. */
  const bound = (
    id: string,
    text: string,
    scenario: string,
    metric: string,
    peer: PeerName | null,
    limit: number,
    lowerIsBetter: boolean,
    subject?: string,
  ): Target => {
    const r = find(rows, scenario, metric, peer, subject);
    if (r?.value == null) return notMeasured(id, text);
    const met = lowerIsBetter ? r.value <= limit : r.value >= limit;
    return { id, text, met, detail: `${fmt(r.value)} ${r.unit}${r.subject ? ` (${r.subject})` : ''}` };
  };
  const PER_REQUEST = 'proxy CPU per request';
  const PER_MB = 'proxy CPU per MB';
  const [KA, NC, T, I] = ['small-keepalive', 'new-connection', 'ew-tunnel', 'ew-inspect'] as const;
  /** [id, text, scenario, metric, peer, reference, factor, lower is better]; keep-alive: 64 clients. */
  const ratioGoals: Parameters<typeof vs>[] = [
    ['tunnel-bulk-cpu', 'tunnel bulk: proxy CPU per MB ≤ 1.5 × Squid', 'bulk', PER_MB, T, 'squid', 1.5, true],
    ['tunnel-bulk', 'tunnel bulk: throughput ≥ 0.9 × direct', 'bulk', 'throughput', T, 'direct', 0.9],
    ['tunnel-keepalive-cpu', 'tunnel keep-alive: proxy CPU per request ≤ 1.0 × Squid', KA, PER_REQUEST, T, 'squid', 1, true],
    ['tunnel-newconn-cpu', 'tunnel, new connection each: proxy CPU per request ≤ 1.0 × Squid', NC, PER_REQUEST, T, 'squid', 1, true],
    ['inspect-keepalive-cpu', 'inspect keep-alive: proxy CPU per request ≤ 1.0 × ssl-bump', KA, PER_REQUEST, I, 'squid-bump', 1, true],
    ['inspect-bulk-cpu', "inspect bulk: proxy CPU per MB below ssl-bump's", 'bulk', PER_MB, I, 'squid-bump', 1, true],
    ['inspect-bulk', "inspect bulk: throughput at or above ssl-bump's", 'bulk', 'throughput', I, 'squid-bump', 1],
    ['tunnel-rps-keepalive', 'tunnel keep-alive: requests/s ≥ Squid', KA, 'requests/s', T, 'squid', 1],
    ['tunnel-rps-newconn', 'tunnel, new connection each: requests/s ≥ Squid', NC, 'requests/s', T, 'squid', 1],
    ['inspect-rps-keepalive', 'inspect keep-alive: requests/s ≥ ssl-bump', KA, 'requests/s', I, 'squid-bump', 1],
    ['inspect-rps-newconn', 'inspect, new connection each: requests/s ≥ ssl-bump', NC, 'requests/s', I, 'squid-bump', 1],
  ];
  const targets: Target[] = [
    ...ratioGoals.map((g) => vs(...g)),
    bound('idle-rss', '≤ 16 KiB RSS per idle tunnel', 'idle-tunnels', 'RSS per idle tunnel', 'ew-tunnel', 16, true),
  ];
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
      : notMeasured('shipping-cost', 'telemetry shipping costs < 5 % of the tunnel rate'),
  );
  const perSecond = 'CloudTrail records correlated/s';
  targets.push(
    bound(
      'replay-rate',
      `detector replay ≥ ${fmt(REPLAY_GOAL)} CloudTrail records/s`,
      'detector-correlation',
      perSecond,
      null,
      REPLAY_GOAL,
      false,
    ),
    bound(
      'replay-binding-rate',
      `detector replay with a 100,000-instance inventory ≥ ${fmt(REPLAY_GOAL)} CloudTrail records/s`,
      'detector-binding',
      perSecond,
      null,
      REPLAY_GOAL,
      false,
      BINDING_SUBJECT,
    ),
    bound(
      'sqs-rate',
      `detector through S3 + SQS ≥ ${fmt(SQS_GOAL)} CloudTrail records/s (same order as replay's goal)`,
      'detector-sqs',
      'CloudTrail records decided/s',
      null,
      SQS_GOAL,
      false,
      SQS_SUBJECT,
    ),
  );
  return targets;
}

/** The subject of the detector-binding row the goal is checked on: one thread (the `--jobs` row beside it is not). */
export const BINDING_SUBJECT = 'detector replay --inventory';

/** The subject of the detector-sqs row the SQS goal is checked on. */
export const SQS_SUBJECT = 'detector cloudtrail.sqs';

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

/**
 * This run against an earlier results file: which figures got worse by more
 * than the run-to-run noise. Absolute numbers drift between runs on a shared
 * machine, so a figure that has an in-run reference (direct, Squid, Squid
 * ssl-bump) is compared as its ratio to that reference; figures of
 * egress-witness alone are compared as they are.
 */
import { readFileSync } from 'node:fs';
import type { PeerName } from './peers.js';
import type { Row } from './results.js';
import { fmt } from './stats.js';

/** Noise assumed for a figure measured once (no spread of its own): the drift seen between single runs here. */
export const SINGLE_RUN_NOISE = 0.1;

export interface Comparison {
  scenario: string;
  metric: string;
  system: string;
  /** What is compared: the figure itself, or its ratio to a reference measured in the same run. */
  basis: 'value' | `÷ ${PeerName}`;
  before: number;
  after: number;
  /** after ÷ before − 1, signed so that > 0 is better. */
  change: number;
  /** The noise this change is judged against (fraction), and whether it is a measured spread. */
  noise: number;
  noiseMeasured: boolean;
  verdict: 'better' | 'same' | 'worse';
}

/** Half the range of a figure's runs relative to their median; null for a single measurement. */
export function halfRange(row: Row): number | null {
  const runs = (row.runs ?? []).filter(Number.isFinite);
  if (runs.length < 2 || row.value === null || row.value === 0) return null;
  return (Math.max(...runs) - Math.min(...runs)) / 2 / Math.abs(row.value);
}

/** The reference a peer's figure is read against in both runs: the closest kind of proxy measured there. */
const REFERENCES: Partial<Record<PeerName, readonly PeerName[]>> = {
  'ew-tunnel': ['squid', 'direct'],
  'ew-inspect': ['squid-bump', 'squid', 'direct'],
  tinyproxy: ['squid', 'direct'],
  squid: ['direct'],
  'squid-bump': ['direct'],
};

const keyOf = (r: Row, peer: PeerName | null = r.peer): string =>
  `${r.scenario}\u0000${r.metric}\u0000${peer ?? `subject:${r.subject ?? ''}`}`;

function index(rows: readonly Row[]): Map<string, Row> {
  const m = new Map<string, Row>();
  for (const r of rows) if (r.value !== null && Number.isFinite(r.value) && !r.skipped) m.set(keyOf(r), r);
  return m;
}

/** Every figure present in both runs, compared; the worse ones first. */
export function compareRuns(before: readonly Row[], after: readonly Row[]): Comparison[] {
  const b = index(before);
  const a = index(after);
  const out: Comparison[] = [];
  for (const [key, now] of a) {
    const then = b.get(key);
    if (!then || then.value === null || now.value === null) continue;
    let basis: Comparison['basis'] = 'value';
    let x0 = then.value;
    let x1 = now.value;
    let n0 = halfRange(then);
    let n1 = halfRange(now);
    const ref = now.peer === null ? undefined : REFERENCES[now.peer]?.find((p) => a.has(keyOf(now, p)) && b.has(keyOf(then, p)));
    if (ref !== undefined) {
      const r0 = b.get(keyOf(then, ref))!;
      const r1 = a.get(keyOf(now, ref))!;
      if (r0.value && r1.value) {
        basis = `÷ ${ref}`;
        x0 = then.value / r0.value;
        x1 = now.value / r1.value;
        // The ratio moves with both figures: their noises add up.
        const sum = (p: number | null, q: number | null): number | null => (p === null || q === null ? null : p + q);
        n0 = sum(n0, halfRange(r0));
        n1 = sum(n1, halfRange(r1));
      }
    }
    if (x0 === 0) continue;
    const raw = x1 / x0 - 1;
    const change = now.better === 'higher' ? raw : -raw;
    const measured = n0 !== null || n1 !== null;
    const noise = Math.max(n0 ?? 0, n1 ?? 0) || SINGLE_RUN_NOISE;
    out.push({
      scenario: now.scenario,
      metric: now.metric,
      system: now.peer ?? now.subject ?? '',
      basis,
      before: x0,
      after: x1,
      change,
      noise,
      noiseMeasured: measured,
      verdict: change < -noise ? 'worse' : change > noise ? 'better' : 'same',
    });
  }
  return out.sort((p, q) => p.change - q.change);
}

/** The stdout section: a count, then each figure worse beyond its noise, then the better ones. */
export function formatComparison(label: string, comparisons: readonly Comparison[]): string {
  const worse = comparisons.filter((c) => c.verdict === 'worse');
  const better = comparisons.filter((c) => c.verdict === 'better');
  const line = (c: Comparison): string =>
    `    ${c.scenario} / ${c.metric} / ${c.system} (${c.basis}): ${fmt(c.before)} → ${fmt(c.after)}, ${c.change >= 0 ? '+' : ''}${(c.change * 100).toFixed(1)} % (noise ±${(c.noise * 100).toFixed(1)} %${c.noiseMeasured ? '' : ', assumed'})`;
  return [
    `Against ${label}: ${comparisons.length} figures in both runs; ${worse.length} worse beyond the noise, ${better.length} better, ${comparisons.length - worse.length - better.length} within it.`,
    ...(worse.length ? ['  worse:', ...worse.map(line)] : []),
    ...(better.length ? ['  better:', ...better.map(line)] : []),
  ].join('\n');
}

/** The rows of a results file written by an earlier run; a clear error for anything else. */
export function readResults(path: string): { rows: Row[]; date: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`results file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const d = doc as { kind?: unknown; rows?: unknown; machine?: { date?: unknown } };
  if (d?.kind !== 'egress-witness-bench' || !Array.isArray(d.rows)) {
    throw new Error(`results file ${path}: not a results file of this bench (kind egress-witness-bench with rows)`);
  }
  return { rows: d.rows as Row[], date: typeof d.machine?.date === 'string' ? d.machine.date : 'unknown date' };
}

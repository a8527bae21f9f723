/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with
 * the most self time, and self time grouped by where the code lives (the
 * agent's own files, undici, pino, Node internals, GC, idle).
 *
 *   node dist/bench/tools/profile-summary.js FILE.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) return path.slice(nm + 'node_modules/'.length);
  const dist = path.indexOf('/dist/');
  if (dist >= 0) return path.slice(dist + '/dist/'.length);
  return path;
}

export function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'native / program';
  if (!url) return 'native / program';
  const u = shortUrl(url);
  if (url.startsWith('node:')) {
    const m = /^node:internal\/(?:deps\/)?([a-z_]+)/.exec(url) ?? /^node:([a-z_]+)/.exec(url);
    return `node:${m?.[1] ?? 'internal'}`;
  }
  const pkg = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(u);
  if (url.includes('node_modules/') && pkg) return pkg[1] as string;
  const own = /^(agent|common|protocol|cli|detector)\/([^/]+)/.exec(u);
  if (own) return `${own[1]}/${own[2]}`;
  return u;
}

export interface ProfileSummary {
  totalMs: number;
  top: { selfPct: number; selfMs: number; fn: string; where: string }[];
  areas: { area: string; selfPct: number }[];
}

export function summarizeProfile(file: string, topN = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, deltas[i + 1] ?? deltas[i] ?? 0));
  }
  let total = 0;
  const byFn = new Map<string, { us: number; fn: string; where: string }>();
  const byArea = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const fn = n.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') continue;
    total += us;
    const where = n.callFrame.url ? `${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : '';
    const key = `${fn}@${where}`;
    const e = byFn.get(key) ?? { us: 0, fn, where };
    e.us += us;
    byFn.set(key, e);
    const a = area(n.callFrame.url, fn);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
  }
  const top = [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((e) => ({ selfPct: (100 * e.us) / total, selfMs: e.us / 1000, fn: e.fn, where: e.where }));
  const areas = [...byArea.entries()].sort((a, b) => b[1] - a[1]).map(([a, us]) => ({ area: a, selfPct: (100 * us) / total }));
  return { totalMs: total / 1000, top, areas };
}

export function formatSummary(file: string, s: ProfileSummary): string {
  const lines = [`${file}: ${(s.totalMs / 1000).toFixed(1)} s of CPU samples (idle excluded)`, '  by area (self time):'];
  for (const a of s.areas.slice(0, 14)) lines.push(`    ${a.selfPct.toFixed(1).padStart(5)}%  ${a.area}`);
  lines.push('  hottest functions (self time):');
  for (const t of s.top) lines.push(`    ${t.selfPct.toFixed(1).padStart(5)}%  ${t.fn}  ${t.where}`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node dist/bench/tools/profile-summary.js FILE.cpuprofile [top]\n');
    process.exitCode = 2;
  } else {
    process.stdout.write(`${formatSummary(file, summarizeProfile(file, Number(top ?? 25)))}\n`);
  }
}

/**
 * `npm run bench`: egress-witness side by side with direct connections,
 * Squid (CONNECT and ssl-bump) and tinyproxy, on loopback, in one run.
 *
 *   harness (certs, fake AWS, receiver, load generator)
 *     └─▶ each scenario in bench/scenarios/ (found at run time, by `order`)
 *           └─▶ rows ─▶ ratios to direct / Squid ─▶ table on stdout + bench/results/*.json
 *
 * `--soak 10m` runs bench/soak.ts instead. See bench/README.md.
 */
import { readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, USAGE, type BenchArgs } from './lib/args.js';
import { compareRuns, formatComparison, readResults, type Comparison } from './lib/compare.js';
import { openHarness, RESULTS_DIR } from './lib/harness.js';
import { PeerPool } from './lib/peers.js';
import { hardNofileLimit } from './lib/proc.js';
import { addRatios, evaluateTargets, formatTable, machine, type Row } from './lib/results.js';
import { runtimeWarning } from './lib/runtime.js';
import { packageEngines } from '../common/runtime/version.js';
import type { BenchContext, Preset, Scenario } from './lib/scenario.js';
import { runSoak } from './soak.js';
import { formatSummary, summarizeProfile } from './tools/profile-summary.js';

const FULL: Preset = {
  runs: 3,
  warmupMs: 700,
  warmMs: 3_000,
  durationMs: 3_000,
  keepaliveConnections: 64,
  newconnConcurrency: 16,
  bulkBytes: 512 * 2 ** 20,
  bulkRuns: 3,
  idleTunnels: 10_000,
  telemetryRecords: 200_000,
  mintHosts: 200,
  mintHits: 20_000,
  shippingRuns: 8,
  shippingDurationMs: 3_000,
  settleMs: 3_000,
  burstAfterIdle: true,
};

const QUICK: Preset = {
  runs: 1,
  warmupMs: 200,
  warmMs: 700,
  durationMs: 800,
  keepaliveConnections: 64,
  newconnConcurrency: 16,
  bulkBytes: 32 * 2 ** 20,
  bulkRuns: 1,
  idleTunnels: 500,
  telemetryRecords: 20_000,
  mintHosts: 20,
  mintHits: 2_000,
  shippingRuns: 1,
  shippingDurationMs: 1_000,
  settleMs: 300,
  burstAfterIdle: false,
};

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function isScenario(v: unknown): v is Scenario {
  const s = v as Partial<Scenario> | null;
  return !!s && typeof s.name === 'string' && typeof s.order === 'number' && typeof s.title === 'string' && typeof s.run === 'function';
}

/** Every scenario module in dist/bench/scenarios/, sorted by `order`. */
export async function loadScenarios(): Promise<Scenario[]> {
  const dir = fileURLToPath(new URL('./scenarios/', import.meta.url));
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.js') && !f.startsWith('_'))
    .sort();
  const out: Scenario[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { default?: unknown };
    if (!isScenario(mod.default)) throw new Error(`bench/scenarios/${f.replace(/\.js$/, '.ts')} does not default-export a Scenario`);
    out.push(mod.default);
  }
  return out.sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
}

function select(all: Scenario[], only: readonly string[] | null): Scenario[] {
  if (!only) return all;
  const picked = all.filter((s) => only.some((o) => s.name === o || s.name.startsWith(o)));
  const unknown = only.filter((o) => !all.some((s) => s.name === o || s.name.startsWith(o)));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);
  return picked;
}

async function runTable(args: BenchArgs, scenarios: Scenario[]): Promise<number> {
  const started = performance.now();
  // Read before the run, so a wrong path fails in a second rather than after the whole run.
  const baseline = args.baseline === null ? null : readResults(args.baseline);
  const preset = args.quick ? QUICK : FULL;
  const fdLimit = hardNofileLimit();
  const m = machine(fdLimit);
  log(
    `egress-witness bench${args.quick ? ' (--quick)' : ''}: ${m.cores} cores (${m.cpuModel}), ${(m.memoryMiB / 1024).toFixed(1)} GiB, Node ${m.node}; load generator, fake server and proxies share these cores`,
  );
  const runtime = runtimeWarning(m.node, packageEngines());
  if (runtime !== null) log(`WARNING: ${runtime}`);
  const h = await openHarness({ agentLogLevel: args.agentLogLevel, profile: args.profile });
  const peers = new PeerPool(h.peerEnv, log);
  const rows: Row[] = [];
  const failures: string[] = [];
  const ctx: BenchContext = {
    args,
    preset,
    tmp: h.tmp,
    pki: h.pki,
    fake: h.fake,
    receiver: h.receiver,
    load: h.load,
    peers,
    peerEnv: h.peerEnv,
    record: (row) => void rows.push(row),
    log,
  };
  const onSignal = (): void => {
    log('interrupted: stopping the peers');
    void peers
      .stopAll()
      .finally(() => h.close(true))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const s of scenarios) {
      const t0 = performance.now();
      log(`▶ ${s.name}: ${s.title}`);
      try {
        await s.run(ctx);
      } catch (err) {
        const msg = (err as Error).stack ?? String(err);
        failures.push(`${s.name}: ${msg}`);
        log(`  FAILED: ${msg}`);
        rows.push({
          scenario: s.name,
          metric: '(scenario)',
          unit: '',
          better: 'higher',
          peer: null,
          subject: 'failed',
          value: null,
          skipped: `failed: ${(err as Error).message.split('\n')[0]}`,
        });
      }
      log(`  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
  } finally {
    await peers.stopAll();
    await h.close(failures.length > 0 || process.env.BENCH_KEEP_TMP === '1');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (failures.length > 0 || process.env.BENCH_KEEP_TMP === '1') log(`temp folder kept for inspection: ${h.tmp}`);

  addRatios(rows);
  const targets = evaluateTargets(rows);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `\n${formatTable(rows)}\n\nTargets${runtime === null ? '' : ` (on Node ${m.node}, outside the supported lines)`}:\n`,
  );
  for (const t of targets) process.stdout.write(`  ${t.met === null ? '  n/a' : t.met ? '  met' : 'MISSED'}  ${t.text}: ${t.detail}\n`);
  const warnings = runtime === null ? peers.restarts : [runtime, ...peers.restarts];
  for (const r of warnings) process.stdout.write(`WARNING: ${r}\n`);
  let comparison: Comparison[] | undefined;
  if (baseline) {
    comparison = compareRuns(baseline.rows, rows);
    process.stdout.write(`\n${formatComparison(`${args.baseline} (${baseline.date})`, comparison)}\n`);
  }
  process.stdout.write(
    `\nMachine: ${m.cores} cores, ${(m.memoryMiB / 1024).toFixed(1)} GiB, Node ${m.node}, ${m.platform} ${m.kernel}; fd hard limit ${fdLimit}. Run time ${seconds.toFixed(0)} s.\n`,
  );
  process.stdout.write(
    'Ratios are value ÷ reference (for latency and RSS, below 1 is better). CPU in % of one core: client = load generator (measured window), proxy = the proxy process and its helpers, server = fake AWS server, other = the rest of the machine (other processes: high values mean a disturbed figure).\n',
  );

  const full = !args.quick && !args.only;
  const out = args.out ?? join(RESULTS_DIR, full ? 'latest.json' : 'partial-latest.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ kind: 'egress-witness-bench', schema: 1, quick: args.quick, only: args.only, agentLogLevel: args.agentLogLevel, machine: m, durationSeconds: Math.round(seconds), preset, rows, targets, comparison, failures, warnings }, null, 2)}\n`,
  );
  process.stdout.write(`Results: ${out}\n`);

  if (h.profileDir) {
    process.stdout.write(`\nCPU profiles (${h.profileDir}):\n`);
    for (const f of readdirSync(h.profileDir)
      .filter((x) => x.endsWith('.cpuprofile'))
      .sort()) {
      try {
        process.stdout.write(`${formatSummary(f, summarizeProfile(join(h.profileDir, f)))}\n\n`);
      } catch (err) {
        process.stdout.write(`${f}: cannot read (${(err as Error).message})\n`);
      }
    }
  }
  return failures.length > 0 ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    log(`bench: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const all = await loadScenarios();
  if (args.list) {
    for (const s of all) process.stdout.write(`${s.name.padEnd(22)} ${s.title}\n`);
    return 0;
  }
  if (args.soakMs !== null) return runSoak(args, args.soakMs, log);
  let scenarios: Scenario[];
  try {
    scenarios = select(all, args.only);
  } catch (err) {
    log(`bench: ${(err as Error).message}`);
    return 2;
  }
  return runTable(args, scenarios);
}

process.exitCode = await main(process.argv.slice(2));

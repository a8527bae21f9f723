/**
 * `npm run bench -- --soak [30m]` (`npm run soak`): the agent under constant
 * mixed load for the whole duration while its neighbours fail around it.
 *
 *   load generator ──▶ agent (inspect *.amazonaws.com; *.s3.us-east-1 tunnelled) ──▶ fake AWS
 *        300 inspected req/s on 8 keep-alive connections, 500 rotating keys
 *         10 new inspected connections/s, 40 new tunnels/s over 200 bucket hosts
 *   agent telemetry (flush 1 s, spool) ──▶ detector (real process, SQLite store)
 *
 * Faults, on a fixed plan (faultPlan):
 *   every 60 s          SIGHUP to the agent, its config alternating between two passthrough lists
 *   90 s, then every 4 min   SIGKILL to the detector, started again 20 s later on the same store
 *   once, ~25 % in      SIGKILL to the agent during a detector outage (its spool holds a backlog),
 *                       after the load paused and the last flush was counted; started again at once
 *
 * Sampled every 10 s: the agent's RSS and open fds (/proc), heap, active
 * handles and event-loop delay p99 (its /metrics), the spool, the detector's
 * RSS. Trend of the last agent process (the SIGKILL is in the first quarter):
 * start / middle / end and a least-squares slope over its second half; growth
 * is judged on runs of 10 min and more. Accounting:
 * records (and batches) the agent wrote to its spool, summed over its
 * processes, against those the detector's SQLite store holds once the spool
 * has drained — equal, or something accepted was lost.
 */
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import type { BenchArgs } from './lib/args.js';
import { DetectorPeer } from './lib/detector-peer.js';
import { openHarness, RESULTS_DIR } from './lib/harness.js';
import { startPeer, type RunningPeer } from './lib/peers.js';
import { cpuMs, hardNofileLimit, openFds, rssKiB, sleep } from './lib/proc.js';
import { scrape } from './lib/prom-text.js';
import { machine } from './lib/results.js';
import { linearFit, fmt } from './lib/stats.js';
import type { SoakStats } from './load/jobs.js';

const SAMPLE_MS = 10_000;
const SIGHUP_EVERY_MS = 60_000;
const DETECTOR_FIRST_KILL_MS = 90_000;
const DETECTOR_EVERY_MS = 240_000;
const DETECTOR_DOWN_MS = 20_000;
const AGENT_KILL_INTO_OUTAGE_MS = 10_000;
const DRAIN_TIMEOUT_MS = 180_000;
const RSS_SLOPE_LIMIT_MIB_PER_MIN = 1;
const HANDLES_SLOPE_LIMIT_PER_MIN = 2;
const FDS_SLOPE_LIMIT_PER_MIN = 2;
const GATEWAY = 'gw-bench';
const PASSTHROUGH = ['*.s3.us-east-1.amazonaws.com'];
const PASSTHROUGH_ALT = ['*.s3.us-east-1.amazonaws.com', 'soak-reload.example.com'];

const SPOOLED_RECORDS = 'egress_witness_spool_appended_records_total';
const SPOOLED_BATCHES = 'egress_witness_spool_appended_batches_total';
const ACKED_RECORDS = 'egress_witness_telemetry_records_total';

export type FaultKind = 'agent-sighup' | 'detector-kill' | 'detector-start' | 'agent-kill';
export interface Fault {
  atMs: number;
  kind: FaultKind;
}

/** The faults of a run of `durationMs`, in time order; every outage ends a minute before the run does. */
export function faultPlan(durationMs: number): Fault[] {
  const plan: Fault[] = [];
  for (let t = SIGHUP_EVERY_MS; t < durationMs - 5_000; t += SIGHUP_EVERY_MS) plan.push({ atMs: t, kind: 'agent-sighup' });
  const outages: number[] = [];
  for (let t = DETECTOR_FIRST_KILL_MS; t + DETECTOR_DOWN_MS <= durationMs - 60_000; t += DETECTOR_EVERY_MS) outages.push(t);
  for (const t of outages) plan.push({ atMs: t, kind: 'detector-kill' }, { atMs: t + DETECTOR_DOWN_MS, kind: 'detector-start' });
  // The agent's SIGKILL lands in the outage nearest a quarter of the run, so the second half is one process.
  const quarter = durationMs / 4;
  const outage = outages.reduce<number | null>(
    (best, t) => (best === null || Math.abs(t - quarter) < Math.abs(best - quarter) ? t : best),
    null,
  );
  if (outage !== null) plan.push({ atMs: outage + AGENT_KILL_INTO_OUTAGE_MS, kind: 'agent-kill' });
  // Same instant: detector faults first, so an agent fault sees the outage it was planned into.
  const order: Record<FaultKind, number> = { 'detector-kill': 0, 'detector-start': 1, 'agent-kill': 2, 'agent-sighup': 3 };
  return plan.sort((a, b) => a.atMs - b.atMs || order[a.kind] - order[b.kind]);
}

interface Sample {
  t: number;
  agentPid: number | null;
  rssMiB: number | null;
  heapUsedMiB: number | null;
  handles: number | null;
  fds: number | null;
  eventLoopP99Ms: number | null;
  agentCpuPct: number | null;
  spoolBatches: number | null;
  spooledRecords: number | null;
  detectorUp: boolean;
  detectorRssMiB: number | null;
  inspectRps: number;
  inspectCps: number;
  tunnelCps: number;
  errors: number;
  clientP99Ms: number | null;
}

interface Counters {
  records: number;
  batches: number;
  acked: number;
}

const readCounters = (m: Map<string, number>): Counters => ({
  records: m.get(SPOOLED_RECORDS) ?? 0,
  batches: m.get(SPOOLED_BATCHES) ?? 0,
  acked: m.get(ACKED_RECORDS) ?? 0,
});

/** Waits until the agent has nothing pending and its spooled counters stop moving (two scrapes 1.2 s apart agree). */
async function settledCounters(agent: RunningPeer): Promise<Counters> {
  let previous = '';
  for (let i = 0; i < 40; i++) {
    await sleep(1_200);
    const m = await scrape(agent.adminPort as number);
    const c = readCounters(m);
    const key = `${c.records}/${c.batches}`;
    if ((m.get('egress_witness_observations_pending') ?? 1) === 0 && key === previous) return c;
    previous = key;
  }
  throw new Error('the agent kept flushing records 48 s after the load stopped');
}

function toggleReload(configFile: string, alternate: boolean): void {
  const config = YAML.parse(readFileSync(configFile, 'utf8')) as { inspect: { passthrough: string[] } };
  config.inspect.passthrough = alternate ? PASSTHROUGH_ALT : PASSTHROUGH;
  writeFileSync(configFile, `# generated by bench/soak.ts (reload ${alternate ? 'B' : 'A'})\n${YAML.stringify(config)}`);
}

const mins = (ms: number): string => `${(ms / 60_000).toFixed(1)} min`;

export async function runSoak(args: BenchArgs, durationMs: number, log: (line: string) => void): Promise<number> {
  const h = await openHarness({ agentLogLevel: args.agentLogLevel, profile: args.profile });
  const detector = await DetectorPeer.create(h.tmp, GATEWAY, ['203.0.113.0/28']);
  const samples: Sample[] = [];
  const events: { t: number; what: string }[] = [];
  const problems: string[] = [];
  const loadTotals = { inspectRequests: 0, inspectConnections: 0, tunnels: 0, errors: 0, firstError: null as string | null };
  const earlier: Counters = { records: 0, batches: 0, acked: 0 };
  let accounting: { spooled: Counters; stored: { batches: number; records: number }; dropped: number; deadLettered: number } | null = null;
  let agent: RunningPeer | null = null;
  let failed = false;
  const t0 = performance.now();
  const elapsed = (): number => performance.now() - t0;
  const note = (what: string): void => {
    events.push({ t: elapsed() / 1000, what });
    log(`  ${fmt(elapsed() / 1000).padStart(5)}  ── ${what}`);
  };
  const addLoad = (s: SoakStats): void => {
    loadTotals.inspectRequests += s.inspectRequests;
    loadTotals.inspectConnections += s.inspectConnections;
    loadTotals.tunnels += s.tunnels;
    loadTotals.errors += s.errors;
    loadTotals.firstError ??= s.firstError;
  };
  let agentKilling = false;

  try {
    await detector.start();
    agent = await startPeer(h.peerEnv, 'ew-inspect', { detectorUrl: detector.telemetryUrl, flushInterval: '1s', passthrough: PASSTHROUGH });
    if (!agent.pid || !agent.adminPort || !agent.proxy || !agent.configFile || !agent.restart) throw new Error('agent did not start');
    const a = agent;
    const loadJob = {
      inspect: a.target,
      tunnel: { ...a.target, caPem: h.pki.fakeCa.certPem },
      hostHeader: a.hostHeader,
      inspectRps: 300,
      inspectConnections: 8,
      keys: 500,
      inspectCps: 10,
      tunnelCps: 40,
      tunnelAuthorities: Array.from({ length: 200 }, (_, i) => `soak-${i}.s3.us-east-1.amazonaws.com:443`),
    };
    await h.load.soakStart(loadJob);
    const plan = faultPlan(durationMs);
    log(
      `soak: ${mins(durationMs)} of mixed load through egress-witness inspect (pid ${a.pid}) shipping to a detector (pid ${detector.pid}); a sample every ${SAMPLE_MS / 1000} s; ${plan.length} faults planned`,
    );
    log(
      '   t(s)  pid      rss MiB  heap MiB  handles   fds  loop p99 ms  agent cpu  spool  det  inspect/s  conn/s  tunnel/s  errors  client p99 ms',
    );

    let reloads = 0;
    const runFault = async (f: Fault): Promise<void> => {
      switch (f.kind) {
        case 'agent-sighup':
          toggleReload(a.configFile as string, ++reloads % 2 === 1);
          process.kill(a.pid as number, 'SIGHUP');
          note(`SIGHUP agent (pid ${a.pid}), passthrough list ${reloads % 2 === 1 ? 'B' : 'A'}`);
          return;
        case 'detector-kill':
          note(`SIGKILL detector (pid ${detector.pid})`);
          await detector.kill();
          return;
        case 'detector-start':
          await detector.start();
          note(`detector started again (pid ${detector.pid})`);
          return;
        case 'agent-kill': {
          agentKilling = true;
          addLoad(await h.load.soakStop());
          const c = await settledCounters(a);
          const m = await scrape(a.adminPort as number);
          const killedPid = a.pid;
          process.kill(killedPid as number, 'SIGKILL');
          for (let i = 0; i < 100 && a.exited() === null; i++) await sleep(50);
          earlier.records += c.records;
          earlier.batches += c.batches;
          earlier.acked += c.acked;
          note(
            `SIGKILL agent (pid ${killedPid}) with ${m.get('egress_witness_spool_batches') ?? '?'} batches in its spool; it had spooled ${c.records} records in ${c.batches} batches`,
          );
          await a.restart?.();
          await h.load.soakStart(loadJob);
          agentKilling = false;
          note(`agent started again (pid ${a.pid}), load resumed`);
          return;
        }
      }
    };

    let nextSample = SAMPLE_MS;
    let pi = 0;
    let cpuPrev: { pid: number | null; ms: number | null; at: number } = { pid: a.pid, ms: cpuMs(a.pid as number), at: performance.now() };
    while (elapsed() < durationMs) {
      const fault = plan[pi];
      const next = Math.min(nextSample, fault?.atMs ?? Infinity, durationMs);
      await sleep(Math.max(0, next - elapsed()));
      if (!agentKilling && a.exited() !== null)
        throw new Error(`the agent (pid ${a.pid}) ended by itself: ${a.exited()}; see ${a.logFile}`);
      if (detector.unexpectedExit) throw new Error(`${detector.unexpectedExit}; see ${detector.logFile}`);
      if (fault && elapsed() >= fault.atMs) {
        await runFault(fault);
        pi++;
        continue;
      }
      if (elapsed() < nextSample) continue;
      nextSample += SAMPLE_MS;
      const now = performance.now();
      const pid = a.pid as number;
      const m = await scrape(a.adminPort as number);
      const load = await h.load.soakStats();
      addLoad(load);
      const cpu = cpuMs(pid);
      const secs = load.wallMs / 1000;
      const s: Sample = {
        t: elapsed() / 1000,
        agentPid: pid,
        rssMiB: (rssKiB(pid) ?? NaN) / 1024,
        heapUsedMiB: (m.get('nodejs_heap_size_used_bytes') ?? NaN) / 2 ** 20,
        handles: m.get('nodejs_active_handles') ?? null,
        fds: openFds(pid),
        eventLoopP99Ms: m.has('nodejs_eventloop_lag_p99_seconds') ? (m.get('nodejs_eventloop_lag_p99_seconds') as number) * 1000 : null,
        agentCpuPct: cpuPrev.pid === pid && cpu !== null && cpuPrev.ms !== null ? (100 * (cpu - cpuPrev.ms)) / (now - cpuPrev.at) : null,
        spoolBatches: m.get('egress_witness_spool_batches') ?? null,
        spooledRecords: earlier.records + (m.get(SPOOLED_RECORDS) ?? 0),
        detectorUp: detector.running,
        detectorRssMiB: detector.pid !== null ? (rssKiB(detector.pid) ?? NaN) / 1024 : null,
        inspectRps: load.inspectRequests / secs,
        inspectCps: load.inspectConnections / secs,
        tunnelCps: load.tunnels / secs,
        errors: load.errors,
        clientP99Ms: load.p99Ms,
      };
      cpuPrev = { pid, ms: cpu, at: now };
      samples.push(s);
      log(
        `  ${fmt(s.t).padStart(5)}  ${String(pid).padEnd(7)}  ${fmt(s.rssMiB).padStart(7)}  ${fmt(s.heapUsedMiB).padStart(8)}  ${String(s.handles ?? '–').padStart(7)}  ${String(s.fds ?? '–').padStart(4)}  ${fmt(s.eventLoopP99Ms).padStart(11)}  ${`${fmt(s.agentCpuPct)}%`.padStart(9)}  ${String(s.spoolBatches ?? '–').padStart(5)}  ${s.detectorUp ? ' up' : 'DOWN'}  ${fmt(s.inspectRps).padStart(9)}  ${fmt(s.inspectCps).padStart(6)}  ${fmt(s.tunnelCps).padStart(8)}  ${String(s.errors).padStart(6)}  ${fmt(s.clientP99Ms).padStart(13)}`,
      );
    }

    // Accounting: stop the load, bring the detector back, let the spool drain, then compare the
    // counts at one consistent moment (the agent's counters before and after the store read agree).
    addLoad(await h.load.soakStop());
    if (!detector.running) {
      await detector.start();
      note(`detector started again (pid ${detector.pid}) for the final drain`);
    }
    note('load stopped; waiting for the spool to drain');
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    for (;;) {
      const before = await settledCounters(a);
      const m = await scrape(a.adminPort as number);
      const stored = await detector.storedTelemetry();
      const after = readCounters(await scrape(a.adminPort as number));
      if ((m.get('egress_witness_spool_batches') ?? 1) === 0 && before.records === after.records && before.batches === after.batches) {
        accounting = {
          spooled: {
            records: earlier.records + after.records,
            batches: earlier.batches + after.batches,
            acked: earlier.acked + after.acked,
          },
          stored,
          dropped: m.get('egress_witness_spool_dropped_batches_total') ?? 0,
          deadLettered: m.get('egress_witness_spool_dead_lettered_batches_total') ?? 0,
        };
        break;
      }
      if (performance.now() > deadline)
        throw new Error(
          `the spool still held ${m.get('egress_witness_spool_batches') ?? '?'} batches ${DRAIN_TIMEOUT_MS / 1000} s after the load stopped`,
        );
    }
    note('spool drained');
  } catch (err) {
    failed = true;
    problems.push(`soak failed: ${(err as Error).message}`);
    log(`soak failed: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await agent?.stop();
    await detector.stop();
    await h.close(failed);
  }
  if (failed) log(`temp folder kept for inspection: ${h.tmp}`);

  // ── verdict ────────────────────────────────────────────────────────────────
  // The trend is the last agent process's: the one killed in the first half started over from scratch.
  const lastPid = samples.at(-1)?.agentPid ?? null;
  const life = samples.filter((s) => s.agentPid === lastPid);
  const half = life.slice(Math.floor(life.length / 2));
  const fit = (pick: (s: Sample) => number | null) =>
    linearFit(half.filter((s) => pick(s) !== null && Number.isFinite(pick(s))).map((s) => ({ x: s.t / 60, y: pick(s) as number })));
  const series = {
    rssMiB: (s: Sample) => s.rssMiB,
    heapUsedMiB: (s: Sample) => s.heapUsedMiB,
    handles: (s: Sample) => s.handles,
    fds: (s: Sample) => s.fds,
    eventLoopP99Ms: (s: Sample) => s.eventLoopP99Ms,
  };
  const at = (i: number) => life[Math.min(life.length - 1, Math.max(0, i))];
  const trend = Object.fromEntries(
    Object.entries(series).map(([name, pick]) => {
      const f = fit(pick);
      const start = at(0);
      const middle = at(Math.floor(life.length / 2));
      const end = at(life.length - 1);
      return [
        name,
        {
          start: start ? pick(start) : null,
          middle: middle ? pick(middle) : null,
          end: end ? pick(end) : null,
          max: life.length ? Math.max(...life.map((s) => pick(s) ?? -Infinity)) : null,
          slopePerMin: f?.slope ?? null,
        },
      ];
    }),
  ) as Record<
    keyof typeof series,
    { start: number | null; middle: number | null; end: number | null; max: number | null; slopePerMin: number | null }
  >;
  const growing: string[] = [];
  const slope = (name: keyof typeof series) => trend[name].slopePerMin;
  if ((slope('rssMiB') ?? 0) >= RSS_SLOPE_LIMIT_MIB_PER_MIN) growing.push(`RSS +${slope('rssMiB')?.toFixed(2)} MiB/min`);
  if ((slope('handles') ?? 0) >= HANDLES_SLOPE_LIMIT_PER_MIN) growing.push(`handles +${slope('handles')?.toFixed(1)}/min`);
  if ((slope('fds') ?? 0) >= FDS_SLOPE_LIMIT_PER_MIN) growing.push(`fds +${slope('fds')?.toFixed(1)}/min`);
  const lost = accounting ? accounting.spooled.records - accounting.stored.records : null;
  const lostBatches = accounting ? accounting.spooled.batches - accounting.stored.batches : null;
  if (accounting && (lost !== 0 || lostBatches !== 0))
    problems.push(
      `records spooled ${accounting.spooled.records} (${accounting.spooled.batches} batches) ≠ stored ${accounting.stored.records} (${accounting.stored.batches} batches)`,
    );
  if (accounting && (accounting.dropped > 0 || accounting.deadLettered > 0))
    problems.push(`spool dropped ${accounting.dropped} and dead-lettered ${accounting.deadLettered} batches`);
  // Growth is judged on runs of 10 minutes and more: shorter ones are mostly the restarted process warming up.
  const tooShort = durationMs < 10 * 60_000;
  const verdict =
    failed || !accounting ? 'FAILED' : problems.length > 0 ? 'LOST DATA' : growing.length > 0 && !tooShort ? 'GROWING' : 'PASS';
  const faults = events.map((e) => e.what);
  const count = (prefix: string) => faults.filter((w) => w.startsWith(prefix)).length;
  const show = (name: keyof typeof series, unit: string, digits = 1) => {
    const t = trend[name];
    const v = (x: number | null) => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(digits));
    const sl = t.slopePerMin === null ? '–' : `${t.slopePerMin >= 0 ? '+' : ''}${t.slopePerMin.toFixed(digits + 1)}`;
    return `  ${name.padEnd(15)} start ${v(t.start)}  middle ${v(t.middle)}  end ${v(t.end)}  max ${v(t.max)} ${unit}; second-half slope ${sl} ${unit}/min`;
  };
  const lines = [
    '',
    `soak verdict: ${verdict}${growing.length ? ` (${growing.join(', ')})` : ''}${tooShort ? ' — run shorter than 10 min: growth not judged' : ''}`,
    `  faults: SIGHUP of the agent ×${count('SIGHUP')}, SIGKILL of the detector ×${count('SIGKILL detector')} (each down ${DETECTOR_DOWN_MS / 1000} s), SIGKILL of the agent ×${count('SIGKILL agent')}`,
    `  trend of the last agent process (pid ${lastPid ?? '–'}, ${life.length} samples from ${fmt(life[0]?.t ?? 0)} s on):`,
    accounting
      ? `  telemetry: ${accounting.spooled.records} records in ${accounting.spooled.batches} batches spooled by the agent (all its processes), ${accounting.stored.records} records in ${accounting.stored.batches} batches stored by the detector: ${lost === 0 && lostBatches === 0 ? 'nothing lost' : `${lost} records LOST`}; ${accounting.spooled.acked} records acknowledged as sent by the agent processes (batches recovered from a killed process's spool are delivered but not counted there)`
      : '  telemetry: not accounted (the run did not finish)',
    show('rssMiB', 'MiB'),
    show('heapUsedMiB', 'MiB'),
    show('handles', '', 0),
    show('fds', '', 0),
    show('eventLoopP99Ms', 'ms'),
    `  load: ${loadTotals.inspectRequests} inspected requests, ${loadTotals.inspectConnections} new inspected connections, ${loadTotals.tunnels} tunnels; ${loadTotals.errors} errors${loadTotals.firstError ? ` (first: ${loadTotals.firstError})` : ''}`,
    ...problems.map((p) => `  PROBLEM: ${p}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const out = args.out ?? join(RESULTS_DIR, 'soak-latest.json');
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        kind: 'egress-witness-soak',
        schema: 2,
        machine: machine(hardNofileLimit()),
        durationSeconds: Math.round(durationMs / 1000),
        verdict,
        limits: {
          rssMiBPerMin: RSS_SLOPE_LIMIT_MIB_PER_MIN,
          handlesPerMin: HANDLES_SLOPE_LIMIT_PER_MIN,
          fdsPerMin: FDS_SLOPE_LIMIT_PER_MIN,
        },
        trendPid: lastPid,
        trend,
        accounting,
        load: loadTotals,
        problems,
        events,
        samples,
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`Results: ${out}\n`);
  return verdict === 'PASS' ? 0 : 1;
}

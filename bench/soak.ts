/**
 * `npm run bench -- --soak 10m`: one agent with inspection on, under a
 * constant mixed load for the whole duration, sampled every 10 s:
 *
 *   load generator ──▶ agent (inspect *.amazonaws.com; *.s3.us-east-1 tunnelled) ──▶ fake AWS
 *        300 inspected req/s on 8 keep-alive connections, 500 rotating keys
 *         10 new inspected connections/s
 *         40 new tunnels/s over 200 rotating bucket hosts
 *   agent telemetry (flush 1 s) ──▶ receiver
 *
 * Samples: RSS (/proc), active handles, event-loop delay p99 and heap from
 * the agent's /metrics. Verdict from a least-squares line over the second
 * half (the first half is warm-up: JIT, caches, pools): stable when RSS grows
 * less than 1 MiB/min and handles less than 2/min.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchArgs } from './lib/args.js';
import { openHarness, RESULTS_DIR } from './lib/harness.js';
import { startPeer } from './lib/peers.js';
import { cpuMs, openFds, rssKiB, sleep } from './lib/proc.js';
import { scrape } from './lib/prom-text.js';
import { machine } from './lib/results.js';
import { hardNofileLimit } from './lib/proc.js';
import { linearFit, fmt } from './lib/stats.js';

const SAMPLE_MS = 10_000;
const RSS_SLOPE_LIMIT_MIB_PER_MIN = 1;
const HANDLES_SLOPE_LIMIT_PER_MIN = 2;

interface Sample {
  t: number;
  rssMiB: number | null;
  heapUsedMiB: number | null;
  handles: number | null;
  fds: number | null;
  eventLoopP99Ms: number | null;
  tunnelsActive: number | null;
  spoolBatches: number | null;
  agentCpuPct: number | null;
  inspectRps: number;
  inspectCps: number;
  tunnelCps: number;
  errors: number;
  clientP99Ms: number | null;
  clientCpuPct: number;
}

export async function runSoak(args: BenchArgs, durationMs: number, log: (line: string) => void): Promise<number> {
  const h = await openHarness({ agentLogLevel: args.agentLogLevel, profile: args.profile });
  const agent = await startPeer(h.peerEnv, 'ew-inspect', {
    detectorUrl: h.receiver.url,
    flushInterval: '1s',
    passthrough: ['*.s3.us-east-1.amazonaws.com'],
  });
  const samples: Sample[] = [];
  let firstError: string | null = null;
  let failed = false;
  try {
    if (!agent.pid || !agent.adminPort || !agent.proxy) throw new Error('agent did not start');
    const tunnel = { ...agent.target, caPem: h.pki.fakeCa.certPem };
    await h.load.soakStart({
      inspect: agent.target,
      tunnel,
      hostHeader: agent.hostHeader,
      inspectRps: 300,
      inspectConnections: 8,
      keys: 500,
      inspectCps: 10,
      tunnelCps: 40,
      tunnelAuthorities: Array.from({ length: 200 }, (_, i) => `soak-${i}.s3.us-east-1.amazonaws.com:443`),
    });
    log(
      `soak: ${(durationMs / 60_000).toFixed(1)} min of mixed load on egress-witness inspect (pid ${agent.pid}); a sample every ${SAMPLE_MS / 1000} s`,
    );
    log('   t(s)  rss MiB  heap MiB  handles  fds  loop p99 ms  agent cpu  inspect/s  conn/s  tunnel/s  errors  client p99 ms');
    const t0 = performance.now();
    let cpuPrev = cpuMs(agent.pid);
    let tPrev = t0;
    while (performance.now() - t0 < durationMs) {
      await sleep(Math.min(SAMPLE_MS, Math.max(0, durationMs - (performance.now() - t0))));
      const now = performance.now();
      const m = await scrape(agent.adminPort);
      const load = await h.load.soakStats();
      const cpu = cpuMs(agent.pid);
      const secs = load.wallMs / 1000;
      const s: Sample = {
        t: (now - t0) / 1000,
        rssMiB: (rssKiB(agent.pid) ?? NaN) / 1024,
        heapUsedMiB: (m.get('nodejs_heap_size_used_bytes') ?? NaN) / 2 ** 20,
        handles: m.get('nodejs_active_handles') ?? null,
        fds: openFds(agent.pid),
        eventLoopP99Ms: m.has('nodejs_eventloop_lag_p99_seconds') ? (m.get('nodejs_eventloop_lag_p99_seconds') as number) * 1000 : null,
        tunnelsActive: m.get('egress_witness_tunnels_active') ?? null,
        spoolBatches: m.get('egress_witness_spool_batches') ?? null,
        agentCpuPct: cpu !== null && cpuPrev !== null ? (100 * (cpu - cpuPrev)) / (now - tPrev) : null,
        inspectRps: load.inspectRequests / secs,
        inspectCps: load.inspectConnections / secs,
        tunnelCps: load.tunnels / secs,
        errors: load.errors,
        clientP99Ms: load.p99Ms,
        clientCpuPct: (100 * load.cpuMs) / load.wallMs,
      };
      cpuPrev = cpu;
      tPrev = now;
      firstError ??= load.firstError;
      samples.push(s);
      log(
        `  ${fmt(s.t).padStart(5)}  ${fmt(s.rssMiB).padStart(7)}  ${fmt(s.heapUsedMiB).padStart(8)}  ${String(s.handles ?? '–').padStart(7)}  ${String(s.fds ?? '–').padStart(3)}  ${fmt(s.eventLoopP99Ms).padStart(11)}  ${`${fmt(s.agentCpuPct)}%`.padStart(9)}  ${fmt(s.inspectRps).padStart(9)}  ${fmt(s.inspectCps).padStart(6)}  ${fmt(s.tunnelCps).padStart(8)}  ${String(s.errors).padStart(6)}  ${fmt(s.clientP99Ms).padStart(13)}`,
      );
    }
    await h.load.soakStop();
  } catch (err) {
    failed = true;
    log(`soak failed: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await agent.stop();
    await h.close(failed);
  }

  const half = samples.slice(Math.floor(samples.length / 2));
  const fit = (pick: (s: Sample) => number | null) =>
    linearFit(half.filter((s) => pick(s) !== null && Number.isFinite(pick(s))).map((s) => ({ x: s.t / 60, y: pick(s) as number })));
  const rssFit = fit((s) => s.rssMiB);
  const heapFit = fit((s) => s.heapUsedMiB);
  const handlesFit = fit((s) => s.handles);
  const errors = samples.reduce((n, s) => n + s.errors, 0);
  const tooShort = durationMs < 5 * 60_000;
  const growing: string[] = [];
  if (rssFit && rssFit.slope >= RSS_SLOPE_LIMIT_MIB_PER_MIN) growing.push(`RSS +${rssFit.slope.toFixed(2)} MiB/min`);
  if (handlesFit && handlesFit.slope >= HANDLES_SLOPE_LIMIT_PER_MIN) growing.push(`handles +${handlesFit.slope.toFixed(1)}/min`);
  const verdict = failed || !rssFit ? 'inconclusive' : growing.length === 0 ? 'stable' : 'growing';
  const lines = [
    '',
    `soak verdict: ${verdict.toUpperCase()}${growing.length ? ` (${growing.join(', ')})` : ''}${tooShort ? ' — run shorter than 5 min: indicative only (use --soak 10m)' : ''}`,
    `  second half (${half.length} samples): RSS ${rssFit ? `${rssFit.slope >= 0 ? '+' : ''}${rssFit.slope.toFixed(2)} MiB/min` : '–'} (limit ${RSS_SLOPE_LIMIT_MIB_PER_MIN}), heap ${heapFit ? `${heapFit.slope >= 0 ? '+' : ''}${heapFit.slope.toFixed(2)} MiB/min` : '–'}, handles ${handlesFit ? `${handlesFit.slope >= 0 ? '+' : ''}${handlesFit.slope.toFixed(1)}/min` : '–'} (limit ${HANDLES_SLOPE_LIMIT_PER_MIN})`,
    `  load errors: ${errors}${firstError ? ` (first: ${firstError})` : ''}; event-loop p99 max ${fmt(Math.max(...samples.map((s) => s.eventLoopP99Ms ?? 0)))} ms`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const out = args.out ?? join(RESULTS_DIR, 'soak-latest.json');
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ kind: 'egress-witness-soak', schema: 1, machine: machine(hardNofileLimit()), durationSeconds: Math.round(durationMs / 1000), verdict, limits: { rssMiBPerMin: RSS_SLOPE_LIMIT_MIB_PER_MIN, handlesPerMin: HANDLES_SLOPE_LIMIT_PER_MIN }, fits: { rss: rssFit, heap: heapFit, handles: handlesFit }, errors, firstError, samples }, null, 2)}\n`,
  );
  process.stdout.write(`Results: ${out}\n`);
  return failed ? 1 : 0;
}

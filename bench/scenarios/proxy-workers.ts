/**
 * `proxy.workers` 1 vs 2: two fresh tunnel-mode agents under the same load,
 * interleaved, with the load generator pinned to the last CPU (`taskset`)
 * and the agents to the others, so the generator never takes an agent's
 * core. Keep-alive (64 clients) and a new connection per request (16 at a
 * time). On a machine with N CPUs the agents get N − 1: on 2 CPUs, one,
 * and the row then shows what a second worker costs on the same core (the
 * primary's hand-off of each connection), not a scaling; bench/README.md
 * says what more cores give.
 */
import { availableParallelism } from 'node:os';
import { startPeer, type RunningPeer } from '../lib/peers.js';
import { cpuOf, errorNote, interleave, proxyCpuPer } from '../lib/measure.js';
import { run } from '../lib/proc.js';
import type { Scenario } from '../lib/scenario.js';
import { median } from '../lib/stats.js';

const NAME = 'proxy-workers';

const scenario: Scenario = {
  name: NAME,
  order: 75,
  title: 'tunnel requests/s with proxy.workers 1 vs 2, load generator pinned to its own CPU (taskset)',
  async run(ctx) {
    const cpus = availableParallelism();
    const skip = (reason: string) =>
      ctx.record({
        scenario: NAME,
        metric: 'scaling 1 → 2 workers',
        unit: '×',
        better: 'higher',
        peer: null,
        value: null,
        skipped: reason,
      });
    if (cpus < 2) return skip('needs 2 CPUs: one for the load generator, the rest for the agent');
    const loadCpu = String(cpus - 1);
    const agentCpus = cpus === 2 ? '0' : `0-${cpus - 2}`;
    run('taskset', ['-pc', loadCpu, String(ctx.load.pid)]);
    const one = await startPeer(ctx.peerEnv, 'ew-tunnel', { workers: 1, cpus: agentCpus });
    const two = await startPeer(ctx.peerEnv, 'ew-tunnel', { workers: 2, cpus: agentCpus });
    try {
      const labels = new Map<RunningPeer, string>([
        [one, 'workers 1'],
        [two, 'workers 2'],
      ]);
      const where = `agents on CPU ${agentCpus} (${cpus - 1} of ${cpus}), load generator on CPU ${loadCpu}`;
      const loads = [
        {
          what: 'keep-alive',
          job: (ms: number) => (peer: RunningPeer) =>
            ctx.load.keepalive({
              target: peer.target,
              hostHeader: peer.hostHeader,
              connections: ctx.preset.keepaliveConnections,
              warmupMs: ctx.preset.warmupMs,
              durationMs: ms,
            }),
        },
        {
          what: 'new connection',
          job: (ms: number) => (peer: RunningPeer) =>
            ctx.load.newconn({
              target: peer.target,
              hostHeader: peer.hostHeader,
              concurrency: ctx.preset.newconnConcurrency,
              warmupMs: ctx.preset.warmupMs,
              durationMs: ms,
            }),
        },
      ];
      for (const { what, job } of loads) {
        const series = await interleave(ctx, [one, two], ctx.preset.runs, job(ctx.preset.durationMs), job(ctx.preset.warmupMs));
        const rates = new Map<RunningPeer, number[]>();
        for (const s of series) {
          const rps = s.runs.map((r) => r.result.count / (r.result.wallMs / 1000));
          rates.set(s.peer, rps);
          ctx.record({
            scenario: NAME,
            metric: `${what} requests/s`,
            unit: 'req/s',
            better: 'higher',
            peer: null,
            subject: labels.get(s.peer) ?? '',
            value: median(rps),
            runs: rps,
            ...cpuOf(s),
            note: errorNote(s) ?? where,
          });
          const cpu = proxyCpuPer(s, (r) => r.result.count);
          ctx.record({
            scenario: NAME,
            metric: `${what} proxy CPU per request`,
            unit: 'µs',
            better: 'lower',
            peer: null,
            subject: labels.get(s.peer) ?? '',
            value: cpu.value,
            runs: cpu.runs,
            note: 'primary + workers',
          });
        }
        // Rounds ran 1, 2, 1, 2, …: each "2" against the "1" just before it, then the median.
        const [a, b] = [rates.get(one) ?? [], rates.get(two) ?? []];
        const ratios = b.map((x, i) => (a[i] ? x / a[i] : NaN)).filter(Number.isFinite);
        ctx.record({
          scenario: NAME,
          metric: `${what} scaling 1 → 2 workers`,
          unit: '×',
          better: 'higher',
          peer: null,
          subject: 'ew tunnel',
          value: median(ratios),
          runs: ratios,
          note: `${where}; median of paired rounds`,
        });
      }
    } finally {
      run('taskset', ['-pc', `0-${cpus - 1}`, String(ctx.load.pid)]);
      await Promise.allSettled([one.stop(), two.stop()]);
    }
  },
};

export default scenario;

/**
 * `proxy.workers: 2` in the agent daemon (`node dist/cli/main.js agent`, a
 * child process): tunnels are served by both workers, every observation
 * reaches the detector once, a SIGHUP is applied by each worker, a killed
 * worker is started again and counted, `/metrics` is one view of all
 * processes, and SIGTERM drains every worker before the last flush.
 * `npm test` builds dist/ first.
 *
 *   start ─▶ 40 tunnels ─▶ all shipped ─▶ SIGKILL worker 1 ─▶ restarted, counted
 *         ─▶ SIGHUP (max_tunnels) ─▶ both workers reload ─▶ 40 tunnels ─▶ 1 held open ─▶ SIGTERM ─▶ drained, flushed, exit 0
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_BIN as bin, spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { freePort, startTelemetryReceiver, type TelemetryReceiver } from '../helpers/telemetry-receiver.js';
import { connectTunnel } from '../helpers/raw.js';
import {
  awsHosts,
  canonical,
  fetchMetrics,
  readNdjson,
  runTunnels,
  sample,
  startEchoUpstream,
  tempDir,
  waitFor,
  writeSecretFile,
  type EchoUpstream,
  type TempDir,
} from '../integration/telemetry/rig.js';

const SECRET = 'e2e-workers-secret-5b8e2f7a91c4';

let dir: TempDir;
let upstream: EchoUpstream;
let receiver: TelemetryReceiver;
let agent: AgentProcess | null = null;

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  dir = await tempDir('ew-e2e-workers-');
  upstream = await startEchoUpstream();
});

afterAll(async () => {
  await agent?.kill();
  await receiver?.stop();
  await upstream?.close();
  await dir?.remove();
});

describe('proxy.workers: 2 (agent daemon as a child process)', () => {
  it('serves through both workers, ships every observation once, reloads, restarts a killed worker, drains on SIGTERM', async () => {
    const detectorPort = await freePort();
    receiver = await startTelemetryReceiver({ secret: Buffer.from(SECRET), port: detectorPort });
    const secretFile = join(dir.path, 'secret.key');
    await writeSecretFile(secretFile, SECRET);
    const ndjson = join(dir.path, 'observations.ndjson');
    const configPath = join(dir.path, 'agent.yaml');
    const config = (maxTunnels: number) => ({
      gateway: { id: 'gw-workers', egress_cidrs: ['203.0.113.0/28'] },
      networks: [{ name: 'lab', cidrs: ['127.0.0.0/8'] }],
      proxy: {
        listen: '127.0.0.1:0',
        allow_destination_cidrs: ['127.0.0.1/32'],
        connect_timeout: '2s',
        drain_timeout: '1s',
        max_tunnels: maxTunnels,
        workers: 2,
      },
      upstream: { resolve: { '*.amazonaws.com': `127.0.0.1:${upstream.port}` } },
      telemetry: {
        detector_url: `http://127.0.0.1:${detectorPort}/v1/telemetry`,
        secret_file: secretFile,
        file: ndjson,
        spool_dir: join(dir.path, 'spool'),
        flush_interval: '200ms',
        heartbeat_interval: '1h',
      },
      admin: { listen: '127.0.0.1:0' },
    });
    await writeFile(configPath, `${JSON.stringify(config(1000), null, 2)}\n`);

    const a = spawnAgent(configPath);
    agent = a;
    const find = (event: string) => a.lines.filter((l) => l.event === event);
    await waitFor(() => find('started').length === 1 || a.child.exitCode !== null, 'the agent to start', 20_000);
    expect(a.child.exitCode, a.stderr()).toBeNull();
    const started = find('started')[0]!;
    expect(started.workers).toBe(2);
    const proxyPort = started.proxy_port as number;
    const adminPort = started.admin_port as number;
    const workerPids = new Map(find('worker_started').map((l) => [l.worker as number, l.pid as number]));
    expect([...workerPids.keys()].sort()).toEqual([0, 1]);
    expect(new Set([...workerPids.values(), a.child.pid]).size).toBe(3);

    // Traffic: 40 tunnels to distinct hosts, handed to the workers in turn.
    const first = awsHosts('wk-a', 40);
    await runTunnels(proxyPort, first, 8);
    const servedBy = (hosts: readonly string[]) =>
      new Set(
        find('tunnel_closed')
          .filter((l) => hosts.includes(l.host as string))
          .map((l) => l.worker),
      );
    await waitFor(() => find('tunnel_closed').filter((l) => first.includes(l.host as string)).length === 40, 'the 40 decision lines');
    expect(servedBy(first)).toEqual(new Set([0, 1]));
    const shippedHosts = () => receiver.observations().map((o) => o.host);
    await waitFor(() => first.every((h) => shippedHosts().includes(h)), 'the first 40 observations shipped', 10_000);

    // /metrics: one view over the primary and both workers.
    let metrics = await fetchMetrics(adminPort);
    expect(sample(metrics, 'egress_witness_proxy_requests_total', { kind: 'connect', outcome: 'ok' })).toBe(40);
    expect(sample(metrics, 'egress_witness_proxy_workers')).toBe(2);
    expect(sample(metrics, 'egress_witness_proxy_worker_restarts_total')).toBe(0);
    expect(sample(metrics, 'egress_witness_tunnels_max')).toBe(1000);
    // The primary's own series once, not once per process.
    expect(metrics.split('\n').filter((l) => l.startsWith('egress_witness_build_info{'))).toHaveLength(1);

    // A worker that dies is started again, and counted.
    process.kill(workerPids.get(1)!, 'SIGKILL');
    await waitFor(() => find('worker_restarted').length === 1, 'worker 1 restarted', 15_000);
    expect(find('worker_exited')[0]).toMatchObject({ worker: 1, signal: 'SIGKILL' });
    const restartedPid = find('worker_started').filter((l) => l.worker === 1)[1]?.pid;
    expect(restartedPid).not.toBe(workerPids.get(1));
    metrics = await fetchMetrics(adminPort);
    expect(sample(metrics, 'egress_witness_proxy_worker_restarts_total')).toBe(1);
    expect(sample(metrics, 'egress_witness_proxy_workers')).toBe(2);
    expect(a.child.exitCode).toBeNull();

    // SIGHUP: read once by the primary, applied by each worker (the restarted one included).
    await writeFile(configPath, `${JSON.stringify(config(600), null, 2)}\n`);
    a.child.kill('SIGHUP');
    await waitFor(() => find('reloaded').length === 3, 'the primary and both workers reloaded', 10_000);
    expect(new Set(find('reloaded').map((l) => l.worker))).toEqual(new Set([undefined, 0, 1]));
    metrics = await fetchMetrics(adminPort);
    expect(sample(metrics, 'egress_witness_tunnels_max')).toBe(600);
    expect(sample(metrics, 'egress_witness_config_last_reload_successful')).toBe(1);

    // More traffic, through both workers again.
    const second = awsHosts('wk-b', 40);
    await runTunnels(proxyPort, second, 8);
    await waitFor(() => find('tunnel_closed').filter((l) => second.includes(l.host as string)).length === 40, 'the next 40 lines');
    expect(servedBy(second)).toEqual(new Set([0, 1]));

    // SIGTERM with a tunnel open: its worker drains it (closed at the deadline), then the primary flushes.
    const held = await connectTunnel(proxyPort, 'wk-held.s3.us-east-1.amazonaws.com:443');
    expect(held.status).toBe(200);
    held.socket.on('error', () => undefined);
    held.socket.write('hold');
    await waitFor(async () => sample(await fetchMetrics(adminPort), 'egress_witness_tunnels_active') === 1, 'the held tunnel to count');
    a.child.kill('SIGTERM');
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(
      find('worker_stopped')
        .map((l) => l.worker)
        .sort(),
    ).toEqual([0, 1]);
    expect(find('stopped')).toHaveLength(1);

    // Every tunnel observed exactly once: 81 distinct hosts, each with count 1, in the file and at the detector alike.
    const expected = [...first, ...second, 'wk-held.s3.us-east-1.amazonaws.com'].sort();
    const shipped = receiver.observations();
    expect(shipped.map((o) => o.host).sort()).toEqual(expected);
    expect(shipped.every((o) => o.count === 1)).toBe(true);
    expect(shipped.find((o) => o.host === 'wk-held.s3.us-east-1.amazonaws.com')?.outcome).toBe('drained');
    const fileObservations = (await readNdjson(ndjson)).filter((r) => r.type === 'observation');
    expect(fileObservations.map(canonical).sort()).toEqual(
      receiver
        .records()
        .filter((r) => r.type === 'observation')
        .map(canonical)
        .sort(),
    );
  });
});

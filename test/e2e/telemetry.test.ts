/**
 * The spool across a crash: `node dist/cli/main.js agent` as a child process
 * under tunnel load, shipping to a loopback receiver; the receiver stops
 * answering so batches pile up in the spool, some in flight; the agent is SIGKILLed mid-load and started
 * again. Everything the first run flushed before the kill must reach the
 * receiver, each batch stored once (re-sends are acknowledged and counted).
 * `npm test` builds dist/ first.
 *
 * Ground truth is the `telemetry.file` NDJSON sink: the pipeline hands each
 * flush to the file sink and the spool sink together, one flush at a time, so
 * the only records the file may have and the spool may not are those of the
 * one flush in progress at the kill — a suffix of the file.
 *
 *   receiver up ──load──▶ receiver hangs ──load──▶ SIGKILL ──▶ receiver answers ──▶ restart ──▶ replay
 */
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_BIN as bin, spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { workersFromEnv } from '../helpers/agent.js';
import { freePort, startTelemetryReceiver, type TelemetryReceiver } from '../helpers/telemetry-receiver.js';
import {
  awsHosts,
  canonical,
  missingFrom,
  observedCount,
  readNdjson,
  sleep,
  startEchoUpstream,
  tempDir,
  tunnelOnce,
  waitFor,
  writeSecretFile,
  type EchoUpstream,
  type TempDir,
} from '../integration/telemetry/rig.js';

const SECRET = 'e2e-telemetry-secret-7f3a9c1d2b4e';

function getStatus(adminPort: number): Promise<{ spool: { batches: number } | null }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: adminPort, path: '/status' }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(JSON.parse(text) as { spool: { batches: number } | null }));
      })
      .on('error', reject);
  });
}

/** Tunnels in a loop, `workers` at a time, until stopped; errors (the agent being killed) are counted, not thrown. */
function startLoad(
  proxyPort: number,
  workers: number,
): { counts: { readonly ok: number }; stop(): Promise<{ ok: number; failed: number; started: number }> } {
  let running = true;
  const counts = { ok: 0, failed: 0, started: 0 };
  const hosts = awsHosts('e2e', 7);
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; running; i++) {
      counts.started++;
      try {
        const payload = `load-${w}-${i}`;
        if ((await tunnelOnce(proxyPort, hosts[(w + i) % hosts.length]!, payload, 2_000)) === `echo:${payload}`) counts.ok++;
        else counts.failed++;
      } catch {
        counts.failed++;
        await sleep(10);
      }
    }
  });
  return {
    counts,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return counts;
    },
  };
}

let dir: TempDir;
let upstream: EchoUpstream;
let receiver: TelemetryReceiver;
const children: AgentProcess[] = [];

/** Writes the secret (0600) and an agent config (JSON is YAML) whose listeners bind port 0 and whose detector is on `detectorPort`. */
async function writeAgentConfig(name: string, detectorPort: number): Promise<{ configPath: string; ndjson: string; spoolDir: string }> {
  const secretFile = join(dir.path, `${name}.key`);
  await writeSecretFile(secretFile, SECRET);
  const ndjson = join(dir.path, `${name}.ndjson`);
  const spoolDir = join(dir.path, `${name}-spool`);
  const configPath = join(dir.path, `${name}.yaml`);
  const config = {
    gateway: { id: 'gw-e2e', egress_cidrs: ['203.0.113.0/28'] },
    networks: [{ name: 'lab', cidrs: ['127.0.0.0/8'] }],
    proxy: {
      listen: '127.0.0.1:0',
      allow_destination_cidrs: ['127.0.0.1/32'],
      connect_timeout: '2s',
      drain_timeout: '1s',
      ...workersFromEnv(),
    },
    upstream: { resolve: { '*.amazonaws.com': `127.0.0.1:${upstream.port}` } },
    telemetry: {
      detector_url: `http://127.0.0.1:${detectorPort}/v1/telemetry`,
      secret_file: secretFile,
      file: ndjson,
      spool_dir: spoolDir,
      flush_interval: '200ms',
      heartbeat_interval: '500ms',
    },
    admin: { listen: '127.0.0.1:0' },
  };
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return { configPath, ndjson, spoolDir };
}

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first (npm test does)`);
  dir = await tempDir('ew-e2e-telemetry-');
  upstream = await startEchoUpstream();
});

afterAll(async () => {
  for (const a of children) await a.kill();
  await receiver?.stop();
  await upstream?.close();
  await dir?.remove();
});

describe('telemetry in the agent daemon (child process)', () => {
  it('replays the spool after a SIGKILL under load: nothing flushed before the kill is lost, each batch stored once', async () => {
    const detectorPort = await freePort();
    const { configPath, ndjson } = await writeAgentConfig('kill', detectorPort);
    receiver = await startTelemetryReceiver({ secret: Buffer.from(SECRET), port: detectorPort });

    // Run 1: load with the receiver up, then with it hanging, then SIGKILL mid-load.
    const first = spawnAgent(configPath);
    children.push(first);
    const { proxyPort } = await first.started;
    const load = startLoad(proxyPort, 6);
    await waitFor(() => receiver.observations().length > 0, 'the first observations delivered', 5_000);
    await sleep(300);
    receiver.hang(true); // sends now hang: batches are in flight or pending at the kill
    await waitFor(() => receiver.attempts.some((a) => a.outcome === 'hanging'), 'a send held by the receiver');
    await sleep(600);
    // Under load: on a busy machine the first tunnels can take a while.
    await waitFor(() => load.counts.ok > 20, 'more than 20 tunnels through the agent', 30_000);
    first.child.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const traffic = await load.stop();
    const beforeKill = await readNdjson(ndjson);
    const acceptedBeforeKill = beforeKill.map(canonical);

    expect(traffic.ok).toBeGreaterThan(20);
    expect(observedCount(beforeKill)).toBeGreaterThan(0);
    expect(observedCount(beforeKill)).toBeLessThanOrEqual(traffic.started);
    const run1StartedAt = beforeKill.find((r) => r.type === 'heartbeat')!.startedAt as string;
    const deliveredBeforeKill = receiver.batches.length;

    // Run 2: the receiver answers again. It first processes the requests it held: it stores
    // batches the killed agent never saw acknowledged, so the replay must bring duplicates.
    const held = receiver.attempts.filter((a) => a.outcome === 'hanging').map((a) => a.batchId);
    receiver.hang(false);
    const second = spawnAgent(configPath);
    children.push(second);
    const { adminPort } = await second.started;
    const run1 = (): { records: string[]; lastBatch: string[] } => {
      const batches = receiver.batches
        .filter((b) => b.batch.agent.startedAt === run1StartedAt)
        .sort((a, b) => a.batch.sequence - b.batch.sequence);
      return {
        records: batches.flatMap((b) => b.raw.records).map(canonical),
        lastBatch: (batches.at(-1)?.raw.records ?? []).map(canonical),
      };
    };
    await waitFor(
      async () =>
        (await getStatus(adminPort)).spool?.batches === 0 && receiver.batches.some((b) => b.batch.agent.startedAt !== run1StartedAt),
      'the replay delivered and the spool drained',
      10_000,
    );
    const recovered = second.lines.find((l) => l.event === 'spool_recovered');
    expect(recovered, 'run 2 found batches to send').toBeDefined();
    expect(recovered!.pending as number).toBeGreaterThan(0);
    expect(receiver.batches.length).toBeGreaterThan(deliveredBeforeKill);

    // Nothing accepted before the kill is lost: at most the flush in progress at the kill (a suffix of the file, one heartbeat at most) never reached the spool.
    const { records, lastBatch } = run1();
    const missing = missingFrom(acceptedBeforeKill, records);
    expect(
      missingFrom(acceptedBeforeKill.slice(acceptedBeforeKill.length - missing.length), missing),
      `lost records that are not the last flush: ${missing.join('\n')}`,
    ).toEqual([]);
    expect(missing.filter((r) => r.includes('"type":"heartbeat"')).length).toBeLessThanOrEqual(1);
    // And nothing arrives that the file does not have, except the last flush when the kill fell between the two sinks.
    expect(missingFrom(missingFrom(records, acceptedBeforeKill), lastBatch)).toEqual([]);

    // Each batch stored once; re-sends of batches in flight at the kill are acknowledged and counted apart.
    const ids = receiver.batches.map((b) => b.batch.batchId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(held.length).toBeGreaterThanOrEqual(1);
    expect(receiver.duplicates.length).toBeGreaterThanOrEqual(1);
    for (const id of receiver.duplicates) expect(held).toContain(id);
    const run1Sequences = receiver.batches.filter((b) => b.batch.agent.startedAt === run1StartedAt).map((b) => b.batch.sequence);
    expect(new Set(run1Sequences).size).toBe(run1Sequences.length);
    expect(run1Sequences.sort((a, b) => a - b)).toEqual(run1Sequences.map((_, i) => i));
    expect(receiver.verifierDisagreements).toBe(0);
    expect(second.stderr()).toBe('');

    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
  });

  // An I/O error while the spool persists an ack (here its directory vanishes; in the field ENOSPC,
  // EIO or a read-only remount) must stay off the data path: logged, retried, the proxy unaffected.
  it('keeps proxying when the spool cannot persist an ack (its directory vanished)', async () => {
    const name = 'vanish';
    const detector = await startTelemetryReceiver({ secret: Buffer.from(SECRET) });
    try {
      const { configPath, spoolDir } = await writeAgentConfig(name, detector.port);
      const agent = spawnAgent(configPath);
      children.push(agent);
      const { proxyPort } = await agent.started;
      await waitFor(() => detector.batches.length >= 1, 'the first batch acknowledged');
      detector.hang(true);
      await waitFor(() => detector.attempts.some((a) => a.outcome === 'hanging'), 'a batch in flight');
      await rename(spoolDir, `${spoolDir}-gone`); // atomic: the path is simply not there any more
      detector.hang(false); // the in-flight batch is acknowledged now: its ack cannot be persisted
      const until = Date.now() + 1_500;
      while (Date.now() < until) {
        const answer = await tunnelOnce(proxyPort, 'sts.us-east-1.amazonaws.com', 'still-there', 2_000).catch(
          (err: unknown) => `tunnel failed: ${String(err)}`,
        );
        await sleep(50);
        expect(agent.child.exitCode, `the agent exited; stderr:\n${agent.stderr()}`).toBeNull();
        expect(answer).toBe('echo:still-there');
        await sleep(50);
      }
    } finally {
      await detector.stop();
    }
  });
});

/**
 * An inspecting agent in front of a loopback "fake AWS": a throwaway upstream CA (trusted by the
 * agent through upstream.ca_file), an inspection CA (for the clients), every *.amazonaws.com name
 * resolved to the fake. The fake's certificate covers `upstreamNames` only, so any other AWS name
 * fails upstream verification.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInspectionCa } from '../../agent/tls/ca.js';
import { writeCaFiles } from '../../agent/tls/ca-files.js';
import { createTestCa } from './pki.js';
import { startFakeAws, type FakeAws } from './fake-aws.js';
import { startAgent, type TestAgent } from './agent.js';

export interface InspectRig {
  agent: TestAgent;
  fake: FakeAws;
  dir: string;
  inspectionCaPem: string;
  upstreamCaPem: string;
  upstreamCaFile: string;
  close(): Promise<void>;
}

export async function startInspectRig(
  opts: {
    upstreamNames?: string[];
    proxy?: Record<string, unknown>;
    inspect?: Record<string, unknown>;
    transparent?: Record<string, unknown>;
  } = {},
): Promise<InspectRig> {
  const dir = mkdtempSync(join(tmpdir(), 'ew-inspect-rig-'));
  const upstreamCa = await createTestCa('fake AWS CA');
  const upstreamCaFile = join(dir, 'upstream-ca.pem');
  writeFileSync(upstreamCaFile, upstreamCa.certPem);
  const fake = await startFakeAws(await upstreamCa.issue({ dns: opts.upstreamNames ?? ['*.us-east-1.amazonaws.com'] }));
  const ca = await createInspectionCa({ permittedDomains: ['amazonaws.com'] });
  const paths = await writeCaFiles(join(dir, 'ca'), ca);
  const agent = await startAgent({
    proxy: { allow_destination_cidrs: ['127.0.0.1/32'], ...opts.proxy },
    inspect: { ca_cert: paths.certPath, ca_key: paths.keyPath, hosts: ['*.amazonaws.com'], ...opts.inspect },
    upstream: { ca_file: upstreamCaFile, resolve: { '*.amazonaws.com': `127.0.0.1:${fake.port}` } },
    ...(opts.transparent ? { transparent: opts.transparent } : {}),
  });
  return {
    agent,
    fake,
    dir,
    inspectionCaPem: ca.certPem,
    upstreamCaPem: upstreamCa.certPem,
    upstreamCaFile,
    close: async () => {
      await agent.stop();
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A metric's value from the agent's registry (0 when the series does not exist yet). */
export async function metricValue(agent: TestAgent, name: string, labels = ''): Promise<number> {
  const text = await agent.app.registry.getSingleMetricAsString(name);
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** Polls `check` every 20 ms for up to 4 s. */
export async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

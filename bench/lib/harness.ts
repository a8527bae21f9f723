/**
 * The fixed parts of every bench run, set up once and torn down at the end:
 * a temp folder, fresh certificates, the fake AWS server, the telemetry
 * receiver and the load generator, each a process of its own.
 */
import { mkdtempSync, chmodSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoadClient } from './load-client.js';
import { makePki, type Pki } from './pki.js';
import { FakeAws, Receiver } from './servers.js';
import type { PeerEnv } from './peers.js';

export const RESULTS_DIR = fileURLToPath(new URL('../../../bench/results/', import.meta.url));

export interface Harness {
  tmp: string;
  pki: Pki;
  fake: FakeAws;
  receiver: Receiver;
  load: LoadClient;
  peerEnv: PeerEnv;
  profileDir: string | null;
  close(keepTmp: boolean): Promise<void>;
}

export async function openHarness(opts: { agentLogLevel: string; profile: boolean }): Promise<Harness> {
  const tmp = mkdtempSync('/tmp/ew-bench-');
  chmodSync(tmp, 0o755); // Squid's helpers run as the proxy user
  const pki = await makePki(tmp);
  const fake = await FakeAws.start(pki.fakeServer.certFile, pki.fakeServer.keyFile, join(tmp, 'fake-aws.log'));
  const receiver = await Receiver.start(join(tmp, 'receiver.log'));
  const load = await LoadClient.start(join(tmp, 'load.log'));
  let profileDir: string | null = null;
  if (opts.profile) {
    profileDir = join(RESULTS_DIR, 'profiles', new Date().toISOString().replace(/[:.]/g, '-'));
    mkdirSync(profileDir, { recursive: true });
  }
  const peerEnv: PeerEnv = { tmp, pki, fake, agentLogLevel: opts.agentLogLevel, profileDir };
  return {
    tmp,
    pki,
    fake,
    receiver,
    load,
    peerEnv,
    profileDir,
    async close(keepTmp) {
      await Promise.allSettled([load.stop(), fake.stop(), receiver.stop()]);
      if (!keepTmp) rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * What a scenario is. Each file in bench/scenarios/ default-exports one;
 * bench/run.ts finds them all (sorted by `order`), so a new scenario is a new
 * file and nothing else. Files whose name starts with "_" are helpers, not scenarios.
 */
import type { BenchArgs } from './args.js';
import type { LoadClient } from './load-client.js';
import type { PeerEnv, PeerPool } from './peers.js';
import type { Pki } from './pki.js';
import type { Row } from './results.js';
import type { FakeAws, Receiver } from './servers.js';

/** Sizes and durations, full or --quick. */
export interface Preset {
  /** Interleaved short runs per figure (the median is reported). */
  runs: number;
  /** Warm-up at the start of every measured run (not counted). */
  warmupMs: number;
  /** One unmeasured keep-alive run per peer before the first round: pools, caches, JIT. */
  warmMs: number;
  durationMs: number;
  keepaliveConnections: number;
  newconnConcurrency: number;
  bulkBytes: number;
  bulkRuns: number;
  /** Idle tunnels to hold (capped by the fd limit: the proxy holds two descriptors per tunnel). */
  idleTunnels: number;
  telemetryRecords: number;
  mintHosts: number;
  mintHits: number;
  shippingRuns: number;
  shippingDurationMs: number;
  /** Pause before and after opening idle tunnels, so RSS is read from a settled process. */
  settleMs: number;
  /** Whether inspect-burst also measures the burst after 5 s idle. */
  burstAfterIdle: boolean;
}

export interface BenchContext {
  readonly args: BenchArgs;
  readonly preset: Preset;
  /** This run's temp folder (configs, certificates, logs); removed at the end unless the run failed. */
  readonly tmp: string;
  readonly pki: Pki;
  readonly fake: FakeAws;
  readonly receiver: Receiver;
  readonly load: LoadClient;
  /** Shared peers, started on first use. */
  readonly peers: PeerPool;
  /** What `startPeer` needs, for scenarios that want a fresh process. */
  readonly peerEnv: PeerEnv;
  /** Adds a figure to the table. */
  record(row: Row): void;
  /** A progress line on stderr. */
  log(line: string): void;
}

export interface Scenario {
  /** Short kebab-case name, used by --only and in the table. */
  readonly name: string;
  /** Position in the run (lower first). */
  readonly order: number;
  /** One line for --list and the README. */
  readonly title: string;
  run(ctx: BenchContext): Promise<void>;
}

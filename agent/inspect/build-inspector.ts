/** Builds the TLS inspector from the `inspect` and `upstream` config sections. */
import { readFile } from 'node:fs/promises';
import { Agent } from 'undici';
import type { Logger } from '../../common/log/logger.js';
import type { AgentConfig } from '../config/schema.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import type { RequestRecorder } from '../observe/model/request-record.js';
import { HostPatternSet } from '../net/resolve-overrides.js';
import { readCaFiles } from '../tls/ca-files.js';
import { LeafMinter } from '../tls/leaf-minter.js';
import { systemDialDeps, type DialDeps } from '../proxy/dialer.js';
import type { LivePolicy } from '../proxy/connection-types.js';
import { TlsInspector } from './inspector.js';
import { policyConnector } from './upstream-connector.js';

export interface InspectorHandle {
  inspector: TlsInspector;
  minter: LeafMinter;
  close(): void;
}

export async function buildInspector(
  c: AgentConfig,
  deps: {
    metrics: AgentMetrics;
    logger: Logger;
    recorder: RequestRecorder;
    now: () => number;
    dial?: DialDeps;
    onPassthrough?: (clientIp: string, host: string) => void;
  },
): Promise<InspectorHandle> {
  const inspect = c.inspect;
  if (!inspect) throw new Error('inspect section missing');
  const ca = await readCaFiles(inspect.ca_cert, inspect.ca_key);
  const minter = new LeafMinter(ca, { validityMs: inspect.leaf_validity, cacheSize: inspect.cert_cache_size, now: deps.now });
  const extraCa = c.upstream.ca_file ? await readFile(c.upstream.ca_file, 'utf8') : null;
  const newDispatcher = (): Agent =>
    new Agent({
      connections: c.upstream.max_connections_per_origin,
      keepAliveTimeout: c.upstream.keep_alive_timeout,
      keepAliveMaxTimeout: c.upstream.keep_alive_timeout,
      pipelining: 1,
      // The policy the connection path passed in last (usePolicy): upstream connections follow reloads.
      connect: policyConnector({
        policy: (): LivePolicy => inspector.policy(),
        deps: deps.dial ?? systemDialDeps,
        extraCa,
        connectTimeoutMs: c.proxy.connect_timeout,
      }),
    });
  const inspector: TlsInspector = new TlsInspector({
    hosts: new HostPatternSet(inspect.hosts),
    passthrough: new HostPatternSet(inspect.passthrough),
    passthroughOnFailure: inspect.passthrough_on_failure,
    passthroughTtlMs: inspect.passthrough_ttl,
    passthroughMaxEntries: inspect.passthrough_max_entries,
    minter,
    dispatcher: newDispatcher(),
    newDispatcher,
    recorder: deps.recorder,
    metrics: deps.metrics,
    logger: deps.logger,
    now: deps.now,
    handshakeTimeoutMs: c.proxy.header_timeout,
    idleTimeoutMs: c.proxy.idle_timeout,
    headersTimeoutMs: c.proxy.header_timeout,
    bodyTimeoutMs: 300_000,
    ...(deps.onPassthrough ? { onPassthrough: deps.onPassthrough } : {}),
  });
  return {
    inspector,
    minter,
    // close() rejects when the pool is already closed or destroyed: never an unhandled rejection.
    close: () => inspector.retire(() => void inspector.upstream.close().catch(() => undefined)),
  };
}

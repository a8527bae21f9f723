/**
 * The agent, built from a validated config without listening, so tests run
 * the whole daemon in-process. `start()` binds, `reload()` swaps settings
 * (keeping the old ones on error), `stop()` drains.
 *
 *   build ─▶ start (admin, proxy listen; telemetry timers) ─▶ reload* ─▶ stop (drain, final flush)
 */
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Logger } from '../common/log/logger.js';
import { createRegistry } from '../common/metrics/registry.js';
import { createAdminServer, listenAt, closeServer } from '../common/admin/admin-server.js';
import type { ConfigProblem } from '../common/config/load.js';
import { formatProblem } from '../common/config/load.js';
import { formatDuration } from '../common/config/units.js';
import { applyHotReload, restartNeededMessage, type ConfigPath } from '../common/config/hot-reload.js';
import type { AgentConfig } from './config/schema.js';
import { createAgentMetrics, type AgentMetrics } from './metrics/metrics.js';
import { ForwardProxy } from './proxy/proxy-server.js';
import { ConnectionPath, type DrainTogether } from './proxy/connection-path.js';
import { systemDialDeps, type DialDeps } from './proxy/dialer.js';
import { TransparentListener } from './transparent/transparent-listener.js';
import { loadOriginalDestinationReader, type OriginalDestinationReader } from './transparent/original-destination.js';
import { loadNativeRelay, type NativeRelay } from './proxy/native-relay.js';
import { buildProxySettings } from './settings.js';
import { Aggregator } from './observe/model/aggregator.js';
import type { RequestRecorder } from './observe/model/request-record.js';
import { requestRecorder } from './observe/canonical-log.js';
import { TelemetryPipeline } from './observe/telemetry-pipeline.js';
import { NdjsonFileSink } from './observe/ndjson-file-sink.js';
import type { RecordSink } from './observe/record-sink.js';
import { buildTelemetryShipping, type TelemetryShipping } from './ship/telemetry-shipping.js';
import { buildInspector, type InspectorHandle } from './inspect/build-inspector.js';
import { WorkerSupervisor } from './cluster/supervisor.js';
import type { WorkerRelay } from './cluster/relay.js';
import type { TunnelAdmission } from './cluster/tunnel-budget.js';
import { metricsToAggregate, resolveWorkers, workerEntry, workerExecArgv } from './cluster/workers.js';

export interface AgentDeps {
  logger: Logger;
  version: string;
  nodeVersion: string;
  registry?: Registry;
  now?: () => number;
  dial?: DialDeps;
  /** A --log-level given on the command line wins over log.level, on start and on every reload. */
  logLevelOverride?: string;
  /** The node flags this process started with (process.execArgv): proxy workers start with its heap flags. */
  execArgv?: readonly string[];
  /** How redirected connections' original destinations are read (default: the native addon, when built). */
  originalDestination?: OriginalDestinationReader;
  /**
   * Set in a proxy worker (proxy.workers > 1): it serves the listeners only; its observations and log
   * lines go to the primary through the relay, and the primary's admin port is refused as a destination.
   */
  worker?: {
    relay: WorkerRelay;
    adminPort: number;
    /** The tunnel cap, leased from the primary's budget (cluster/tunnel-budget.ts). */
    admission?: TunnelAdmission;
    /** Tells the other workers an automatic passthrough entry. */
    sharePassthrough?: (clientIp: string, host: string) => void;
    /** The workers drain as one agent (ConnectionPath.drain). */
    drainTogether?: DrainTogether;
  };
}

export interface AgentAddresses {
  proxy: AddressInfo;
  admin: AddressInfo;
  /** Null without a `transparent` section. */
  transparent: AddressInfo | null;
}

/**
 * What SIGHUP applies to a running agent. Everything else (listeners, gateway
 * identity and egress CIDRs, spool and shipping, upstream pools) keeps its
 * running value until a restart, and the reload log line names those keys.
 */
export const AGENT_HOT_KEYS: readonly ConfigPath<AgentConfig>[] = [
  'networks',
  'proxy.allowed_clients',
  'proxy.allowed_ports',
  'proxy.allow_destination_cidrs',
  'proxy.max_tunnels',
  'proxy.connect_timeout',
  'proxy.idle_timeout',
  'proxy.drain_timeout',
  'inspect',
  'transparent.ports',
  'upstream.resolve',
  'telemetry.file',
  'telemetry.flush_interval',
  'telemetry.heartbeat_interval',
  'log.level',
];

/**
 * The transparent listener's accept queue: a redirect hands it every routed client's new
 * connections at once (after an outage, a fleet's SDK retries), more than Node's default 511.
 */
const TRANSPARENT_BACKLOG = 4096;

export class AgentApp {
  readonly metrics: AgentMetrics;
  /** The agent's metrics: this process's registry, or with workers one view of the primary and the workers. */
  readonly registry: Registry;
  private readonly own: Registry;
  private config: AgentConfig;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly startedAt: number;
  private path: ConnectionPath | null = null;
  private proxy: ForwardProxy | null = null;
  private transparent: TransparentListener | null = null;
  private originalDestination: OriginalDestinationReader | null = null;
  private readonly admin;
  private readonly aggregator: Aggregator;
  private pipeline: TelemetryPipeline | null = null;
  private shipping: TelemetryShipping | null = null;
  private inspector: InspectorHandle | null = null;
  /** The proxy workers, when proxy.workers > 1 and this is the primary. */
  private readonly cluster: WorkerSupervisor | null = null;
  private readonly workers: number;
  private listening = false;
  private addresses: AgentAddresses | null = null;
  /** The agent's own listen addresses, which the destination policy refuses. */
  private self: { ip: string; port: number }[] = [];
  /** Where every connection's and request's record goes: its decision line, its metrics, its observation. */
  private readonly recorder: RequestRecorder;

  constructor(
    config: AgentConfig,
    private readonly deps: AgentDeps,
  ) {
    this.config = config;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
    this.own = deps.registry ?? createRegistry();
    this.registry = this.own;
    this.metrics = createAgentMetrics(this.own, { version: deps.version, nodeVersion: deps.nodeVersion });
    this.aggregator = new Aggregator({
      gatewayId: config.gateway.id,
      maxPending: config.telemetry.max_pending_records,
      observeAll: config.telemetry.observe_all,
      onDrop: (reason) => this.metrics.observationsDropped.inc({ reason }),
    });
    this.recorder = requestRecorder(this.logger, this.metrics, deps.worker?.relay ?? this.aggregator);
    this.workers = deps.worker ? 1 : resolveWorkers(config.proxy.workers);
    const ownClock = deps.now && deps.now !== Date.now ? deps.now : null;
    if (this.workers > 1)
      this.cluster = new WorkerSupervisor({
        workers: this.workers,
        exec: workerEntry(),
        logger: this.logger,
        metrics: this.metrics,
        observer: this.aggregator,
        writeLog: logWriter(this.logger),
        logLevelOverride: deps.logLevelOverride ?? null,
        execArgv: workerExecArgv(deps.execArgv ?? []),
        // A host program's own network and clock: the workers borrow them (cluster/embedded.ts).
        ...(deps.dial || ownClock ? { embedded: { dial: deps.dial ?? null, now: ownClock } } : {}),
      });
    if (this.cluster) this.registry = new AggregatedRegistry(this.own, this.cluster);
    const listeningNow = (s: { server: { listening: boolean } } | null) =>
      this.cluster ? this.cluster.running === this.workers : (s?.server.listening ?? false);
    this.admin = createAdminServer({
      registry: this.registry,
      readiness: () => ({
        ready: this.listening,
        checks: {
          proxy_listening: listeningNow(this.proxy),
          ...(this.config.transparent ? { transparent_listening: listeningNow(this.transparent) } : {}),
          admin_listening: true,
          config_loaded: true,
        },
      }),
      routes: { '/status': () => this.status() },
    });
  }

  status(): Record<string, unknown> {
    return {
      gateway_id: this.config.gateway.id,
      version: this.deps.version,
      started_at: new Date(this.startedAt).toISOString(),
      active_tunnels: this.activeTunnels,
      workers: this.workers,
      inspect: this.config.inspect !== null,
      transparent: this.config.transparent
        ? {
            listen: this.config.transparent.listen.text,
            original_destination: this.originalDestination?.available
              ? 'available'
              : (this.originalDestination?.unavailableReason ?? 'not started'),
          }
        : null,
      spool: this.shipping?.stats() ?? null,
    };
  }

  /** Open tunnels: this process's, or the workers' as they last reported. */
  get activeTunnels(): number {
    return this.path?.activeTunnels ?? this.cluster?.activeTunnels ?? 0;
  }

  /** An automatic passthrough entry another proxy worker added. */
  rememberPassthrough(clientIp: string, host: string): void {
    this.inspector?.inspector.rememberPassthrough(clientIp, host);
  }

  /** Live tunnels report their window now (a worker does this before the primary's flush). */
  reportLive(): void {
    this.path?.reportLive();
  }

  /** Hands everything aggregated so far to the sinks now (tests, and the final flush at stop). */
  flushTelemetry(): Promise<void> {
    return this.pipeline?.flush() ?? Promise.resolve();
  }

  async start(): Promise<AgentAddresses> {
    const c = this.config;
    const worker = this.deps.worker;
    // A worker has no admin listener: the primary's answers for all of them.
    const adminAddr: AddressInfo = worker
      ? { address: c.admin.listen.host, family: c.admin.listen.host.includes(':') ? 'IPv6' : 'IPv4', port: worker.adminPort }
      : await listenAt('admin.listen', this.admin, c.admin.listen.host, c.admin.listen.port);
    try {
      if (!worker)
        this.shipping = await buildTelemetryShipping(c, {
          metrics: this.metrics,
          logger: this.logger,
          now: this.now,
          version: this.deps.version,
          startedAt: this.startedAt,
        });
      if (this.cluster && c.transparent) this.loadOriginalDestination();
      // With workers the primary says (or refuses to start) when the tunnel relay asked for cannot be had.
      if (this.cluster) this.loadNativeRelay(c);
      const { proxy: proxyAddr, transparent: transparentAddr } = this.cluster
        ? await this.cluster.start(c, adminAddr.port)
        : await this.startServing(c, adminAddr);
      if (!this.cluster) this.metrics.proxyWorkers.set(1);
      this.addresses = { proxy: proxyAddr, admin: adminAddr, transparent: transparentAddr };
      this.listening = true;
      this.markReload(true);
      if (worker) {
        this.logger.info({ event: 'worker_started' }, 'proxy worker started');
        return this.addresses;
      }
      this.pipeline = new TelemetryPipeline({
        gatewayId: c.gateway.id,
        agentVersion: this.deps.version,
        startedAt: this.startedAt,
        inspect: c.inspect !== null,
        flushIntervalMs: c.telemetry.flush_interval,
        heartbeatIntervalMs: c.telemetry.heartbeat_interval,
        aggregator: this.aggregator,
        beforeDrain: async () => {
          this.path?.reportLive();
          await this.cluster?.collect();
        },
        sinks: this.sinksFor(c),
        spoolStats: () => this.shipping?.stats() ?? { batches: 0, bytes: 0 },
        extraCounts: () => ({ activeTunnels: this.activeTunnels }),
        metrics: this.metrics,
        logger: this.logger,
        now: this.now,
      });
      this.pipeline.start();
      this.shipping?.start();
      this.logger.info(
        {
          event: 'started',
          ...effectiveSettings(c),
          workers: this.workers,
          proxy_port: proxyAddr.port,
          admin_port: adminAddr.port,
          ...(transparentAddr ? { transparent_port: transparentAddr.port } : {}),
        },
        'egress-witness agent started',
      );
      return this.addresses;
    } catch (err) {
      // Undo what started, quietly: the caller logs start_failed, and "stopped" would read as if it ran.
      await this.stop(0, { quiet: true }).catch(() => undefined);
      throw err;
    }
  }

  /** This process's proxy (and transparent) listener, with the connection path behind them. */
  private async startServing(c: AgentConfig, adminAddr: AddressInfo): Promise<{ proxy: AddressInfo; transparent: AddressInfo | null }> {
    this.inspector = c.inspect ? await buildInspector(c, this.inspectorDeps()) : null;
    // Until the proxy is bound a port 0 is unknown; the settings are rebuilt with the real one below.
    this.self = [
      { ip: c.proxy.listen.host, port: c.proxy.listen.port },
      { ip: c.admin.listen.host, port: adminAddr.port },
    ];
    if (c.transparent) this.self.push({ ip: c.transparent.listen.host, port: c.transparent.listen.port });
    this.path = new ConnectionPath({
      settings: buildProxySettings(c, this.self, this.inspector?.inspector ?? null),
      recorder: this.recorder,
      metrics: this.metrics,
      logger: this.logger,
      deps: this.deps.dial ?? systemDialDeps,
      now: this.now,
      maxSocketsPerOrigin: c.upstream.max_connections_per_origin,
      keepAliveTimeoutMs: c.upstream.keep_alive_timeout,
      ...(this.deps.worker?.admission ? { admission: this.deps.worker.admission } : {}),
      ...(this.deps.worker ? { onTunnels: (n: number) => this.deps.worker?.relay.tunnelsChanged(n) } : {}),
      nativeRelay: this.loadNativeRelay(c),
    });
    this.proxy = new ForwardProxy({
      path: this.path,
      logger: this.logger,
      now: this.now,
      maxHeaderBytes: c.proxy.max_header_bytes,
      headerTimeoutMs: c.proxy.header_timeout,
    });
    const proxyAddr = await listenAt(
      'proxy.listen',
      this.proxy.server,
      c.proxy.listen.host,
      c.proxy.listen.port,
      undefined,
      this.deps.worker !== undefined,
    );
    const transparentAddr = c.transparent ? await this.startTransparent(c.transparent, c) : null;
    this.self = [
      { ip: c.proxy.listen.host, port: proxyAddr.port },
      { ip: c.admin.listen.host, port: adminAddr.port },
      ...(c.transparent && transparentAddr ? [{ ip: c.transparent.listen.host, port: transparentAddr.port }] : []),
    ];
    this.path.setSettings(buildProxySettings(c, this.self, this.inspector?.inspector ?? null));
    return { proxy: proxyAddr, transparent: transparentAddr };
  }

  /** The tunnel relay `proxy.tunnel_relay` asks for: "native" without the addon is a start-up error, "auto" says so. */
  private loadNativeRelay(c: AgentConfig): NativeRelay {
    const relay = loadNativeRelay(c.proxy.tunnel_relay);
    if (relay.available || c.proxy.tunnel_relay === 'js') return relay;
    const why = relay.unavailableReason ?? 'unknown';
    if (c.proxy.tunnel_relay === 'native') throw new Error(`proxy.tunnel_relay is "native" but ${why}`);
    if (!this.deps.worker)
      this.logger.warn({ event: 'native_relay_unavailable', reason: why }, `tunnels are relayed in JavaScript (${why})`);
    return relay;
  }

  /**
   * How redirected connections' original destinations are read; says once, at start, when they cannot be.
   * With workers the primary says it (and exports the gauge) for all of them: each worker loads its own.
   */
  private loadOriginalDestination(): OriginalDestinationReader {
    const reader = this.deps.originalDestination ?? loadOriginalDestinationReader();
    this.originalDestination = reader;
    if (this.deps.worker) return reader;
    this.metrics.transparentOriginalDestination.set(reader.available ? 1 : 0);
    if (!reader.available)
      this.logger.warn(
        { event: 'original_destination_unavailable', reason: reader.unavailableReason },
        `redirected connections' original destinations cannot be read (${reader.unavailableReason ?? 'unknown'}): the transparent listener assumes port 443 for TLS and 80 for HTTP and cannot report the address a client dialled`,
      );
    return reader;
  }

  private async startTransparent(t: NonNullable<AgentConfig['transparent']>, c: AgentConfig): Promise<AddressInfo> {
    const path = this.path;
    const proxy = this.proxy;
    if (!path || !proxy) throw new Error('the proxy is not running');
    const reader = this.loadOriginalDestination();
    this.transparent = new TransparentListener({
      path,
      httpServer: proxy,
      originalDestination: reader,
      metrics: this.metrics,
      logger: this.logger,
      now: this.now,
      headerTimeoutMs: c.proxy.header_timeout,
    });
    return listenAt(
      'transparent.listen',
      this.transparent.server,
      t.listen.host,
      t.listen.port,
      TRANSPARENT_BACKLOG,
      this.deps.worker !== undefined,
    );
  }

  /** The inspector's destination policy is passed in by the connection path (Inspector.usePolicy), on start and on every reload. */
  private inspectorDeps() {
    return {
      metrics: this.metrics,
      logger: this.logger,
      recorder: this.recorder,
      now: this.now,
      ...(this.deps.dial ? { dial: this.deps.dial } : {}),
      ...(this.deps.worker?.sharePassthrough ? { onPassthrough: this.deps.worker.sharePassthrough } : {}),
    };
  }

  private sinksFor(c: AgentConfig): RecordSink[] {
    const sinks: RecordSink[] = [];
    if (c.telemetry.file) sinks.push(new NdjsonFileSink(c.telemetry.file));
    if (this.shipping) sinks.push(this.shipping.sink);
    return sinks;
  }

  private markReload(ok: boolean): void {
    this.metrics.configReloadSuccessful.set(ok ? 1 : 0);
    if (!ok) return;
    this.metrics.configReloadTimestamp.set(Math.floor(this.now() / 1000));
    // With workers the primary holds the cap for all of them (cluster/tunnel-budget.ts).
    this.metrics.tunnelsMax.set(this.config.proxy.max_tunnels);
  }

  /**
   * Applies a newly loaded config. A failed load keeps the running config and
   * sets the reload gauge to 0; settings that need a restart are kept and logged.
   */
  async reload(result: { ok: true; value: AgentConfig } | { ok: false; problems: ConfigProblem[] }): Promise<boolean> {
    if (!result.ok) {
      this.markReload(false);
      this.logger.error(
        { event: 'reload_failed', problems: result.problems.map(formatProblem) },
        'configuration reload failed; keeping the running configuration',
      );
      return false;
    }
    const { effective: next, needsRestart } = applyHotReload(this.config, result.value, AGENT_HOT_KEYS);
    if (!(await this.applyServing(next))) {
      this.markReload(false);
      return false;
    }
    this.config = next;
    this.logger.level = this.deps.logLevelOverride ?? next.log.level;
    this.pipeline?.reconfigure({
      flushIntervalMs: next.telemetry.flush_interval,
      heartbeatIntervalMs: next.telemetry.heartbeat_interval,
      sinks: this.sinksFor(next),
      inspect: next.inspect !== null,
    });
    this.markReload(true);
    if (needsRestart.length > 0)
      this.logger.warn({ event: 'reload_partial', keys_needing_restart: needsRestart }, restartNeededMessage(needsRestart));
    else this.logger.info({ event: 'reloaded', ...effectiveSettings(next) }, 'configuration reloaded');
    return true;
  }

  /** Hands a reloaded config to the listeners' side: the workers, or this process's connection path. */
  private async applyServing(next: AgentConfig): Promise<boolean> {
    if (this.cluster) {
      if (await this.cluster.reload(next)) return true;
      this.logger.error(
        { event: 'reload_failed', reason: 'worker' },
        'configuration reload failed in a proxy worker (its log line says why); the workers that applied it keep the new configuration',
      );
      return false;
    }
    try {
      // The inspector (CA, leaf cache, upstream pool) is rebuilt only when what it is made of changed.
      const rebuild = inspectorInputs(next) !== inspectorInputs(this.config);
      const inspector = !rebuild ? this.inspector : next.inspect ? await buildInspector(next, this.inspectorDeps()) : null;
      this.path?.setSettings(buildProxySettings(next, this.self, inspector?.inspector ?? null));
      if (rebuild) {
        this.inspector?.close();
        this.inspector = inspector;
      }
      return true;
    } catch (err) {
      this.logger.error({ event: 'reload_failed', err }, 'configuration reload failed; keeping the running configuration');
      return false;
    }
  }

  /** Drains tunnels up to `drainMs`, flushes telemetry, closes everything. */
  async stop(drainMs = this.config.proxy.drain_timeout, o: { quiet?: boolean } = {}): Promise<void> {
    this.listening = false;
    if (this.cluster) {
      if (!o.quiet)
        this.logger.info(
          { event: 'draining', active_tunnels: this.cluster.activeTunnels, deadline_ms: drainMs, workers: this.workers },
          'draining',
        );
      await this.cluster.stop(drainMs);
    }
    if (this.path && this.proxy) {
      if (!o.quiet) this.logger.info({ event: 'draining', active_tunnels: this.path.activeTunnels, deadline_ms: drainMs }, 'draining');
      const listeners = this.transparent ? [this.proxy, this.transparent] : [this.proxy];
      const { remaining } = await this.path.drain(this.now() + drainMs, listeners, this.deps.worker?.drainTogether);
      if (remaining > 0)
        this.logger.warn({ event: 'drain_deadline', closed_tunnels: remaining }, 'drain deadline reached; closed the remaining tunnels');
    }
    this.inspector?.close();
    await this.pipeline?.stop();
    await this.shipping?.stop();
    if (!this.deps.worker) await closeServer(this.admin);
    if (!o.quiet)
      this.logger.info(
        { event: this.deps.worker ? 'worker_stopped' : 'stopped' },
        this.deps.worker ? 'proxy worker stopped' : 'egress-witness agent stopped',
      );
  }
}

/** What the inspector is built from; the upstream policy and overrides it reads live from the proxy. */
function inspectorInputs(c: AgentConfig): string {
  return JSON.stringify([
    c.inspect,
    c.upstream.ca_file,
    c.upstream.max_connections_per_origin,
    c.upstream.keep_alive_timeout,
    c.proxy.connect_timeout,
    c.proxy.idle_timeout,
    c.proxy.header_timeout,
  ]);
}

/** The start-up line: effective settings, secrets masked by the logger's redaction. */
function effectiveSettings(c: AgentConfig): Record<string, unknown> {
  return {
    gateway_id: c.gateway.id,
    egress_cidrs: c.gateway.egress_cidrs,
    networks: c.networks.map((n) => `${n.name}=${n.cidrs.join(',')}`),
    listen: c.proxy.listen.text,
    transparent_listen: c.transparent?.listen.text ?? null,
    admin_listen: c.admin.listen.text,
    allowed_ports: c.proxy.allowed_ports,
    allow_destination_cidrs: c.proxy.allow_destination_cidrs,
    max_tunnels: c.proxy.max_tunnels,
    tunnel_relay: c.proxy.tunnel_relay,
    connect_timeout: formatDuration(c.proxy.connect_timeout),
    idle_timeout: formatDuration(c.proxy.idle_timeout),
    inspect: c.inspect ? { hosts: c.inspect.hosts, passthrough: c.inspect.passthrough } : false,
    upstream_overrides: Object.keys(c.upstream.resolve).length,
    telemetry: {
      detector_url: c.telemetry.detector_url,
      file: c.telemetry.file,
      spool_dir: c.telemetry.spool_dir,
      flush_interval: formatDuration(c.telemetry.flush_interval),
      heartbeat_interval: formatDuration(c.telemetry.heartbeat_interval),
    },
  };
}

/** Writes the workers' log lines, as they are, where this process's own lines go. */
function logWriter(logger: Logger): (text: string) => void {
  const stream = (logger as unknown as Record<symbol, { write(s: string): unknown } | undefined>)[pino.symbols.streamSym];
  return (text) => void stream?.write(text);
}

/** One /metrics for the primary and its workers: the primary's own series, and the workers' added up. */
class AggregatedRegistry extends Registry {
  constructor(
    private readonly primary: Registry,
    private readonly cluster: WorkerSupervisor,
  ) {
    super();
  }

  private async aggregated(): Promise<Registry> {
    const [own, workers] = await Promise.all([this.primary.getMetricsAsJSON(), this.cluster.workerMetrics()]);
    return AggregatorRegistry.aggregate(metricsToAggregate(own, workers));
  }

  override async metrics(): Promise<string> {
    return (await this.aggregated()).metrics();
  }

  override async getMetricsAsJSON(): ReturnType<Registry['getMetricsAsJSON']> {
    return (await this.aggregated()).getMetricsAsJSON();
  }

  override async getSingleMetricAsString(name: string): Promise<string> {
    return (await this.aggregated()).getSingleMetricAsString(name);
  }

  /** The primary's metric object, its values (get()) those of the whole agent. */
  override getSingleMetric(name: string): ReturnType<Registry['getSingleMetric']> {
    const own = this.primary.getSingleMetric(name);
    if (!own) return undefined;
    const whole = async () => (await (await this.aggregated()).getSingleMetric(name)?.get()) ?? own.get();
    return Object.assign(Object.create(own) as typeof own, { get: whole });
  }
}

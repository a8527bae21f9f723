/**
 * The forward proxy listener: CONNECT tunnels, absolute-form plain HTTP,
 * and nothing else. Settings that SIGHUP may change live in one object that
 * is swapped atomically; requests already running keep the settings they
 * started with.
 *
 *   accept ─▶ admit client ─▶ parse target ─▶ port/DNS/address policy ─▶ dial checked address
 *      │            │ 403            │ 400              │ 403 / 502 / 504          │
 *      │            ▼                ▼                  ▼                           ▼
 *      └──── drain: stop accepting → wait for tunnels until the deadline → close the rest
 */
import http from 'node:http';
import { setMaxListeners } from 'node:events';
import type net from 'node:net';
import type { Logger } from '../../common/log/logger.js';
import type { ClientAdmission } from '../net/client-admission.js';
import type { DestinationPolicy } from '../net/address-policy.js';
import type { ResolveOverrides } from '../net/resolve-overrides.js';
import { parseAbsoluteUrl, parseConnectAuthority, type Target } from '../net/authority.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import type { EndpointInfo, ObservationEvent, Observer } from '../observe/model/observation.js';
import type { Outcome } from '../../protocol/telemetry.js';
import { connectFirst, resolveTarget, type Candidate, type DialDeps } from './dialer.js';
import { failureAnswer, failureHeaders, failureLabel, rawFailureResponse, type ProxyFailure } from './failures.js';
import { Tunnel } from './tunnel.js';
import { HttpForwarder } from './http-forward.js';
import { actionReader, type RequestDescription } from '../inspect/describe-request.js';

/** Hands an admitted, policy-checked CONNECT to TLS inspection. */
export interface Inspector {
  /** Whether to intercept this client's CONNECT to host:port (the automatic passthrough list is per client). */
  wants(host: string, port: number, clientIp: string): boolean;
  handle(client: net.Socket, head: Buffer, ctx: InspectContext): Promise<InspectSummary>;
}

export interface InspectContext {
  clientIp: string;
  network: string | null;
  target: Target;
  candidates: Candidate[];
  aws: EndpointInfo | null;
  startedAt: number;
}

/** What the inspector reports when it gives up on interception and wants a plain tunnel. */
export type InspectSummary = { kind: 'done' } | { kind: 'tunnel'; head: Buffer };

export interface ProxySettings {
  admission: ClientAdmission;
  policy: DestinationPolicy;
  overrides: ResolveOverrides;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxTunnels: number;
  classify: (host: string) => EndpointInfo | null;
  /** Attribution of a plain-HTTP request to `host` (key, action, scope service/region). */
  describeHttp: (req: http.IncomingMessage, path: string, host: string) => RequestDescription;
  inspector: Inspector | null;
}

export interface ProxyOptions {
  settings: ProxySettings;
  observer: Observer;
  metrics: AgentMetrics;
  logger: Logger;
  deps: DialDeps;
  now: () => number;
  maxHeaderBytes: number;
  headerTimeoutMs: number;
  upstreamTimeoutMs?: number;
  maxSocketsPerOrigin: number;
  keepAliveTimeoutMs: number;
}

const CONNECT_OK = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');

export class ForwardProxy {
  readonly server: http.Server;
  private settings: ProxySettings;
  private readonly tunnels = new Set<Tunnel>();
  private readonly inspecting = new Set<net.Socket>();
  private pendingConnects = 0;
  private readonly drainController = new AbortController();
  private readonly forwarder: HttpForwarder;

  constructor(private readonly opts: ProxyOptions) {
    this.settings = opts.settings;
    // Every dial in flight listens for the drain signal: thousands at once is normal, not a leak.
    setMaxListeners(0, this.drainController.signal);
    this.server = http.createServer({
      maxHeaderSize: opts.maxHeaderBytes,
      headersTimeout: opts.headerTimeoutMs,
      // Node checks header deadlines on this interval (default 30 s): keep it well under the timeout.
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(opts.headerTimeoutMs / 4))),
      requestTimeout: 0,
      keepAliveTimeout: 5_000,
      noDelay: true,
    });
    this.forwarder = new HttpForwarder({
      maxSocketsPerOrigin: opts.maxSocketsPerOrigin,
      keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
      upstreamTimeoutMs: opts.upstreamTimeoutMs ?? 120_000,
    });
    this.server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void this.onConnect(req, socket, head));
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void this.onRequest(req, res));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.onClientError(err, socket));
  }

  /** Swaps the reloadable settings; in-flight work keeps the old ones. */
  /** The settings new requests use (the inspector's upstream connector reads its policy here). */
  get currentSettings(): ProxySettings {
    return this.settings;
  }

  setSettings(settings: ProxySettings): void {
    this.settings = settings;
  }

  get activeTunnels(): number {
    return this.tunnels.size + this.inspecting.size;
  }

  private get draining(): boolean {
    return this.drainController.signal.aborted;
  }

  private refuse(socket: net.Socket, failure: ProxyFailure, kind: 'connect' | 'http' | 'invalid'): void {
    this.opts.metrics.proxyRequests.inc({ kind, outcome: failureAnswer(failure).outcome });
    if (failure.kind === 'destination-denied' || failure.kind === 'client-not-allowed' || failure.kind === 'tunnel-limit') {
      this.opts.metrics.denied.inc({ reason: failureLabel(failure) });
    }
    if (socket.writable) socket.end(rawFailureResponse(failure));
    socket.destroySoon?.();
  }

  private observeRefusal(
    base: Omit<ObservationEvent, 'endedAt' | 'outcome' | 'reason' | 'bytesUp' | 'bytesDown' | 'status' | 'resolvedIp' | 'key' | 'action'>,
    failure: ProxyFailure,
  ): void {
    this.opts.observer.observe({
      ...base,
      endedAt: this.opts.now(),
      outcome: failureAnswer(failure).outcome,
      reason: failureAnswer(failure).reason,
      bytesUp: 0,
      bytesDown: 0,
      status: failureAnswer(failure).status,
      resolvedIp: null,
      key: null,
      action: null,
    });
  }

  private async onConnect(req: http.IncomingMessage, client: net.Socket, head: Buffer): Promise<void> {
    const startedAt = this.opts.now();
    const settings = this.settings;
    client.on('error', () => undefined); // ECONNRESET/EPIPE from a client must never crash the agent
    const admission = settings.admission.admit(client.remoteAddress);
    if (!admission.admitted) {
      this.opts.logger.warn(
        { event: 'client_denied', client_ip: admission.clientIp, request: 'CONNECT' },
        'client not in proxy.allowed_clients',
      );
      return this.refuse(client, { kind: 'client-not-allowed' }, 'connect');
    }
    if (this.draining) return this.refuse(client, { kind: 'draining' }, 'connect');
    const target = parseConnectAuthority(req.url ?? '');
    if (!target) return this.refuse(client, { kind: 'bad-request', reason: 'bad-authority' }, 'invalid');
    if (this.activeTunnels + this.pendingConnects >= settings.maxTunnels) {
      this.opts.logger.warn(
        { event: 'tunnel_limit', client_ip: admission.clientIp, max_tunnels: settings.maxTunnels },
        'tunnel limit reached',
      );
      return this.refuse(client, { kind: 'tunnel-limit' }, 'connect');
    }
    const aws = settings.classify(target.host);
    const base = {
      startedAt,
      clientIp: admission.clientIp,
      network: admission.network,
      mode: 'tunnel' as const,
      host: target.host,
      port: target.port,
      aws,
    };
    this.pendingConnects++;
    let next:
      | { kind: 'refuse'; failure: ProxyFailure }
      | { kind: 'inspect'; candidates: Candidate[] }
      | { kind: 'tunnel'; upstream: net.Socket; ip: string };
    try {
      next = await this.dialForTunnel(target, settings, admission.clientIp);
    } finally {
      this.pendingConnects--;
    }
    if (next.kind === 'refuse') {
      this.observeRefusal(base, next.failure);
      return this.refuse(client, next.failure, 'connect');
    }
    if (next.kind === 'inspect' && settings.inspector) {
      return this.inspect(
        settings.inspector,
        client,
        head,
        { clientIp: admission.clientIp, network: admission.network, target, candidates: next.candidates, aws, startedAt },
        base,
      );
    }
    if (next.kind !== 'tunnel') return;
    if (client.destroyed) {
      next.upstream.destroy();
      return;
    }
    client.write(CONNECT_OK);
    this.opts.metrics.proxyRequests.inc({ kind: 'connect', outcome: 'ok' });
    await this.runTunnel(client, next.upstream, head, { ...base, resolvedIp: next.ip });
  }

  private async dialForTunnel(
    target: Target,
    settings: ProxySettings,
    clientIp: string,
  ): Promise<
    | { kind: 'refuse'; failure: ProxyFailure }
    | { kind: 'inspect'; candidates: Candidate[] }
    | { kind: 'tunnel'; upstream: net.Socket; ip: string }
  > {
    const resolution = await resolveTarget(target, {
      overrides: settings.overrides,
      policy: settings.policy,
      deps: this.opts.deps,
      lookupTimeoutMs: settings.connectTimeoutMs,
    });
    if (!resolution.ok) return { kind: 'refuse', failure: resolution.failure };
    if (settings.inspector?.wants(target.host, target.port, clientIp)) return { kind: 'inspect', candidates: resolution.candidates };
    const dialStart = this.opts.now();
    const dial = await connectFirst(resolution.candidates, settings.connectTimeoutMs, this.opts.deps, this.drainController.signal);
    if (!dial.ok) {
      this.opts.logger.info(
        { event: 'connect_failed', client_ip: clientIp, host: target.host, port: target.port, reason: failureAnswer(dial.failure).reason },
        'upstream connect failed',
      );
      return { kind: 'refuse', failure: dial.failure };
    }
    this.opts.metrics.connectDuration.observe((this.opts.now() - dialStart) / 1000);
    return { kind: 'tunnel', upstream: dial.socket, ip: dial.ip };
  }

  private async runTunnel(
    client: net.Socket,
    upstream: net.Socket,
    head: Buffer,
    base: Omit<ObservationEvent, 'endedAt' | 'outcome' | 'reason' | 'bytesUp' | 'bytesDown' | 'status' | 'key' | 'action'>,
  ): Promise<void> {
    const tunnel = new Tunnel(client, upstream, { idleTimeoutMs: this.settings.idleTimeoutMs, now: this.opts.now, head });
    this.tunnels.add(tunnel);
    this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    const result = await tunnel.finished;
    this.tunnels.delete(tunnel);
    this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    this.opts.observer.observe({
      ...base,
      endedAt: result.endedAt,
      outcome: result.outcome,
      reason: result.reason,
      bytesUp: result.bytesUp,
      bytesDown: result.bytesDown,
      status: null,
      key: null,
      action: null,
    });
  }

  private async inspect(
    inspector: Inspector,
    client: net.Socket,
    head: Buffer,
    ctx: InspectContext,
    base: Omit<ObservationEvent, 'endedAt' | 'outcome' | 'reason' | 'bytesUp' | 'bytesDown' | 'status' | 'resolvedIp' | 'key' | 'action'>,
  ): Promise<void> {
    client.write(CONNECT_OK);
    this.opts.metrics.proxyRequests.inc({ kind: 'connect', outcome: 'ok' });
    this.inspecting.add(client);
    this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    let summary: InspectSummary;
    try {
      summary = await inspector.handle(client, head, ctx);
    } catch (err) {
      this.opts.logger.error({ event: 'inspect_error', err, host: ctx.target.host }, 'inspection failed');
      client.destroy();
      summary = { kind: 'done' };
    } finally {
      this.inspecting.delete(client);
      this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    }
    if (summary.kind === 'tunnel' && !client.destroyed) {
      // The client would not accept interception (pinning, h2-only): fall back to a plain tunnel.
      this.pendingConnects++;
      const dial = await connectFirst(ctx.candidates, this.settings.connectTimeoutMs, this.opts.deps, this.drainController.signal).finally(
        () => this.pendingConnects--,
      );
      if (!dial.ok) {
        client.destroy();
        this.observeRefusal(base, dial.failure);
        return;
      }
      await this.runTunnel(client, dial.socket, summary.head, { ...base, resolvedIp: dial.ip });
    }
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const startedAt = this.opts.now();
    const settings = this.settings;
    const reply = (failure: ProxyFailure, kind: 'http' | 'invalid'): void => {
      const a = failureAnswer(failure);
      this.opts.metrics.proxyRequests.inc({ kind, outcome: a.outcome });
      if (failure.kind === 'destination-denied' || failure.kind === 'client-not-allowed')
        this.opts.metrics.denied.inc({ reason: failureLabel(failure) });
      res.shouldKeepAlive = false;
      res.writeHead(a.status, failureHeaders(failure)).end(`${a.reason}\n`);
      req.resume();
    };
    const admission = settings.admission.admit(req.socket.remoteAddress);
    if (!admission.admitted) {
      this.opts.logger.warn(
        { event: 'client_denied', client_ip: admission.clientIp, request: req.method },
        'client not in proxy.allowed_clients',
      );
      return reply({ kind: 'client-not-allowed' }, 'http');
    }
    const url = req.url ?? '';
    if (url.startsWith('/') || url === '*') return reply({ kind: 'bad-request', reason: 'origin-form' }, 'invalid');
    const parsed = parseAbsoluteUrl(url);
    if ('error' in parsed) return reply({ kind: 'bad-request', reason: parsed.error }, 'invalid');
    if (this.draining) return reply({ kind: 'draining' }, 'http');
    const aws0 = settings.classify(parsed.host);
    const base = {
      startedAt,
      clientIp: admission.clientIp,
      network: admission.network,
      mode: 'http' as const,
      host: parsed.host,
      port: parsed.port,
      aws: aws0,
    };
    const resolution = await resolveTarget(parsed, {
      overrides: settings.overrides,
      policy: settings.policy,
      deps: this.opts.deps,
      lookupTimeoutMs: settings.connectTimeoutMs,
    });
    if (!resolution.ok) {
      this.observeRefusal(base, resolution.failure);
      return reply(resolution.failure, 'http');
    }
    const candidate = resolution.candidates[0] as Candidate;
    const described = settings.describeHttp(req, parsed.path, parsed.host);
    const reader = actionReader(described);
    if (reader.peek) req.on('data', reader.peek);
    if (described.aws && !described.key) this.opts.metrics.unattributedRequests.inc({ reason: described.unattributed ?? 'unsigned' });
    req.url = parsed.path;
    const result = await this.forwarder.forward(req, res, candidate.ip, candidate.port, settings.connectTimeoutMs);
    const outcome: Outcome = result.failure ? failureAnswer(result.failure).outcome : 'ok';
    this.opts.metrics.proxyRequests.inc({ kind: 'http', outcome });
    this.opts.observer.observe({
      ...base,
      aws: described.aws,
      key: described.key,
      action: reader.action(),
      endedAt: this.opts.now(),
      resolvedIp: candidate.ip,
      bytesUp: result.bytesUp,
      bytesDown: result.bytesDown,
      outcome,
      reason: result.failure ? failureAnswer(result.failure).reason : null,
      status: result.status,
    });
  }

  private onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const reason =
      code === 'HPE_HEADER_OVERFLOW' ? 'header-too-large' : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'header-timeout' : 'malformed';
    this.refuse(socket, { kind: 'bad-request', reason }, 'invalid');
  }

  /**
   * Stops accepting, lets tunnels finish until `deadline` (Unix ms), then
   * closes the rest (recorded with outcome `drained`).
   */
  async drain(deadline: number): Promise<{ remaining: number }> {
    this.drainController.abort();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    while (this.activeTunnels > 0 && this.opts.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      this.server.closeIdleConnections();
    }
    const remaining = this.activeTunnels;
    for (const t of this.tunnels) t.abort('drained');
    for (const s of this.inspecting) s.destroy();
    this.server.closeAllConnections();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, 1_000)))]);
    clearTimeout(timer);
    // Let the aborted tunnels report their observations before the caller flushes.
    while (this.tunnels.size > 0) await new Promise((r) => setTimeout(r, 5));
    this.forwarder.close();
    return { remaining };
  }
}

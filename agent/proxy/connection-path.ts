/**
 * The one path every admitted connection takes once its listener knows the
 * target, whichever listener it came through: an explicit CONNECT or
 * absolute-form request (proxy-server.ts), or a connection the kernel
 * redirected (transparent-listener.ts). Decide, dial, tunnel or inspect,
 * record — one proxy-requests increment, at most one observation per tunnel
 * or request (and so one canonical line), whichever way in.
 *
 *   tunnel(): draining? ─▶ tunnel cap ─▶ resolve + check every address ─┬─ inspect? ─▶ inspector ─▶ (tunnel on fallback)
 *                 │503          │503              │403 / 502 / 504    └─ dial the checked address ─▶ Tunnel ─▶ observe
 *                 └──────────────┴─────────────────┴──▶ entry.refuse(): HTTP answer (CONNECT) or TLS alert (redirected)
 *   http():   resolve + check ─▶ forward to the checked address ─▶ observe
 *
 * The listeners own admission (the client's address) and target parsing;
 * this file owns the settings, the live tunnels and the drain signal.
 */
import type http from 'node:http';
import { setMaxListeners } from 'node:events';
import type net from 'node:net';
import type { Logger } from '../../common/log/logger.js';
import { canonicalIp } from '../../common/cidr/ip.js';
import type { AbsoluteTarget, Target } from '../net/authority.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import type { ObservationEvent, Observer } from '../observe/model/observation.js';
import type { Outcome } from '../../protocol/telemetry.js';
import { actionReader } from '../aws/describe-request.js';
import { connectFirst, resolveTarget, type Candidate, type DialDeps } from './dialer.js';
import { failureAnswer, failureHeaders, failureLabel, type ProxyFailure } from './failures.js';
import { Tunnel } from './tunnel.js';
import { LIVE_REPORT_INTERVAL_MS, ReportWindow } from './report-window.js';
import { HttpForwarder } from './http-forward.js';
import type { ConnectionContext, Drainable, InspectSummary, ProxySettings, TunnelEntry } from './connection-types.js';

export type {
  ConnectionContext,
  Drainable,
  Inspector,
  InspectContext,
  InspectSummary,
  ProxySettings,
  TunnelEntry,
} from './connection-types.js';

export interface PathOptions {
  settings: ProxySettings;
  observer: Observer;
  metrics: AgentMetrics;
  logger: Logger;
  deps: DialDeps;
  now: () => number;
  upstreamTimeoutMs?: number;
  maxSocketsPerOrigin: number;
  keepAliveTimeoutMs: number;
  /** How old a live tunnel's report window must be before reportLive() reports it (report-window.ts). */
  liveReportIntervalMs?: number;
}

type TunnelBase = Omit<ObservationEvent, 'endedAt' | 'outcome' | 'reason' | 'bytesUp' | 'bytesDown' | 'status' | 'key' | 'action'>;

interface LiveTunnel {
  base: TunnelBase;
  window: ReportWindow;
}

type Base = Omit<ObservationEvent, 'endedAt' | 'outcome' | 'reason' | 'bytesUp' | 'bytesDown' | 'status' | 'resolvedIp' | 'key' | 'action'>;

type Dialled =
  | { kind: 'refuse'; failure: ProxyFailure; originalIp: string | null }
  | { kind: 'inspect'; candidates: Candidate[]; originalIp: string | null }
  | { kind: 'tunnel'; upstream: net.Socket; ip: string; originalIp: string | null };

export class ConnectionPath {
  private settingsNow: ProxySettings;
  private readonly tunnels = new Map<Tunnel, LiveTunnel>();
  private readonly inspecting = new Set<net.Socket>();
  private pendingConnects = 0;
  private readonly drainController = new AbortController();
  private readonly forwarder: HttpForwarder;

  constructor(private readonly opts: PathOptions) {
    this.settingsNow = opts.settings;
    // Every dial in flight listens for the drain signal: thousands at once is normal, not a leak.
    setMaxListeners(0, this.drainController.signal);
    this.forwarder = new HttpForwarder({
      maxSocketsPerOrigin: opts.maxSocketsPerOrigin,
      keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
      upstreamTimeoutMs: opts.upstreamTimeoutMs ?? 120_000,
    });
  }

  /** The settings new connections use; in-flight ones keep those they started with. */
  get settings(): ProxySettings {
    return this.settingsNow;
  }

  setSettings(settings: ProxySettings): void {
    this.settingsNow = settings;
  }

  get activeTunnels(): number {
    return this.tunnels.size + this.inspecting.size;
  }

  get draining(): boolean {
    return this.drainController.signal.aborted;
  }

  /** Counts a refusal (one proxy_requests increment; denied_total for policy refusals). */
  countRefusal(kind: 'connect' | 'transparent' | 'http' | 'transparent_http' | 'invalid', failure: ProxyFailure): void {
    this.opts.metrics.proxyRequests.inc({ kind, outcome: failureAnswer(failure).outcome });
    if (failure.kind === 'destination-denied' || failure.kind === 'client-not-allowed' || failure.kind === 'tunnel-limit')
      this.opts.metrics.denied.inc({ reason: failureLabel(failure) });
  }

  private observeRefusal(base: Base, failure: ProxyFailure, originalIp: string | null): void {
    const a = failureAnswer(failure);
    this.opts.observer.observe({
      ...base,
      originalIp,
      endedAt: this.opts.now(),
      outcome: a.outcome,
      reason: a.reason,
      bytesUp: 0,
      bytesDown: 0,
      status: a.status,
      resolvedIp: null,
      key: null,
      action: null,
    });
  }

  /**
   * The original destination when it is known and not among the checked
   * addresses (the agent connects to those regardless); counted when the
   * connection goes on.
   */
  private originalIpFor(ctx: ConnectionContext, candidates: readonly Candidate[] | null): string | null {
    const original = ctx.originalDestination;
    if (original === null) return null;
    const want = canonicalIp(original.address);
    if (candidates !== null && candidates.some((c) => canonicalIp(c.ip) === want)) return null;
    return want ?? original.address;
  }

  /** An admitted client's tunnel to `target`: cap, policy, inspect or dial, pipe, observe. */
  async tunnel(client: net.Socket, head: Buffer, target: Target, ctx: ConnectionContext, entry: TunnelEntry): Promise<void> {
    const settings = this.settingsNow;
    if (this.draining) return this.refuse(client, entry, { kind: 'draining' });
    if (this.activeTunnels + this.pendingConnects >= settings.maxTunnels) {
      this.opts.logger.warn(
        { event: 'tunnel_limit', client_ip: ctx.clientIp, capture: ctx.capture, max_tunnels: settings.maxTunnels },
        'tunnel limit reached',
      );
      return this.refuse(client, entry, { kind: 'tunnel-limit' });
    }
    const aws = settings.classify(target.host);
    const base: Base = {
      startedAt: ctx.startedAt,
      clientIp: ctx.clientIp,
      network: ctx.network,
      mode: 'tunnel',
      capture: ctx.capture,
      originalIp: null,
      host: target.host,
      port: target.port,
      aws,
    };
    this.pendingConnects++;
    let next: Dialled;
    try {
      next = await this.dialForTunnel(target, settings, ctx);
    } finally {
      this.pendingConnects--;
    }
    if (next.kind === 'refuse') {
      this.observeRefusal(base, next.failure, next.originalIp);
      return this.refuse(client, entry, next.failure);
    }
    if (next.originalIp !== null) this.opts.metrics.transparentOriginalMismatch.inc();
    const observed: Base = { ...base, originalIp: next.originalIp };
    if (next.kind === 'inspect' && settings.inspector) {
      entry.established(client);
      this.opts.metrics.proxyRequests.inc({ kind: entry.kind, outcome: 'ok' });
      return this.inspect(settings, client, head, next.candidates, target, ctx, observed);
    }
    if (next.kind !== 'tunnel') return;
    if (client.destroyed) {
      next.upstream.destroy();
      return;
    }
    entry.established(client);
    this.opts.metrics.proxyRequests.inc({ kind: entry.kind, outcome: 'ok' });
    await this.runTunnel(client, next.upstream, head, { ...observed, resolvedIp: next.ip });
  }

  private refuse(client: net.Socket, entry: TunnelEntry, failure: ProxyFailure): void {
    this.countRefusal(entry.kind, failure);
    entry.refuse(client, failure);
  }

  private async dialForTunnel(target: Target, settings: ProxySettings, ctx: ConnectionContext): Promise<Dialled> {
    const resolution = await resolveTarget(target, {
      overrides: settings.overrides,
      policy: settings.policy,
      deps: this.opts.deps,
      lookupTimeoutMs: settings.connectTimeoutMs,
    });
    if (!resolution.ok) return { kind: 'refuse', failure: resolution.failure, originalIp: this.originalIpFor(ctx, null) };
    const originalIp = this.originalIpFor(ctx, resolution.candidates);
    if (settings.inspector?.wants(target.host, target.port, ctx.clientIp))
      return { kind: 'inspect', candidates: resolution.candidates, originalIp };
    const dialStart = this.opts.now();
    const dial = await connectFirst(resolution.candidates, settings.connectTimeoutMs, this.opts.deps, this.drainController.signal);
    if (!dial.ok) {
      this.opts.logger.info(
        {
          event: 'connect_failed',
          client_ip: ctx.clientIp,
          host: target.host,
          port: target.port,
          capture: ctx.capture,
          reason: failureAnswer(dial.failure).reason,
        },
        'upstream connect failed',
      );
      return { kind: 'refuse', failure: dial.failure, originalIp };
    }
    this.opts.metrics.connectDuration.observe((this.opts.now() - dialStart) / 1000);
    return { kind: 'tunnel', upstream: dial.socket, ip: dial.ip, originalIp };
  }

  private async runTunnel(client: net.Socket, upstream: net.Socket, head: Buffer, base: TunnelBase): Promise<void> {
    const tunnel = new Tunnel(client, upstream, { idleTimeoutMs: this.settingsNow.idleTimeoutMs, now: this.opts.now, head });
    const live: LiveTunnel = { base, window: new ReportWindow(base.startedAt) };
    this.tunnels.set(tunnel, live);
    this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    const result = await tunnel.finished;
    this.tunnels.delete(tunnel);
    this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    const common = { status: null, key: null, action: null, outcome: result.outcome, reason: result.reason };
    if (live.window.reported === 0) {
      // Never reported while it lived: one observation, the whole tunnel.
      this.opts.observer.observe({
        ...base,
        ...common,
        endedAt: result.endedAt,
        bytesUp: result.bytesUp,
        bytesDown: result.bytesDown,
      });
      return;
    }
    const w = live.window.take(result.endedAt, result.bytesUp, result.bytesDown);
    this.opts.observer.observe({
      ...base,
      ...common,
      startedAt: w.startedAt,
      endedAt: w.endedAt,
      bytesUp: w.bytesUp,
      bytesDown: w.bytesDown,
      connection: { startedAt: base.startedAt, bytesUp: result.bytesUp, bytesDown: result.bytesDown, final: true },
    });
  }

  /**
   * Reports every live tunnel whose report window is at least the live-report
   * interval old: that window's bytes and times, outcome `ok` (the tunnel is
   * still up), and opens the next window. Called before each telemetry flush,
   * so a tunnel open for hours gives one observation per window instead of a
   * single one, at close, spanning hours (report-window.ts).
   */
  reportLive(): void {
    const now = this.opts.now();
    const interval = this.opts.liveReportIntervalMs ?? LIVE_REPORT_INTERVAL_MS;
    for (const [tunnel, live] of this.tunnels) {
      if (!live.window.due(now, interval)) continue;
      const bytes = tunnel.bytes;
      const w = live.window.take(now, bytes.up, bytes.down);
      this.opts.observer.observe({
        ...live.base,
        startedAt: w.startedAt,
        endedAt: w.endedAt,
        bytesUp: w.bytesUp,
        bytesDown: w.bytesDown,
        outcome: 'ok',
        reason: null,
        status: null,
        key: null,
        action: null,
        connection: { startedAt: live.base.startedAt, bytesUp: bytes.up, bytesDown: bytes.down, final: false },
      });
    }
  }

  private async inspect(
    settings: ProxySettings,
    client: net.Socket,
    head: Buffer,
    candidates: Candidate[],
    target: Target,
    ctx: ConnectionContext,
    base: Base,
  ): Promise<void> {
    // The live inspector, not the one read before the dial: a reload during the dial may have retired
    // that one (it closes its upstream pool once its last connection has ended).
    const inspector = this.settingsNow.inspector ?? settings.inspector;
    if (!inspector) return;
    this.inspecting.add(client);
    this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    let summary: InspectSummary;
    try {
      summary = await inspector.handle(client, head, {
        clientIp: ctx.clientIp,
        network: ctx.network,
        capture: ctx.capture,
        originalIp: base.originalIp,
        target,
        candidates,
        aws: base.aws,
        startedAt: ctx.startedAt,
      });
    } catch (err) {
      this.opts.logger.error({ event: 'inspect_error', err, host: target.host }, 'inspection failed');
      client.destroy();
      summary = { kind: 'done' };
    } finally {
      this.inspecting.delete(client);
      this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    }
    if (summary.kind === 'tunnel' && !client.destroyed) {
      // The client would not accept interception (pinning, h2-only): fall back to a plain tunnel.
      this.pendingConnects++;
      const dial = await connectFirst(candidates, this.settingsNow.connectTimeoutMs, this.opts.deps, this.drainController.signal).finally(
        () => this.pendingConnects--,
      );
      if (!dial.ok) {
        client.destroy();
        this.observeRefusal(base, dial.failure, base.originalIp);
        return;
      }
      await this.runTunnel(client, dial.socket, summary.head, { ...base, resolvedIp: dial.ip });
    }
  }

  /**
   * One plain-HTTP request of an admitted client to `target` (whose `path`
   * is origin-form): policy, forward to the checked address, observe. Every
   * answer, refusals included, is an HTTP response.
   */
  async http(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    target: AbsoluteTarget,
    ctx: ConnectionContext,
    kind: 'http' | 'transparent_http',
  ): Promise<void> {
    const settings = this.settingsNow;
    if (this.draining) return this.reply(req, res, { kind: 'draining' }, kind);
    const base: Base = {
      startedAt: ctx.startedAt,
      clientIp: ctx.clientIp,
      network: ctx.network,
      mode: 'http',
      capture: ctx.capture,
      originalIp: null,
      host: target.host,
      port: target.port,
      aws: settings.classify(target.host),
    };
    const resolution = await resolveTarget(target, {
      overrides: settings.overrides,
      policy: settings.policy,
      deps: this.opts.deps,
      lookupTimeoutMs: settings.connectTimeoutMs,
    });
    if (!resolution.ok) {
      this.observeRefusal(base, resolution.failure, this.originalIpFor(ctx, null));
      return this.reply(req, res, resolution.failure, kind);
    }
    const originalIp = this.originalIpFor(ctx, resolution.candidates);
    if (originalIp !== null) this.opts.metrics.transparentOriginalMismatch.inc();
    const candidate = resolution.candidates[0] as Candidate;
    const described = settings.describeHttp(req, target.path, target.host);
    const reader = actionReader(described);
    if (reader.peek) req.on('data', reader.peek);
    if (described.aws && !described.key) this.opts.metrics.unattributedRequests.inc({ reason: described.unattributed ?? 'unsigned' });
    req.url = target.path;
    const result = await this.forwarder.forward(req, res, candidate.ip, candidate.port, settings.connectTimeoutMs);
    const outcome: Outcome = result.failure ? failureAnswer(result.failure).outcome : 'ok';
    this.opts.metrics.proxyRequests.inc({ kind, outcome });
    this.opts.observer.observe({
      ...base,
      originalIp,
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

  /** An HTTP refusal: counted, answered with the reason header, the connection closed after it. */
  reply(req: http.IncomingMessage, res: http.ServerResponse, failure: ProxyFailure, kind: 'http' | 'transparent_http' | 'invalid'): void {
    const a = failureAnswer(failure);
    this.countRefusal(kind, failure);
    res.shouldKeepAlive = false;
    res.writeHead(a.status, failureHeaders(failure)).end(`${a.reason}\n`);
    req.resume();
  }

  /**
   * Stops the listeners accepting, lets tunnels finish until `deadline`
   * (Unix ms), then closes the rest (recorded with outcome `drained`); every
   * tunnel has reported its observation when this resolves.
   */
  async drain(deadline: number, listeners: readonly Drainable[]): Promise<{ remaining: number }> {
    this.drainController.abort();
    const closed = Promise.all(listeners.map((l) => l.stopAccepting()));
    while (this.activeTunnels > 0 && this.opts.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      for (const l of listeners) l.closeIdle();
    }
    const remaining = this.activeTunnels;
    for (const t of this.tunnels.keys()) t.abort('drained');
    for (const s of this.inspecting) s.destroy();
    for (const l of listeners) l.closeAll();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, 1_000)))]);
    clearTimeout(timer);
    while (this.tunnels.size > 0) await new Promise((r) => setTimeout(r, 5));
    this.forwarder.close();
    return { remaining };
  }
}

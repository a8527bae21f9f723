/**
 * The one path every admitted connection takes once its listener knows the
 * target, whichever listener it came through: an explicit CONNECT or
 * absolute-form request (proxy-server.ts), or a connection the kernel
 * redirected (transparent-listener.ts). Decide, dial, tunnel or inspect,
 * and fill in the connection's one record (observe/model/request-record.ts),
 * refusals included, handed to the recorder once when it ends: one decision
 * line, one proxy-requests increment, at most one observation (a long-lived
 * tunnel: one per report window), whichever way in.
 *
 *   tunnel(): draining? ─▶ tunnel cap ─▶ resolve + check every address ─┬─ inspect? ─▶ inspector ─▶ (tunnel on fallback)
 *                 │503          │503              │403 / 502 / 504    └─ dial the checked address ─▶ Tunnel ─▶ observe
 *                 └──────────────┴─────────────────┴──▶ entry.refuse(): HTTP answer (CONNECT) or TLS alert (redirected)
 *   http():   resolve + check every address ─▶ undici, new connections to the checked addresses in order ─▶ observe
 *                    │403 / 502 / 504 (the answer, nothing dialled)
 *
 * The listeners own admission (the client's address) and target parsing;
 * this file owns the settings, the live tunnels and the drain signal.
 */
import type http from 'node:http';
import { setMaxListeners } from 'node:events';
import type net from 'node:net';
import type { Logger } from '../../common/log/logger.js';
import { canonicalIp } from '../../common/cidr/ip.js';
import { headAmbiguity, hostHeaderOf, HTTP_DEFAULT_PORT, type AbsoluteTarget, type Target } from '../net/authority.js';
import type { AgentMetrics } from '../metrics/metrics.js';
import { newRecord, type RequestRecord, type RequestRecorder } from '../observe/model/request-record.js';
import { actionReader } from '../aws/describe-request.js';
import { connectFirst, resolveTarget, type Candidate, type DialDeps } from './dialer.js';
import { answerRefusal, failureAnswer, fillRefusal, type ProxyFailure } from './failures.js';
import { Tunnel, type RelayedTunnel } from './tunnel.js';
import type { NativeRelay } from './native-relay.js';
import { RelayReads } from './relay-reads.js';
import { LIVE_REPORT_INTERVAL_MS, ReportWindow } from './report-window.js';
import { HttpForwarder } from './http-forward.js';
import type { ConnectionContext, Drainable, Inspector, InspectSummary, ProxySettings, TunnelEntry } from './connection-types.js';

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
  recorder: RequestRecorder;
  metrics: AgentMetrics;
  logger: Logger;
  deps: DialDeps;
  now: () => number;
  upstreamTimeoutMs?: number;
  maxSocketsPerOrigin: number;
  keepAliveTimeoutMs: number;
  /** How old a live tunnel's report window must be before reportLive() reports it (report-window.ts). */
  liveReportIntervalMs?: number;
  /**
   * The tunnel cap when it is shared with other processes (a proxy worker's lease, cluster/tunnel-budget.ts);
   * unset: settings.maxTunnels over this process's tunnels.
   */
  admission?: { take(): boolean | Promise<boolean>; give(): void };
  /** Carries tunnels in native code when it can (native-relay.ts); unset or unavailable: the JavaScript relay. */
  nativeRelay?: NativeRelay;
  /** Told the open-tunnel count whenever it changes (a proxy worker's primary, when it wants it as it happens). */
  onTunnels?: (n: number) => void;
}

/**
 * A drain shared with other processes (proxy workers): this one says when its own tunnels are gone,
 * and keeps answering (503 draining) until the others' are gone too, or the deadline.
 */
export interface DrainTogether {
  idle(): void;
  othersDone(): boolean;
}

type Dialled =
  | { kind: 'refuse'; failure: ProxyFailure; originalIp: string | null }
  | { kind: 'inspect'; candidates: Candidate[]; originalIp: string | null }
  | { kind: 'tunnel'; upstream: net.Socket; reads: RelayReads; ip: string; originalIp: string | null };

interface LiveTunnel {
  record: RequestRecord;
  window: ReportWindow;
}

export class ConnectionPath {
  private settingsNow: ProxySettings;
  private readonly tunnels = new Map<RelayedTunnel, LiveTunnel>();
  private readonly inspecting = new Set<net.Socket>();
  private pendingConnects = 0;
  private readonly drainController = new AbortController();
  private readonly forwarder: HttpForwarder;
  /** Inspectors a reload replaced that still hold connections (they follow later policies too). */
  private readonly replacedInspectors = new Set<Inspector>();

  constructor(private readonly opts: PathOptions) {
    this.settingsNow = opts.settings;
    opts.settings.inspector?.usePolicy({ policy: opts.settings.policy, overrides: opts.settings.overrides });
    // Every dial in flight listens for the drain signal: thousands at once is normal, not a leak.
    setMaxListeners(0, this.drainController.signal);
    this.forwarder = new HttpForwarder({
      maxSocketsPerOrigin: opts.maxSocketsPerOrigin,
      keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
      upstreamTimeoutMs: opts.upstreamTimeoutMs ?? 120_000,
      deps: opts.deps,
      drain: this.drainController.signal,
      now: opts.now,
    });
  }

  /** The settings new connections use; in-flight ones keep those they started with. */
  get settings(): ProxySettings {
    return this.settingsNow;
  }

  /** New settings; the inspector they carry gets their destination policy for its upstream connections. */
  setSettings(settings: ProxySettings): void {
    const policyChanged = settings.policy !== this.settingsNow.policy || settings.overrides !== this.settingsNow.overrides;
    const previous = this.settingsNow.inspector;
    this.settingsNow = settings;
    // Pooled plain-HTTP connections were checked under the old policy: new requests get new ones.
    if (policyChanged) this.forwarder.renew();
    const live = { policy: settings.policy, overrides: settings.overrides };
    settings.inspector?.usePolicy(live);
    // Inspectors reloads replaced still serve the connections they hold, until the last one ends:
    // under the newest policy too.
    if (previous && previous !== settings.inspector) this.replacedInspectors.add(previous);
    for (const old of this.replacedInspectors) {
      if (old.finished) this.replacedInspectors.delete(old);
      else old.usePolicy(live);
    }
  }

  get activeTunnels(): number {
    return this.tunnels.size + this.inspecting.size;
  }

  private tunnelsChanged(): void {
    this.opts.metrics.tunnelsActive.set(this.activeTunnels);
    this.opts.onTunnels?.(this.activeTunnels);
  }

  get draining(): boolean {
    return this.drainController.signal.aborted;
  }

  /** Fills a refusal into the record and hands it over; the caller answers the client. */
  refused(record: RequestRecord, failure: ProxyFailure): void {
    fillRefusal(record, failure, this.opts.now());
    this.opts.recorder.record(record);
  }

  /** Hands over a record the caller has filled in (a redirected connection closed before it could be routed). */
  record(record: RequestRecord): void {
    this.opts.recorder.record(record);
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

  /** An admitted client's tunnel to `target`: cap, policy, inspect or dial, pipe, record. */
  async tunnel(client: net.Socket, head: Buffer, target: Target, ctx: ConnectionContext, entry: TunnelEntry): Promise<void> {
    const settings = this.settingsNow;
    const record = newRecord(entry.kind, 'tunnel', ctx, target, settings.classify(target.host));
    if (this.draining) return this.refuse(client, entry, record, { kind: 'draining' });
    const admission = this.opts.admission;
    const taken = admission ? admission.take() : this.activeTunnels + this.pendingConnects < settings.maxTunnels;
    if (!(taken === true || (taken !== false && (await taken)))) {
      this.opts.logger.warn(
        { event: 'tunnel_limit', client_ip: ctx.clientIp, capture: ctx.capture, max_tunnels: settings.maxTunnels },
        'tunnel limit reached',
      );
      return this.refuse(client, entry, record, { kind: 'tunnel-limit' });
    }
    if (!admission) return this.admitted(client, head, target, ctx, entry, settings, record);
    try {
      await this.admitted(client, head, target, ctx, entry, settings, record);
    } finally {
      admission.give();
    }
  }

  /** A tunnel within the cap: dial (or inspect), pipe, record. */
  private async admitted(
    client: net.Socket,
    head: Buffer,
    target: Target,
    ctx: ConnectionContext,
    entry: TunnelEntry,
    settings: ProxySettings,
    record: RequestRecord,
  ): Promise<void> {
    this.pendingConnects++;
    let next: Dialled;
    try {
      next = await this.dialForTunnel(target, settings, ctx);
    } finally {
      this.pendingConnects--;
    }
    record.originalIp = next.originalIp;
    if (next.kind === 'refuse') return this.refuse(client, entry, record, next.failure);
    if (next.originalIp !== null) this.opts.metrics.transparentOriginalMismatch.inc();
    if (next.kind === 'inspect') {
      entry.established(client);
      return this.inspect(settings, client, head, next.candidates, target, ctx, record);
    }
    record.resolvedIp = next.ip;
    if (client.destroyed) {
      // The client left while the agent dialled: nothing was carried.
      next.upstream.destroy();
      record.endedAt = this.opts.now();
      record.outcome = 'client_error';
      record.reason = 'client-error';
      return this.opts.recorder.record(record);
    }
    entry.established(client);
    await this.runTunnel(client, next.upstream, next.reads, head, record);
  }

  private refuse(client: net.Socket, entry: TunnelEntry, record: RequestRecord, failure: ProxyFailure): void {
    this.refused(record, failure);
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
    const reads = new RelayReads();
    const dial = await connectFirst(
      resolution.candidates,
      settings.connectTimeoutMs,
      this.opts.deps,
      this.drainController.signal,
      reads.onread,
    );
    if (!dial.ok) return { kind: 'refuse', failure: dial.failure, originalIp };
    this.opts.metrics.connectDuration.observe((this.opts.now() - dialStart) / 1000);
    return { kind: 'tunnel', upstream: dial.socket, reads, ip: dial.ip, originalIp };
  }

  private async runTunnel(client: net.Socket, upstream: net.Socket, reads: RelayReads, head: Buffer, record: RequestRecord): Promise<void> {
    record.mode = 'tunnel';
    record.observed = true;
    const idleTimeoutMs = this.settingsNow.idleTimeoutMs;
    const tunnel =
      this.opts.nativeRelay?.open(client, upstream, { head, reads, idleTimeoutMs, now: this.opts.now }) ??
      new Tunnel(client, upstream, { idleTimeoutMs, now: this.opts.now, head, reads });
    const live: LiveTunnel = { record, window: new ReportWindow(record.startedAt) };
    this.tunnels.set(tunnel, live);
    this.tunnelsChanged();
    const result = await tunnel.finished;
    this.tunnels.delete(tunnel);
    this.tunnelsChanged();
    record.endedAt = result.endedAt;
    record.outcome = result.outcome;
    record.reason = result.reason;
    record.bytesUp = result.bytesUp;
    record.bytesDown = result.bytesDown;
    // Reported in windows while it lived: the last window goes with the record, the rest already went.
    if (live.window.reported > 0) record.lastWindow = live.window.take(result.endedAt, result.bytesUp, result.bytesDown);
    this.opts.recorder.record(record);
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
      this.opts.recorder.window({ ...live.record, endedAt: now, bytesUp: bytes.up, bytesDown: bytes.down }, w);
    }
  }

  private async inspect(
    settings: ProxySettings,
    client: net.Socket,
    head: Buffer,
    candidates: Candidate[],
    target: Target,
    ctx: ConnectionContext,
    record: RequestRecord,
  ): Promise<void> {
    // The live inspector, not the one read before the dial: a reload during the dial may have retired
    // that one (it closes its upstream pool once its last connection has ended).
    const inspector = this.settingsNow.inspector ?? settings.inspector;
    // Its decrypted requests are records of their own; the connection is observed only if interception fails.
    record.mode = 'inspect';
    record.observed = false;
    const readBefore = client.bytesRead - head.length;
    const writtenBefore = client.bytesWritten;
    const carried = (): void => {
      record.bytesUp = client.bytesRead - readBefore;
      record.bytesDown = client.bytesWritten - writtenBefore;
    };
    if (!inspector) {
      client.destroy();
      record.endedAt = this.opts.now();
      record.outcome = 'client_error';
      record.reason = 'inspector-gone';
      return this.opts.recorder.record(record);
    }
    this.inspecting.add(client);
    this.tunnelsChanged();
    let summary: InspectSummary;
    try {
      summary = await inspector.handle(client, head, {
        clientIp: ctx.clientIp,
        network: ctx.network,
        capture: ctx.capture,
        originalIp: record.originalIp,
        target,
        candidates,
        aws: record.aws,
        startedAt: ctx.startedAt,
      });
    } catch (err) {
      this.opts.logger.error({ event: 'inspect_error', err, host: target.host }, 'inspection failed');
      client.destroy();
      summary = { kind: 'done', requests: 0, failure: 'inspect-error' };
    } finally {
      this.inspecting.delete(client);
      this.tunnelsChanged();
    }
    if (summary.kind === 'done') {
      carried();
      record.endedAt = this.opts.now();
      record.requests = summary.requests;
      if (summary.failure !== null) {
        record.outcome = 'tls_intercept_failed';
        record.reason = summary.failure;
        record.observed = true;
      }
      return this.opts.recorder.record(record);
    }
    // The client would not accept interception (pinning, h2-only): fall back to a plain tunnel.
    record.mode = 'tunnel';
    record.observed = true;
    if (client.destroyed) {
      record.endedAt = this.opts.now();
      record.outcome = 'client_error';
      record.reason = 'client-error';
      return this.opts.recorder.record(record);
    }
    this.pendingConnects++;
    const reads = new RelayReads();
    const dial = await connectFirst(
      candidates,
      this.settingsNow.connectTimeoutMs,
      this.opts.deps,
      this.drainController.signal,
      reads.onread,
    ).finally(() => this.pendingConnects--);
    if (!dial.ok) {
      client.destroy();
      return this.refused(record, dial.failure);
    }
    record.resolvedIp = dial.ip;
    await this.runTunnel(client, dial.socket, reads, summary.head, record);
  }

  /**
   * One plain-HTTP request of an admitted client to `target` (whose `path`
   * is origin-form): policy, forward to the checked address, record. Every
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
    const record = newRecord(kind, 'http', ctx, target, settings.classify(target.host));
    if (this.draining) return this.reply(req, res, record, { kind: 'draining' });
    // A Host naming another host than the request-target is replaced (RFC 9112 §3.2.2) for an explicit
    // proxy's request: it is served as the host it is recorded for. Repeated Authorization or Host lines are refused.
    const ambiguity = headAmbiguity(req.rawHeaders, target);
    if (ambiguity !== null && ambiguity !== 'host-mismatch') {
      record.kind = 'invalid';
      return this.reply(req, res, record, { kind: 'bad-request', reason: ambiguity });
    }
    const resolution = await resolveTarget(target, {
      overrides: settings.overrides,
      policy: settings.policy,
      deps: this.opts.deps,
      lookupTimeoutMs: settings.connectTimeoutMs,
    });
    if (!resolution.ok) {
      record.originalIp = this.originalIpFor(ctx, null);
      return this.reply(req, res, record, resolution.failure);
    }
    record.originalIp = this.originalIpFor(ctx, resolution.candidates);
    if (record.originalIp !== null) this.opts.metrics.transparentOriginalMismatch.inc();
    const described = settings.describeHttp(req, target.path, target.host);
    const reader = actionReader(described);
    if (described.aws && !described.key) this.opts.metrics.unattributedRequests.inc({ reason: described.unattributed ?? 'unsigned' });
    const result = await this.forwarder.forward(req, res, target, resolution.candidates, {
      connectTimeoutMs: settings.connectTimeoutMs,
      peekBody: reader.peek,
      // A redirected request is routed by its own Host: a port other than the original one stays as signed.
      ...(ambiguity === 'host-mismatch' && kind === 'http' ? { host: hostHeaderOf(target, HTTP_DEFAULT_PORT) } : {}),
    });
    record.aws = described.aws;
    record.key = described.key;
    record.action = reader.action();
    record.endedAt = this.opts.now();
    record.resolvedIp = result.ip;
    record.bytesUp = result.bytesUp;
    record.bytesDown = result.bytesDown;
    record.status = result.status;
    if (result.failure) {
      const a = failureAnswer(result.failure);
      record.outcome = a.outcome;
      record.reason = a.reason;
    } else if (result.clientGone) {
      record.outcome = 'client_error';
      record.reason = 'client-error';
    }
    this.opts.recorder.record(record);
  }

  /** An HTTP refusal: recorded, answered with the reason header, the connection closed after it. */
  reply(req: http.IncomingMessage, res: http.ServerResponse, record: RequestRecord, failure: ProxyFailure): void {
    this.refused(record, failure);
    answerRefusal(req, res, failure);
  }

  /**
   * Stops the listeners accepting, lets tunnels finish until `deadline`
   * (Unix ms; with `together`, the other processes' tunnels too), then closes the rest (recorded with outcome `drained`); every
   * tunnel has reported its observation when this resolves.
   */
  async drain(deadline: number, listeners: readonly Drainable[], together?: DrainTogether): Promise<{ remaining: number }> {
    this.drainController.abort();
    const closed = Promise.all(listeners.map((l) => l.stopAccepting()));
    let idle = false;
    while (this.opts.now() < deadline) {
      if (this.activeTunnels === 0) {
        if (!idle) together?.idle();
        idle = true;
        if (!together || together.othersDone()) break;
      }
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

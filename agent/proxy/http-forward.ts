/**
 * Plain-HTTP forwarding of absolute-form requests (`GET http://host/path`,
 * and redirected plain HTTP) through undici, the stack inspected requests
 * use too (forward-request.ts), over a bounded keep-alive pool per origin.
 *
 * undici never picks an address itself: every new upstream connection goes
 * through this file's connector, which dials the candidates the connection
 * path resolved and checked for the request (each in order, within the
 * connect timeout, as CONNECT does: dialer.ts). So the proxy's own addresses,
 * private ranges and every other refused destination are refused before any
 * dial, and no second DNS lookup happens between the check and the connect.
 *
 *   connection path: resolve + check ─▶ forward(candidates) ─▶ undici Agent ─▶ pool for http://host:port
 *                                                                  └─ new connection? ─▶ connector ─▶ connectFirst(candidates)
 *
 * A pool is keyed by the name and port the client asked for; its connections
 * go to addresses checked for that name. A reload of the destination policy
 * starts a new pool set (renew()), so a connection checked under the old
 * policy carries no request that arrives after it.
 */
import type http from 'node:http';
import { Agent, Pool, type Dispatcher, type buildConnector } from 'undici';
import type { AbsoluteTarget } from '../net/authority.js';
import { connectionNamed } from '../net/hop-by-hop.js';
import { connectFirst, type Candidate, type DialDeps } from './dialer.js';
import { ProxyFailureError, type ProxyFailure } from './failures.js';
import { forwardRequest } from './forward-request.js';

export interface ForwardResult {
  status: number | null;
  bytesUp: number;
  bytesDown: number;
  failure: ProxyFailure | null;
  /** The client went away before the whole answer reached it. */
  clientGone: boolean;
  /** The checked address the exchange went to, as far as the pool tells: null when no connection was made. */
  ip: string | null;
}

/** What the connector of one origin's pool may dial: the latest checked candidates, while requests use them. */
interface OriginPlan {
  candidates: readonly Candidate[];
  connectTimeoutMs: number;
  /** Requests in flight that rely on this plan. */
  refs: number;
  /** Upstream connections open for this origin. */
  sockets: number;
  /** The address of the newest connection (the pool's connections all go to checked addresses of this name). */
  lastIp: string | null;
}

export interface HttpForwarderOptions {
  maxSocketsPerOrigin: number;
  keepAliveTimeoutMs: number;
  upstreamTimeoutMs: number;
  deps: DialDeps;
  /** Aborted when the agent drains: dials in progress give up. */
  drain: AbortSignal;
  now: () => number;
}

/** `http://host:port` for a target (IPv6 literals in brackets). */
export function originOf(target: { host: string; port: number }): string {
  return `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
}

export class HttpForwarder {
  private readonly plans = new Map<string, OriginPlan>();
  private dispatcher: Agent;

  constructor(private readonly opts: HttpForwarderOptions) {
    this.dispatcher = this.newDispatcher();
  }

  private newDispatcher(): Agent {
    return new Agent({
      connections: this.opts.maxSocketsPerOrigin,
      keepAliveTimeout: this.opts.keepAliveTimeoutMs,
      keepAliveMaxTimeout: this.opts.keepAliveTimeoutMs,
      pipelining: 1,
      factory: (origin: string | URL, options: Agent.Options): Dispatcher =>
        new Pool(origin, { ...(options as Pool.Options), connect: this.connector(String(origin)) }),
    });
  }

  /** The connector of one origin's pool: dials that origin's checked candidates, never anything else. */
  private connector(origin: string): buildConnector.connector {
    return (_options, callback) => {
      const plan = this.plans.get(origin);
      if (!plan) {
        // No request of this origin is in flight: nothing was checked for it, so nothing is dialled.
        callback(new ProxyFailureError({ kind: 'unreachable', code: 'ENOPLAN' }), null);
        return;
      }
      void connectFirst(plan.candidates, plan.connectTimeoutMs, this.opts.deps, this.opts.drain).then((dial) => {
        if (!dial.ok) {
          callback(new ProxyFailureError(dial.failure), null);
          return;
        }
        plan.sockets++;
        plan.lastIp = dial.ip;
        dial.socket.once('close', () => {
          plan.sockets--;
          this.forgetIfUnused(origin, plan);
        });
        callback(null, dial.socket);
      });
    };
  }

  private forgetIfUnused(origin: string, plan: OriginPlan): void {
    if (plan.refs === 0 && plan.sockets === 0 && this.plans.get(origin) === plan) this.plans.delete(origin);
  }

  /**
   * Forwards `req` to `target` (its `path` origin-form), new connections going to `candidates`
   * (resolved and checked by the caller); resolves when the exchange has ended.
   */
  async forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    target: AbsoluteTarget,
    candidates: readonly Candidate[],
    opts: { connectTimeoutMs: number; peekBody: ((chunk: Buffer) => void) | null; host?: string },
  ): Promise<ForwardResult> {
    const origin = originOf(target);
    let plan = this.plans.get(origin);
    if (plan) {
      plan.candidates = candidates;
      plan.connectTimeoutMs = opts.connectTimeoutMs;
    } else {
      plan = { candidates, connectTimeoutMs: opts.connectTimeoutMs, refs: 0, sockets: 0, lastIp: null };
      this.plans.set(origin, plan);
    }
    plan.refs++;
    try {
      const r = await forwardRequest(req, res, {
        dispatcher: this.dispatcher,
        origin,
        path: target.path,
        now: this.opts.now,
        headersTimeoutMs: this.opts.upstreamTimeoutMs,
        bodyTimeoutMs: this.opts.upstreamTimeoutMs,
        peekBody: opts.peekBody,
        // A client that asked to close its connection closes the upstream one too.
        reset: connectionNamed([req.headers.connection]).has('close'),
        ...(opts.host === undefined ? {} : { host: opts.host }),
      });
      const ip = candidates.length === 1 ? (candidates[0]?.ip ?? null) : plan.lastIp;
      return { status: r.status, bytesUp: r.bytesUp, bytesDown: r.bytesDown, failure: r.failure, clientGone: r.clientGone, ip };
    } finally {
      plan.refs--;
      this.forgetIfUnused(origin, plan);
    }
  }

  /** A new destination policy: new requests get new pools; the old ones close once their requests have ended. */
  renew(): void {
    const old = this.dispatcher;
    this.dispatcher = this.newDispatcher();
    void old.close().catch(() => undefined);
  }

  close(): void {
    void this.dispatcher.destroy().catch(() => undefined);
  }
}

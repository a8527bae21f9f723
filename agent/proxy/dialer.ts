/**
 * Resolve once, check every address, connect to a checked address: no
 * second lookup ever happens, so a DNS answer cannot change between the
 * policy check and the connection (DNS-rebinding safe). Lookup and connect
 * are injected so tests can prove that a denied destination is never dialed.
 */
import net from 'node:net';
import dns from 'node:dns';
import type { Target } from '../net/authority.js';
import type { ResolveOverrides } from '../net/resolve-overrides.js';
import type { DestinationPolicy } from '../net/address-policy.js';
import { failureFromError, type ProxyFailure } from './failures.js';

export interface Candidate {
  ip: string;
  port: number;
}

/**
 * A connection made elsewhere (a proxy worker's, dialled by the primary): connected once it
 * resolves; `cancel` gives it up while it is still pending.
 */
export type PendingSocket = Promise<net.Socket> & { cancel?(): void };

export interface DialDeps {
  lookup(host: string): Promise<{ address: string; family: number }[]>;
  /**
   * A connecting socket, or a pending connection (connected when it resolves). `onread`, when
   * given, is the socket's read target (net.connect's option; relay-reads.ts); a pending
   * connection is made without it.
   */
  connect(opts: { host: string; port: number; onread?: net.OnReadOpts }): net.Socket | PendingSocket;
}

export const systemDialDeps = {
  lookup: (host: string) => dns.promises.lookup(host, { all: true, order: 'verbatim' }),
  connect: (opts: { host: string; port: number; onread?: net.OnReadOpts }): net.Socket =>
    net.connect({ host: opts.host, port: opts.port, noDelay: true, allowHalfOpen: true, onread: opts.onread }),
} satisfies DialDeps;

export type Resolution = { ok: true; candidates: Candidate[] } | { ok: false; failure: ProxyFailure };

/** Rejects with ETIMEOUT when the lookup takes longer than `ms` (getaddrinfo has no deadline of its own). */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('DNS lookup timed out'), { code: 'ETIMEOUT' })), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

export async function resolveTarget(
  target: Target,
  ctx: { overrides: ResolveOverrides; policy: DestinationPolicy; deps: DialDeps; lookupTimeoutMs?: number },
): Promise<Resolution> {
  if (!ctx.policy.checkPort(target.port)) return { ok: false, failure: { kind: 'destination-denied', reason: 'port-not-allowed' } };
  let candidates: Candidate[];
  const override = target.isIp ? null : ctx.overrides.lookup(target.host);
  if (override) {
    candidates = [{ ip: override.ip, port: override.port }];
  } else if (target.isIp) {
    candidates = [{ ip: target.host, port: target.port }];
  } else {
    try {
      const answers = await withDeadline(ctx.deps.lookup(target.host), ctx.lookupTimeoutMs ?? 10_000);
      candidates = answers.map((a) => ({ ip: a.address, port: target.port }));
    } catch (err) {
      return { ok: false, failure: failureFromError(err, 'dns') };
    }
    if (candidates.length === 0) return { ok: false, failure: { kind: 'dns-failure', code: 'ENODATA' } };
  }
  // Every address must pass: a name that also resolves to a private address is refused outright.
  for (const c of candidates) {
    const verdict = ctx.policy.checkAddress(c.ip, c.port);
    if (!verdict.allowed) return { ok: false, failure: { kind: 'destination-denied', reason: verdict.reason } };
  }
  return { ok: true, candidates };
}

export type DialResult = { ok: true; socket: net.Socket; ip: string; port: number } | { ok: false; failure: ProxyFailure };

/**
 * Tries the checked candidates in order within one overall connect timeout.
 * With `onread` (a tunnel's upstream), the socket is dialled with it and
 * paused: it reads nothing until the tunnel is attached.
 */
export function connectFirst(
  candidates: readonly Candidate[],
  timeoutMs: number,
  deps: DialDeps,
  signal?: AbortSignal,
  onread?: net.OnReadOpts,
): Promise<DialResult> {
  return new Promise((resolve) => {
    let index = 0;
    let lastFailure: ProxyFailure = { kind: 'unreachable', code: 'ENOADDR' };
    let current: net.Socket | null = null;
    let pending: PendingSocket | null = null;
    let settled = false;
    const finish = (r: DialResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const giveUp = (): void => {
      current?.destroy();
      pending?.cancel?.();
    };
    const timer = setTimeout(() => {
      giveUp();
      finish({ ok: false, failure: { kind: 'connect-timeout' } });
    }, timeoutMs);
    const onAbort = (): void => {
      giveUp();
      finish({ ok: false, failure: { kind: 'draining' } });
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const next = (): void => {
      const c = candidates[index++];
      if (!c) return finish({ ok: false, failure: lastFailure });
      const made = deps.connect(onread ? { host: c.ip, port: c.port, onread } : { host: c.ip, port: c.port });
      if (!(made instanceof net.Socket)) {
        const p = made;
        pending = p;
        p.then(
          (socket) => {
            pending = null;
            if (settled) socket.destroy();
            else finish({ ok: true, socket, ip: c.ip, port: c.port });
          },
          (err: Error) => {
            pending = null;
            lastFailure = failureFromError(err, 'connect');
            if (!settled) next();
          },
        );
        return;
      }
      const socket = made;
      if (onread) socket.pause();
      current = socket;
      const onError = (err: Error): void => {
        socket.destroy();
        lastFailure = failureFromError(err, 'connect');
        if (!settled) next();
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        if (settled) {
          socket.destroy();
          return;
        }
        finish({ ok: true, socket, ip: c.ip, port: c.port });
      });
    };
    next();
  });
}

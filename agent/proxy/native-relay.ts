/**
 * A tunnel relayed in native code (native/tunnel-relay): once the tunnel is
 * up, the two sockets' file descriptors are handed to the addon, which
 * carries the bytes both ways on the event loop's thread with no JavaScript
 * per chunk, and calls back once, when the tunnel has ended, with the bytes
 * read from each side and how it ended.
 *
 *   client net.Socket ─┐ fds dup'd by the addon; bytes Node had already read
 *   upstream net.Socket┘ (after the CONNECT head, the peeked ClientHello, an early upstream read)
 *                        go first; then both Node sockets are destroyed (the
 *                        duplicates keep the connections open: no FIN, no RST)
 *
 * Half-close, errors, backpressure, the idle timeout and closing both
 * descriptors once are the addon's (see its header). The JavaScript relay
 * (tunnel.ts) stays: the addon missing or not loading, another platform, or
 * `proxy.tunnel_relay: js`; and any single tunnel the hand-over refuses (a
 * write still queued in Node, a socket already ending).
 */
import { createRequire } from 'node:module';
import { platform } from 'node:os';
import type net from 'node:net';
import { errnoName, findAddon } from '../native/addons.js';
import type { Outcome } from '../../protocol/telemetry.js';
import { failureAnswer, failureFromError } from './failures.js';
import type { RelayReads } from './relay-reads.js';
import type { RelayedTunnel, TunnelResult } from './tunnel.js';

export type TunnelRelayChoice = 'auto' | 'native' | 'js';

type Handle = object;

interface Addon {
  start(
    id: number,
    clientFd: number,
    upstreamFd: number,
    idleMs: number,
    upFirst: Buffer | null,
    downFirst: Buffer | null,
  ): Handle | number;
  bytes(h: Handle): [number, number];
  close(h: Handle): [number, number];
  setOnEnd(fn: (id: number, up: number, down: number, reason: number, side: number, errno: number) => void): void;
}

/** The addon's end reasons. */
const ENDED = 0;
const ERROR = 1;

const ADDON = 'native/tunnel-relay/build/Release/tunnel_relay.node';

/**
 * The descriptor of a plain TCP socket, or null. A TLS socket (or any other layer over a socket) has
 * the TCP descriptor underneath too, behind a handle of another kind (TLSWrap): relaying that would
 * move bytes beneath the layer, so only a TCP handle's descriptor is taken.
 */
function fdOf(socket: net.Socket): number | null {
  const handle = (socket as unknown as { _handle?: { fd?: unknown; constructor?: { name?: string } } | null })._handle;
  if (handle?.constructor?.name !== 'TCP') return null;
  const fd = handle.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

/** What Node has read from `socket` and not yet handed on (a paused socket's buffer). */
function takeBuffered(socket: net.Socket): Buffer | null {
  const n = socket.readableLength;
  if (n === 0) return null;
  return (socket.read(n) as Buffer | null) ?? null;
}

function joined(parts: (Buffer | null)[]): Buffer | null {
  const some = parts.filter((b): b is Buffer => b !== null && b.length > 0);
  if (some.length === 0) return null;
  return some.length === 1 ? some[0]! : Buffer.concat(some);
}

let lastId = 0;
const live = new Map<number, NativeTunnel>();
let loaded: Addon | null = null;

function onEnd(id: number, up: number, down: number, reason: number, side: number, errno: number): void {
  const t = live.get(id);
  if (t === undefined) return;
  live.delete(id);
  t.ended(up, down, reason, side, errno);
}

class NativeTunnel implements RelayedTunnel {
  private closed = false;
  private readonly done: Promise<TunnelResult>;
  private resolveDone!: (r: TunnelResult) => void;

  constructor(
    private readonly id: number,
    private readonly addon: Addon,
    private readonly handle: Handle,
    private readonly base: { up: number; down: number },
    private readonly now: () => number,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  get finished(): Promise<TunnelResult> {
    return this.done;
  }

  get bytes(): { up: number; down: number } {
    const [up, down] = this.addon.bytes(this.handle);
    return { up: this.base.up + up, down: this.base.down + down };
  }

  abort(outcome: 'idle_timeout' | 'drained'): void {
    if (this.closed) return;
    const [up, down] = this.addon.close(this.handle);
    this.finish(up, down, outcome, outcome === 'drained' ? 'draining' : 'idle-timeout');
  }

  /** The addon's one call at the end. */
  ended(up: number, down: number, reason: number, side: number, errno: number): void {
    if (reason === ENDED) return this.finish(up, down, 'ok', null);
    if (reason !== ERROR) return this.finish(up, down, 'idle_timeout', 'idle-timeout');
    if (side === 0) return this.finish(up, down, 'client_error', 'client-error');
    const code = errnoName(errno) ?? 'EUNKNOWN';
    this.finish(up, down, 'upstream_error', failureAnswer(failureFromError({ code }, 'upstream')).reason);
  }

  private finish(up: number, down: number, outcome: Outcome, reason: string | null): void {
    if (this.closed) return;
    this.closed = true;
    live.delete(this.id);
    this.resolveDone({ bytesUp: this.base.up + up, bytesDown: this.base.down + down, outcome, reason, endedAt: this.now() });
  }
}

export interface NativeRelay {
  /** Whether tunnels are handed to the addon; when false, `unavailableReason` says why (null: chosen off). */
  readonly available: boolean;
  readonly unavailableReason: string | null;
  /**
   * Hands an established tunnel to the addon: `head` (the client's bytes after the request head) and
   * whatever Node had read from either socket go first. Null when this tunnel stays with the
   * JavaScript relay (nothing was taken from the sockets then).
   */
  open(
    client: net.Socket,
    upstream: net.Socket,
    opts: { head: Buffer; reads: RelayReads | null; idleTimeoutMs: number; now: () => number },
  ): RelayedTunnel | null;
}

const OFF: NativeRelay = { available: false, unavailableReason: null, open: () => null };

/** The relay `choice` asks for; `addonPath` overrides where the addon is looked for (tests). */
export function loadNativeRelay(choice: TunnelRelayChoice, addonPath: string | null = findAddon(ADDON)): NativeRelay {
  if (choice === 'js') return OFF;
  let reason: string | null = null;
  if (platform() !== 'linux') reason = 'the native tunnel relay runs on Linux only';
  else if (loaded === null) {
    if (addonPath === null) reason = `the native addon is not built (${ADDON}); run: npm run build:native`;
    else {
      try {
        const addon = createRequire(import.meta.url)(addonPath) as Addon;
        if (typeof addon.start !== 'function' || typeof addon.setOnEnd !== 'function') throw new Error('it has no start function');
        addon.setOnEnd(onEnd);
        loaded = addon;
      } catch (err) {
        reason = `the native addon ${addonPath} did not load: ${(err as Error).message.split('\n')[0] ?? 'unknown error'}`;
      }
    }
  }
  const addon = loaded;
  if (addon === null) return { available: false, unavailableReason: reason, open: () => null };
  return {
    available: true,
    unavailableReason: null,
    open(client, upstream, opts) {
      const cfd = fdOf(client);
      const ufd = fdOf(upstream);
      if (cfd === null || ufd === null || client.destroyed || upstream.destroyed || client.connecting || upstream.connecting) return null;
      // A write Node still holds, or a side already ending, stays with the relay that knows about it.
      if (client.writableLength > 0 || upstream.writableLength > 0 || client.writableEnded || upstream.writableEnded) return null;
      const early = opts.reads?.takeEarly() ?? [];
      const upFirst = joined([opts.head, takeBuffered(client)]);
      const downFirst = joined([...early, takeBuffered(upstream)]);
      const id = ++lastId;
      const h = addon.start(id, cfd, ufd, opts.idleTimeoutMs, upFirst, downFirst);
      if (typeof h === 'number') {
        // Nothing was done (no descriptor, a poll that would not start): the JavaScript relay carries it.
        if (downFirst !== null) client.write(downFirst);
        if (upFirst !== null && upFirst !== opts.head) client.unshift(upFirst.subarray(opts.head.length));
        return null;
      }
      const base = { up: upstream.bytesWritten + (upFirst?.length ?? 0), down: upstream.bytesRead };
      const t = new NativeTunnel(id, addon, h, base, opts.now);
      live.set(id, t);
      opts.reads?.release();
      // The addon's duplicates keep both connections open: closing Node's descriptors sends nothing.
      client.destroy();
      upstream.destroy();
      return t;
    },
  };
}

/**
 * A CONNECT tunnel: bytes relayed both ways, half-close honoured, an idle
 * timeout pushed forward by traffic in either direction, byte counts taken
 * from the sockets themselves (no per-chunk counting).
 *
 *   client ══data══▶ upstream   (client FIN → upstream.end(), the other way goes on)
 *   client ◀═onread═ upstream   (relay-reads.ts: no Buffer per chunk; `data` events when dialled without it)
 *                               (closed when both directions ended, on error, idle, or drain)
 *
 * Each direction writes a chunk as soon as it is read and stops reading
 * while the other side has not taken what was written (backpressure).
 */
import type net from 'node:net';
import type { Outcome } from '../../protocol/telemetry.js';
import { failureAnswer, failureFromError } from './failures.js';
import type { RelayReads } from './relay-reads.js';

export interface TunnelResult {
  bytesUp: number;
  bytesDown: number;
  outcome: Outcome;
  /** How it broke (`upstream-error`, `client-error`, `idle-timeout`, `draining`), null when it ended normally. */
  reason: string | null;
  endedAt: number;
}

/** A tunnel as the connection path sees it, whichever relay carries it (this one, or native-relay.ts). */
export interface RelayedTunnel {
  readonly finished: Promise<TunnelResult>;
  /** Bytes carried so far, client → upstream and back (the totals the result will carry). */
  readonly bytes: { up: number; down: number };
  /** Ends the tunnel now (drain deadline, shutdown). */
  abort(outcome: 'idle_timeout' | 'drained'): void;
}

export class Tunnel implements RelayedTunnel {
  private outcome: Outcome = 'ok';
  private reason: string | null = null;
  private closed = false;
  private readonly done: Promise<TunnelResult>;
  private resolveDone!: (r: TunnelResult) => void;

  constructor(
    readonly client: net.Socket,
    readonly upstream: net.Socket,
    private readonly opts: {
      idleTimeoutMs: number;
      now: () => number;
      head?: Buffer;
      /** The upstream socket's `onread` target, when it was dialled with one. */
      reads?: RelayReads | null;
    },
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.wire();
  }

  get finished(): Promise<TunnelResult> {
    return this.done;
  }

  /** Bytes carried so far, client → upstream and back (the totals the result will carry). */
  get bytes(): { up: number; down: number } {
    return { up: this.upstream.bytesWritten, down: this.upstream.bytesRead };
  }

  /** Ends the tunnel now (drain deadline, shutdown). */
  abort(outcome: 'idle_timeout' | 'drained'): void {
    if (this.closed) return;
    this.outcome = outcome;
    this.reason = outcome === 'drained' ? 'draining' : 'idle-timeout';
    this.client.destroy();
    this.upstream.destroy();
  }

  private wire(): void {
    const { client, upstream } = this;
    if (this.opts.head && this.opts.head.length > 0) upstream.write(this.opts.head);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // Node resets a socket's timer on reads and writes: the client socket sees both directions.
    client.setTimeout(this.opts.idleTimeoutMs, () => this.abort('idle_timeout'));
    // client → upstream: accepted sockets have no `onread` in Node, so chunks come as `data` events.
    client.on('data', (chunk: Buffer) => {
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    client.on('end', () => upstream.end());
    // upstream → client: through `onread` when dialled with it; otherwise `data` events.
    const reads = this.opts.reads ?? null;
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => {
      if (reads === null || !reads.active) upstream.resume();
    });
    upstream.on('end', () => client.end());
    if (reads !== null) reads.attach(upstream, client);
    else upstream.resume();
    // A listener that peeked at the first bytes (the ClientHello) left the client paused.
    client.resume();
    const onError = (err: Error): void => {
      if (this.outcome === 'ok') {
        this.outcome = 'upstream_error';
        this.reason = failureAnswer(failureFromError(err, 'upstream')).reason;
      }
      client.destroy();
      upstream.destroy();
    };
    client.on('error', () => {
      if (this.outcome === 'ok') {
        this.outcome = 'client_error';
        this.reason = 'client-error';
      }
      upstream.destroy();
    });
    upstream.on('error', onError);
    let closes = 0;
    const onClose = (): void => {
      // One side fully closed: the tunnel cannot carry anything useful any more.
      if (++closes === 1) {
        if (!client.destroyed && client.writableEnded === false && upstream.readableEnded) client.end();
        if (!upstream.destroyed && upstream.writableEnded === false && client.readableEnded) upstream.end();
        // Give the remaining half a moment to flush, then tear down.
        client.destroySoon?.();
        upstream.destroySoon?.();
      }
      if (closes === 2) this.finish();
    };
    client.once('close', onClose);
    upstream.once('close', onClose);
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.setTimeout(0);
    this.opts.reads?.release();
    this.resolveDone({
      bytesUp: this.upstream.bytesWritten,
      bytesDown: this.upstream.bytesRead,
      outcome: this.outcome,
      reason: this.reason,
      endedAt: this.opts.now(),
    });
  }
}

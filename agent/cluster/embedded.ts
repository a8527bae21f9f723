/**
 * A proxy worker's side of an embedded primary: one that a host program gave
 * its own network and clock (AgentDeps.dial, AgentDeps.now), as a program that
 * runs the agent in-process does. The worker has neither of them, so it borrows
 * the primary's over the channel: every DNS lookup is answered by the
 * primary's lookup, every connection is made by the primary's connect and the
 * connected socket handed over (the primary keeps its end open and paused, so
 * whatever happens to it there reaches the worker's socket), and the clock is
 * the one the primary last told. An agent started from the command line has
 * none of this: its workers resolve and connect themselves, with no round trip.
 *
 *   lookup(host) ──lookup──▶ primary deps.lookup ──looked-up──▶ answers | error
 *   connect(c)   ──dial────▶ primary deps.connect ──dialled + socket──▶ connected socket | error
 *                 socket broken in the primary ──dial-broken──▶ the worker's socket destroyed with that error
 *                 the worker's socket closed ──dial-closed──▶ the primary's end closed
 */
import net from 'node:net';
import type { DialDeps, PendingSocket } from '../proxy/dialer.js';
import { TAG, errorFrom, type FromWorker, type ToWorker } from './messages.js';

type Send = (m: FromWorker) => void;

interface Waiting<T> {
  resolve(v: T): void;
  reject(err: Error): void;
}

export class DialThroughPrimary implements DialDeps {
  private nextId = 1;
  private readonly lookups = new Map<number, Waiting<{ address: string; family: number }[]>>();
  private readonly dials = new Map<number, Waiting<net.Socket>>();
  /** Sockets handed over, by dial id, until they close. */
  private readonly sockets = new Map<number, net.Socket>();

  constructor(private readonly send: Send) {}

  lookup(host: string): Promise<{ address: string; family: number }[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.lookups.set(id, { resolve, reject });
      this.send({ tag: TAG, t: 'lookup', id, host });
    });
  }

  connect(opts: { host: string; port: number }): PendingSocket {
    const id = this.nextId++;
    const p: PendingSocket = new Promise<net.Socket>((resolve, reject) => {
      this.dials.set(id, { resolve, reject });
      this.send({ tag: TAG, t: 'dial', id, host: opts.host, port: opts.port });
    });
    p.cancel = () => {
      if (this.dials.delete(id)) this.send({ tag: TAG, t: 'dial-cancel', id });
    };
    return p;
  }

  /** Takes the primary's answers; false for any other message. */
  handle(m: ToWorker, handle: unknown): boolean {
    switch (m.t) {
      case 'looked-up': {
        const w = this.lookups.get(m.id);
        this.lookups.delete(m.id);
        if (m.error || !m.answers) w?.reject(errorFrom(m.error ?? { code: 'ENODATA', message: 'no answer' }));
        else w?.resolve(m.answers);
        return true;
      }
      case 'dialled': {
        const w = this.dials.get(m.id);
        this.dials.delete(m.id);
        const socket = handle instanceof net.Socket ? handle : null;
        if (m.error || !socket) {
          socket?.destroy();
          w?.reject(errorFrom(m.error ?? { code: 'ECONNABORTED', message: 'the connection was not handed over' }));
          return true;
        }
        // As the agent's own connections are (dialer.ts): half-close carried through, no Nagle delay.
        socket.allowHalfOpen = true;
        socket.setNoDelay(true);
        this.sockets.set(m.id, socket);
        socket.once('close', () => {
          this.sockets.delete(m.id);
          this.send({ tag: TAG, t: 'dial-closed', id: m.id });
        });
        if (w) w.resolve(socket);
        else socket.destroy();
        return true;
      }
      case 'dial-broken': {
        const socket = this.sockets.get(m.id);
        if (socket) socket.destroy(m.error ? errorFrom(m.error) : undefined);
        return true;
      }
      default:
        return false;
    }
  }
}

/** The primary's clock as it last said it. */
export class BorrowedClock {
  constructor(private value: number) {}

  readonly now = (): number => this.value;

  set(now: number): void {
    this.value = now;
  }
}

/**
 * The read side of a tunnel's upstream socket without a Buffer per chunk:
 * the socket is dialled with `onread` (net.connect), so the kernel's bytes
 * land in memory the relay owns and are written on to the client at once,
 * with no stream machinery and nothing left for the garbage collector.
 *
 *   upstream ──read──▶ landing buffer (one per process, shared) ──copy──▶ client.write()
 *                │ a large read: the socket gets a buffer of its own from the pool
 *                └──read──▶ own buffer ──▶ client.write(view)  written at once: reused for the next read
 *                                                 │ left pending (client slow): reading stops; the
 *                                                 │ buffer stays with the write, the socket gets another;
 *                                                 └ written: back to the pool, reading resumes
 *                  a small read on an own buffer: the buffer goes back to the pool (the socket is idle-ish)
 *
 * A buffer is never read into while a write still refers to it: the shared
 * landing buffer is always copied out, and an own buffer left with a pending
 * write is swapped for another before the next read. An idle tunnel holds no
 * buffer at all (it sits on the landing buffer), which keeps its memory to
 * the sockets' own. Node offers `onread` to sockets it dials, not to
 * accepted ones, so the client → upstream direction stays on `data` events.
 */
import type net from 'node:net';

/** Read size, as Node's own default for stream reads. */
export const READ_BUFFER_BYTES = 64 * 1024;
/** A read at least this large on the landing buffer gives the socket a buffer of its own. */
const OWN_BUFFER_FROM = 4 * 1024;
/** A read smaller than this on an own buffer gives the buffer back. */
const LANDING_BELOW = 2 * 1024;
/** Own buffers kept for reuse (the rest are left to the garbage collector). */
const POOL_MAX = 32;

const landing = Buffer.allocUnsafe(READ_BUFFER_BYTES);
const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafe(READ_BUFFER_BYTES);
}

function giveBack(b: Buffer): void {
  if (b !== landing && pool.length < POOL_MAX) pool.push(b);
}

/**
 * Where the bytes of one upstream socket go. Created before the dial (its
 * `onread` goes into the connect options); `attach()` names the socket and
 * the client once the tunnel exists. Until then the socket is paused, and
 * anything read anyway is kept (copied) and written on attach.
 */
export class RelayReads {
  readonly onread: net.OnReadOpts;
  private buf: Buffer = landing;
  /** The own buffer a pending write still refers to, back to the pool once written. */
  private lent: Buffer | null = null;
  private early: Buffer[] | null = null;
  private src: net.Socket | null = null;
  private dst: net.Socket | null = null;
  private issued = 0;
  private acked = 0;
  private waiting = false;
  /** Whether any read came through `onread` (false: the socket was dialled without it). */
  private used = false;
  private readonly onWritten = (): void => {
    this.acked++;
    if (this.acked !== this.issued) return;
    if (this.lent !== null) {
      giveBack(this.lent);
      this.lent = null;
    }
    if (this.waiting) {
      this.waiting = false;
      this.src?.resume();
    }
  };

  constructor() {
    this.onread = { buffer: () => this.buf, callback: (n, b) => this.read(n, b as Buffer) };
  }

  /** Whether the socket's reads have come here (it was dialled with `onread`). */
  get active(): boolean {
    return this.used;
  }

  /** Starts relaying `src`'s reads to `dst`; `src` is resumed. */
  attach(src: net.Socket, dst: net.Socket): void {
    this.src = src;
    this.dst = dst;
    const early = this.early;
    this.early = null;
    if (early) for (const chunk of early) this.write(chunk);
    if (!this.waiting) src.resume();
  }

  /** What was read before a tunnel was attached, taken (the native relay sends it on instead). */
  takeEarly(): Buffer[] {
    const early = this.early ?? [];
    this.early = null;
    return early;
  }

  /** The tunnel ended: buffers go back to the pool (a pending write's buffer too: the socket is gone). */
  release(): void {
    if (this.buf !== landing) giveBack(this.buf);
    this.buf = landing;
    this.lent = null;
    this.src = null;
    this.dst = null;
  }

  /** One read of `n` bytes into `b`: written on; false stops reading until the write is done. */
  private read(n: number, b: Buffer): boolean {
    this.used = true;
    if (b === landing) {
      const chunk = Buffer.allocUnsafe(n);
      landing.copy(chunk, 0, 0, n);
      if (n >= OWN_BUFFER_FROM && this.dst !== null) this.buf = takeBuffer();
      if (this.dst === null) {
        // Read before the tunnel was attached (the socket is paused until then): kept, and reading stops.
        (this.early ??= []).push(chunk);
        return false;
      }
      return this.write(chunk);
    }
    const done = this.write(n === b.length ? b : b.subarray(0, n));
    if (!done) {
      // The write still refers to this buffer: the next read goes elsewhere.
      this.lent = b;
      this.buf = takeBuffer();
    } else if (n < LANDING_BELOW) {
      giveBack(b);
      this.buf = landing;
    }
    return done;
  }

  /** Writes `chunk` to the client; false (and waiting) when the write did not complete at once. */
  private write(chunk: Buffer): boolean {
    const dst = this.dst!;
    this.issued++;
    dst.write(chunk, this.onWritten);
    if (dst.writableLength === 0) return true;
    this.waiting = true;
    return false;
  }
}

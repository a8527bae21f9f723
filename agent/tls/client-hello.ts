/**
 * Peeks at a TLS ClientHello (SNI and ALPN) before the proxy decides to
 * inspect or tunnel a CONNECT. Pure: bytes in, a result out, never throws.
 *
 *   record  = type(1)=22 | version(2)=3.x | length(2) | fragment
 *   message = type(1)=1 | length(3) | ClientHello      (may span records)
 *
 * The handshake message is reassembled from consecutive handshake records,
 * so a hello split over several records (large post-quantum key shares,
 * some middleboxes) parses too. 'incomplete' means "read more and call
 * again with everything so far"; the caller bounds how long it waits and
 * how many bytes it buffers (MAX_CLIENT_HELLO_BYTES at most is ever needed).
 */

export type ClientHelloResult =
  | { readonly kind: 'hello'; readonly sni: string | null; readonly alpn: readonly string[] }
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'not-tls' }
  | { readonly kind: 'malformed'; readonly reason: string };

const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const RECORD_HEADER = 5;
/** TLSPlaintext.length limit (RFC 8446 §5.1). */
const MAX_RECORD_PAYLOAD = 16_384;
/** Largest hello we reassemble; real ones are 0.5–2 KiB (about 1.8 KiB with X25519MLKEM768). */
const MAX_HELLO_MESSAGE = 65_536;
/**
 * Most bytes of records the hello may occupy. `parseClientHello` never
 * answers 'incomplete' for a buffer this long, so a caller that reads until
 * it gets another answer buffers at most this much.
 */
export const MAX_CLIENT_HELLO_BYTES = 72 * 1024;

const INCOMPLETE: ClientHelloResult = Object.freeze({ kind: 'incomplete' });
const NOT_TLS: ClientHelloResult = Object.freeze({ kind: 'not-tls' });

class Malformed extends Error {}

/** A bounds-checked cursor over one handshake message body. */
class Reader {
  private pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly end: number = buf.length,
    start = 0,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.remaining) throw new Malformed(`${what} runs past its enclosing length`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++] as number;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = ((this.buf[this.pos] as number) << 8) | (this.buf[this.pos + 1] as number);
    this.pos += 2;
    return v;
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }

  /** A sub-reader over the next n bytes; this reader moves past them. */
  sub(n: number, what: string): Reader {
    this.need(n, what);
    const r = new Reader(this.buf, this.pos + n, this.pos);
    this.pos += n;
    return r;
  }

  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

type Reassembly = { kind: 'message'; body: Uint8Array } | ClientHelloResult;

/** Concatenates handshake record fragments until the first handshake message is whole. */
function reassembleHandshake(buf: Uint8Array): Reassembly {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] !== CONTENT_HANDSHAKE) return NOT_TLS;
  if (buf.length >= 2 && buf[1] !== 3) return NOT_TLS;
  const fragments: Uint8Array[] = [];
  let have = 0;
  let need = -1; // handshake message length incl. its 4-byte header, once known
  let pos = 0;
  while (need < 0 || have < need) {
    if (pos + RECORD_HEADER > MAX_CLIENT_HELLO_BYTES)
      return { kind: 'malformed', reason: `ClientHello records exceed ${MAX_CLIENT_HELLO_BYTES} bytes` };
    if (buf.length - pos < RECORD_HEADER) return INCOMPLETE;
    if (buf[pos] !== CONTENT_HANDSHAKE) return { kind: 'malformed', reason: `record of type ${buf[pos]} inside the ClientHello` };
    if (buf[pos + 1] !== 3) return { kind: 'malformed', reason: 'record version is not 3.x' };
    const length = ((buf[pos + 3] as number) << 8) | (buf[pos + 4] as number);
    if (length === 0) return { kind: 'malformed', reason: 'empty handshake record' };
    if (length > MAX_RECORD_PAYLOAD) return { kind: 'malformed', reason: `record length ${length} exceeds ${MAX_RECORD_PAYLOAD}` };
    if (pos + RECORD_HEADER + length > MAX_CLIENT_HELLO_BYTES)
      return { kind: 'malformed', reason: `ClientHello records exceed ${MAX_CLIENT_HELLO_BYTES} bytes` };
    if (buf.length - pos - RECORD_HEADER < length) return INCOMPLETE;
    const fragment = buf.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + length);
    fragments.push(fragment);
    have += length;
    pos += RECORD_HEADER + length;
    if (need < 0 && have >= 4) {
      const head = fragments.length === 1 ? fragment : concat(fragments, have);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO)
        return { kind: 'malformed', reason: `first handshake message is type ${head[0]}, not ClientHello` };
      const bodyLength = ((head[1] as number) << 16) | ((head[2] as number) << 8) | (head[3] as number);
      if (bodyLength > MAX_HELLO_MESSAGE)
        return { kind: 'malformed', reason: `ClientHello length ${bodyLength} exceeds ${MAX_HELLO_MESSAGE}` };
      need = 4 + bodyLength;
    }
  }
  const message = fragments.length === 1 ? (fragments[0] as Uint8Array) : concat(fragments, have);
  return { kind: 'message', body: message.subarray(4, need) };
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Host names are printable ASCII without spaces; anything else (NUL, UTF-8) is refused, not guessed at.
 * One trailing dot is tolerated and dropped; an empty label ("a..b", ".a", "a..", ".") is refused, so
 * the name reported never ends with a dot.
 */
function decodeHostName(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new Malformed('empty server_name');
  let out = '';
  for (const b of bytes) {
    if (b < 0x21 || b > 0x7e) throw new Malformed('server_name is not printable ASCII');
    out += String.fromCharCode(b >= 0x41 && b <= 0x5a ? b + 32 : b);
  }
  const name = out.endsWith('.') ? out.slice(0, -1) : out;
  if (name === '' || name.startsWith('.') || name.endsWith('.') || name.includes('..'))
    throw new Malformed('server_name has an empty label');
  return name;
}

/** RFC 6066 §3: the first host_name entry; other name types are skipped. */
function parseServerName(r: Reader): string | null {
  const list = r.sub(r.u16('server_name list length'), 'server_name list');
  if (r.remaining !== 0) throw new Malformed('trailing bytes after server_name list');
  let sni: string | null = null;
  while (list.remaining > 0) {
    const type = list.u8('server_name type');
    const name = list.bytes(list.u16('server_name length'), 'server_name');
    if (type === 0 && sni === null) sni = decodeHostName(name);
  }
  return sni;
}

/** RFC 7301 §3.1: a non-empty list of non-empty protocol names. */
function parseAlpn(r: Reader): string[] {
  const list = r.sub(r.u16('ALPN list length'), 'ALPN list');
  if (r.remaining !== 0) throw new Malformed('trailing bytes after ALPN list');
  const out: string[] = [];
  while (list.remaining > 0) {
    const length = list.u8('ALPN protocol length');
    if (length === 0) throw new Malformed('empty ALPN protocol name');
    out.push(String.fromCharCode(...list.bytes(length, 'ALPN protocol')));
  }
  if (out.length === 0) throw new Malformed('empty ALPN list');
  return out;
}

function parseHelloBody(body: Uint8Array): ClientHelloResult {
  const r = new Reader(body);
  r.skip(2, 'legacy_version');
  r.skip(32, 'random');
  const sessionId = r.u8('session_id length');
  if (sessionId > 32) throw new Malformed(`session_id length ${sessionId} exceeds 32`);
  r.skip(sessionId, 'session_id');
  const suites = r.u16('cipher_suites length');
  if (suites === 0 || suites % 2 !== 0) throw new Malformed(`cipher_suites length ${suites} is not a positive even number`);
  r.skip(suites, 'cipher_suites');
  const compression = r.u8('compression_methods length');
  if (compression === 0) throw new Malformed('no compression methods');
  r.skip(compression, 'compression_methods');
  let sni: string | null = null;
  let alpn: string[] = [];
  if (r.remaining === 0) return { kind: 'hello', sni, alpn }; // pre-extension (SSL 3.0 style) hello
  const extensions = r.sub(r.u16('extensions length'), 'extensions');
  if (r.remaining !== 0) throw new Malformed('trailing bytes after extensions');
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16('extension type');
    const data = extensions.sub(extensions.u16('extension length'), 'extension data');
    if (seen.has(type)) throw new Malformed(`duplicate extension ${type}`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) sni = parseServerName(data);
    else if (type === EXT_ALPN) alpn = parseAlpn(data);
  }
  return { kind: 'hello', sni, alpn };
}

/**
 * Parses the ClientHello at the start of `buf`. `sni` is lower-cased with a
 * trailing dot removed; `alpn` keeps the client's order. Bytes after the
 * hello are ignored.
 */
export function parseClientHello(buf: Uint8Array): ClientHelloResult {
  const message = reassembleHandshake(buf);
  if (message.kind !== 'message') return message;
  try {
    return parseHelloBody(message.body);
  } catch (err) {
    if (err instanceof Malformed) return { kind: 'malformed', reason: err.message };
    throw err;
  }
}

/**
 * The CONNECT request head as most clients send it, read without an HTTP
 * parser: the explicit listener (proxy-server.ts) reads a connection's first
 * bytes with this, and only a complete, plain CONNECT head is taken here;
 * anything else — another method, a head split over several reads, anything
 * unusual in it — is "other" and goes to the HTTP server's parser, which
 * answers (or refuses) it exactly as it answers every request.
 *
 *   CONNECT SP authority SP HTTP/1.1 CRLF      authority: letters, digits, - . _ : [ ]
 *   *( field-name ":" field-value CRLF )       name: RFC 9110 token; value: printable ASCII, SP, HTAB
 *   CRLF                                       the whole head within `maxBytes`
 *
 * Strict on purpose: a head taken here is one the HTTP parser would take with
 * the same request target, so the target is then checked as before
 * (parseConnectAuthority). `Content-Length` and `Transfer-Encoding` (framing
 * a CONNECT has no use for) send the head to the HTTP parser too, as do
 * obs-fold, bare CR or LF, and any byte outside printable ASCII.
 */

export type ConnectHead =
  /** `headLength`: the bytes up to and including the blank line; what follows is tunnel data. */
  { kind: 'connect'; authority: string; headLength: number } | { kind: 'other' };

const OTHER: ConnectHead = { kind: 'other' };

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** "CONNECT " */
const METHOD = [0x43, 0x4f, 0x4e, 0x4e, 0x45, 0x43, 0x54, 0x20];
/** " HTTP/1." — then 0 or 1, CR, LF. */
const VERSION = [0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e];

/** Bytes allowed in the authority: letters, digits, `-` `.` `_` `:` `[` `]`. */
const AUTHORITY = new Uint8Array(256);
/** RFC 9110 tchar. */
const TOKEN = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) AUTHORITY[c] = TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) AUTHORITY[c] = TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) AUTHORITY[c] = TOKEN[c] = 1;
for (const ch of '-._:[]') AUTHORITY[ch.charCodeAt(0)] = 1;
for (const ch of "!#$%&'*+-.^_`|~") TOKEN[ch.charCodeAt(0)] = 1;

/** Lower-cased field names a CONNECT head taken here must not carry. */
const FRAMING = ['content-length', 'transfer-encoding'];

/** Whether bytes [from, to) are, ASCII case-insensitively, one of FRAMING. */
function isFraming(b: Uint8Array, from: number, to: number): boolean {
  for (const name of FRAMING) {
    if (to - from !== name.length) continue;
    let i = 0;
    while (i < name.length && (b[from + i]! | 0x20) === name.charCodeAt(i)) i++;
    if (i === name.length) return true;
  }
  return false;
}

/**
 * Reads a CONNECT head at the start of `b`. `other` when `b` does not start
 * with a complete head of the form above within `maxBytes` (also when it is
 * only the beginning of one).
 */
export function readConnectHead(b: Uint8Array, maxBytes: number): ConnectHead {
  const end = Math.min(b.length, maxBytes);
  if (end < METHOD.length) return OTHER;
  for (let i = 0; i < METHOD.length; i++) if (b[i] !== METHOD[i]) return OTHER;
  let at = METHOD.length;
  const authorityStart = at;
  while (at < end && AUTHORITY[b[at]!] === 1) at++;
  const authorityEnd = at;
  if (authorityEnd === authorityStart) return OTHER;
  if (at + VERSION.length + 3 > end) return OTHER;
  for (let i = 0; i < VERSION.length; i++) if (b[at + i] !== VERSION[i]) return OTHER;
  at += VERSION.length;
  const minor = b[at];
  if ((minor !== 0x30 && minor !== 0x31) || b[at + 1] !== CR || b[at + 2] !== LF) return OTHER;
  at += 3;
  // Field lines until the blank line.
  for (;;) {
    if (at + 2 > end) return OTHER;
    if (b[at] === CR) {
      if (b[at + 1] !== LF) return OTHER;
      at += 2;
      break;
    }
    const nameStart = at;
    while (at < end && TOKEN[b[at]!] === 1) at++;
    if (at === nameStart || at >= end || b[at] !== COLON) return OTHER;
    if (isFraming(b, nameStart, at)) return OTHER;
    at++;
    while (at < end) {
      const c = b[at]!;
      if ((c >= SP && c < 0x7f) || c === HTAB) at++;
      else break;
    }
    if (at + 2 > end || b[at] !== CR || b[at + 1] !== LF) return OTHER;
    at += 2;
  }
  return {
    kind: 'connect',
    authority: Buffer.from(b.buffer, b.byteOffset + authorityStart, authorityEnd - authorityStart).toString('latin1'),
    headLength: at,
  };
}

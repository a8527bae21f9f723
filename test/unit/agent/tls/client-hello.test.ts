import fc from 'fast-check';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../../../agent/tls/client-hello.js';

describe('parseClientHello with hellos captured from Node', () => {
  let withSni: Buffer;
  let withoutSni: Buffer;

  beforeAll(async () => {
    withSni = await captureClientHello({ servername: 'sts.us-east-1.amazonaws.com', ALPNProtocols: ['h2', 'http/1.1'] });
    withoutSni = await captureClientHello({});
  });

  it('reads SNI and ALPN', () => {
    expect(parseClientHello(withSni)).toEqual({ kind: 'hello', sni: 'sts.us-east-1.amazonaws.com', alpn: ['h2', 'http/1.1'] });
  });

  it('reports no SNI for an IP-literal connection', () => {
    expect(parseClientHello(withoutSni)).toEqual({ kind: 'hello', sni: null, alpn: [] });
  });

  it('answers incomplete for every strict prefix', () => {
    for (let n = 0; n < withSni.length; n++) {
      expect(parseClientHello(withSni.subarray(0, n)), `prefix of ${n} bytes`).toEqual({ kind: 'incomplete' });
    }
  });

  it('ignores bytes after the hello', () => {
    expect(parseClientHello(Buffer.concat([withSni, Buffer.from([23, 3, 3, 0, 1, 0])]))).toMatchObject({ kind: 'hello' });
  });

  it('reassembles a hello split over several records', () => {
    for (const size of [1, 7, 100, 512]) {
      const split = reframe(withSni, size);
      expect(parseClientHello(split), `records of ${size} bytes`).toEqual(parseClientHello(withSni));
      expect(parseClientHello(split.subarray(0, split.length - 1))).toEqual({ kind: 'incomplete' });
    }
  });

  it('never throws on mutated real hellos', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(), (flips, cut) => {
        const bytes = Buffer.from(withSni);
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        const result = parseClientHello(bytes.subarray(0, cut % (bytes.length + 1)));
        expect(['hello', 'incomplete', 'not-tls', 'malformed']).toContain(result.kind);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('parseClientHello on synthetic input', () => {
  it('answers not-tls for plain HTTP, SSLv2 and non-3.x versions', () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ kind: 'not-tls' });
    expect(parseClientHello(Buffer.from('CONNECT a:443 HTTP/1.1\r\n'))).toEqual({ kind: 'not-tls' });
    expect(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02]))).toEqual({ kind: 'not-tls' });
    expect(parseClientHello(Buffer.from([22, 2, 0]))).toEqual({ kind: 'not-tls' });
    expect(parseClientHello(Buffer.from([22]))).toEqual({ kind: 'incomplete' });
  });

  it('lower-cases the name and drops a trailing dot', () => {
    expect(parseClientHello(hello({ sni: 'STS.Amazonaws.COM.' }))).toEqual({ kind: 'hello', sni: 'sts.amazonaws.com', alpn: [] });
  });

  it('accepts a hello without extensions', () => {
    expect(parseClientHello(hello({ noExtensions: true }))).toEqual({ kind: 'hello', sni: null, alpn: [] });
  });

  it('skips unknown extensions and non-host_name entries', () => {
    const entries = Buffer.concat([Buffer.from([9]), u16(0), Buffer.from([0]), u16(4), Buffer.from('a.io')]);
    const serverName = Buffer.concat([u16(entries.length), entries]);
    const ext = Buffer.concat([extension(0x1234, Buffer.from('xyz')), extension(0, serverName)]);
    expect(parseClientHello(hello({ rawExtensions: ext }))).toEqual({ kind: 'hello', sni: 'a.io', alpn: [] });
  });

  it.each([
    ['a ServerHello', hello({ handshakeType: 2 }), /not ClientHello/],
    ['a record over 16 KiB', Buffer.from([22, 3, 1, 0x40, 0x01]), /exceeds 16384/],
    ['an empty record', Buffer.from([22, 3, 1, 0, 0]), /empty handshake record/],
    [
      'an alert inside the hello',
      Buffer.concat([reframe(hello({ sni: 'a.io' }), 10).subarray(0, 15), Buffer.from([21, 3, 3, 0, 2, 2, 40])]),
      /record of type 21/,
    ],
    [
      'a duplicate extension',
      hello({ rawExtensions: Buffer.concat([extension(5, Buffer.alloc(0)), extension(5, Buffer.alloc(0))]) }),
      /duplicate extension 5/,
    ],
    ['a NUL in the server name', hello({ sni: 'evil.com\u0000.amazonaws.com' }), /not printable ASCII/],
    ['an empty server name', hello({ sni: '' }), /empty server_name/],
    // "a.." used to be read as "a." — a name that still ended with a dot, and so never equalled the CONNECT host.
    ['a server name with two trailing dots', hello({ sni: 'sts.amazonaws.com..' }), /empty label/],
    ['a server name of one dot', hello({ sni: '.' }), /empty label/],
    ['a server name with an empty label', hello({ sni: 'sts..amazonaws.com' }), /empty label/],
    ['a server name with a leading dot', hello({ sni: '.amazonaws.com' }), /empty label/],
    ['an empty ALPN protocol', hello({ alpnRaw: Buffer.from([0]) }), /empty ALPN protocol/],
    ['an empty ALPN list', hello({ alpnRaw: Buffer.alloc(0) }), /empty ALPN list/],
    ['a session id over 32 bytes', hello({ sessionIdLength: 33 }), /session_id length 33/],
    ['an odd cipher suite length', hello({ cipherSuites: Buffer.from([0x13, 0x01, 0x00]) }), /cipher_suites length 3/],
    ['an extension overrunning its list', hello({ rawExtensions: Buffer.from([0, 0, 0, 9, 1]) }), /runs past/],
    ['trailing bytes after the extensions', hello({ trailing: Buffer.from([0]) }), /trailing bytes after extensions/],
    ['a hello over 64 KiB', Buffer.from([22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x01]), /exceeds 65536/],
  ])('answers malformed for %s', (_name, bytes, reason) => {
    const result = parseClientHello(bytes);
    expect(result.kind).toBe('malformed');
    expect(result.kind === 'malformed' && result.reason).toMatch(reason);
  });

  it(`never answers incomplete beyond ${MAX_CLIENT_HELLO_BYTES} bytes of records`, () => {
    // A 60 KiB hello (within the message limit) sent as 1-byte records needs 6x the bytes.
    const body = Buffer.alloc(60 * 1024);
    const message = Buffer.concat([Buffer.from([1, 0, 0xf0, 0x00]), body]);
    const framed = reframe(Buffer.concat([Buffer.from([22, 3, 1]), u16(message.length), message]), 1);
    const result = parseClientHello(framed.subarray(0, MAX_CLIENT_HELLO_BYTES + 10));
    expect(result).toMatchObject({ kind: 'malformed', reason: expect.stringMatching(/exceed/) });
  });

  it('never throws on random bytes', () => {
    const tlsPrefixed = fc
      .uint8Array({ maxLength: 600 })
      .map((rest) =>
        Uint8Array.from([
          22,
          3,
          1,
          rest.length >> 8,
          rest.length & 255,
          1,
          0,
          ((rest.length - 4) >> 8) & 255,
          (rest.length - 4) & 255,
          ...rest,
        ]),
      );
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), tlsPrefixed), (bytes) => {
        const result = parseClientHello(bytes);
        expect(['hello', 'incomplete', 'not-tls', 'malformed']).toContain(result.kind);
      }),
      { numRuns: 5000 },
    );
  });
});

// ── helpers ─────────────────────────────────────────────────────────────────

/** Connects with Node's TLS client to a raw TCP listener and returns the first flight. */
async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no complete ClientHello within 5 s')), 5000);
      server.once('connection', (socket) => {
        let seen = Buffer.alloc(0);
        socket.on('error', () => undefined);
        socket.on('data', (chunk: Buffer) => {
          seen = Buffer.concat([seen, chunk]);
          if (parseClientHello(seen).kind === 'incomplete') return;
          clearTimeout(timer);
          socket.destroy();
          resolve(seen);
        });
      });
      const client = tls.connect({ host: '127.0.0.1', port, ...options });
      client.on('error', () => undefined); // the listener hangs up mid-handshake
    });
  } finally {
    server.close();
  }
}

function u16(n: number): Buffer {
  return Buffer.from([(n >> 8) & 255, n & 255]);
}

function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

/** Re-frames the handshake bytes of one record into records of at most `size` bytes. */
function reframe(record: Buffer, size: number): Buffer {
  const payload = record.subarray(5, 5 + record.readUInt16BE(3));
  const parts: Buffer[] = [];
  for (let at = 0; at < payload.length; at += size) {
    const piece = payload.subarray(at, at + size);
    parts.push(Buffer.from([22, 3, 1]), u16(piece.length), piece);
  }
  return Buffer.concat(parts);
}

interface HelloSpec {
  sni?: string;
  alpnRaw?: Buffer;
  rawExtensions?: Buffer;
  noExtensions?: boolean;
  handshakeType?: number;
  sessionIdLength?: number;
  cipherSuites?: Buffer;
  trailing?: Buffer;
}

/** A minimal ClientHello record built field by field. */
function hello(spec: HelloSpec): Buffer {
  const exts: Buffer[] = [];
  if (spec.sni !== undefined) {
    const name = Buffer.from(spec.sni, 'latin1');
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    exts.push(extension(0, Buffer.concat([u16(entry.length), entry])));
  }
  if (spec.alpnRaw) exts.push(extension(16, Buffer.concat([u16(spec.alpnRaw.length), spec.alpnRaw])));
  if (spec.rawExtensions) exts.push(spec.rawExtensions);
  const extBytes = Buffer.concat(exts);
  const sessionId = Buffer.alloc(spec.sessionIdLength ?? 0);
  const suites = spec.cipherSuites ?? Buffer.from([0x13, 0x01]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([sessionId.length]),
    sessionId,
    u16(suites.length),
    suites,
    Buffer.from([1, 0]),
    spec.noExtensions ? Buffer.alloc(0) : Buffer.concat([u16(extBytes.length), extBytes]),
    spec.trailing ?? Buffer.alloc(0),
  ]);
  const message = Buffer.concat([Buffer.from([spec.handshakeType ?? 1, 0]), u16(body.length), body]);
  return Buffer.concat([Buffer.from([22, 3, 1]), u16(message.length), message]);
}

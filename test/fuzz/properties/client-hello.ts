/**
 * The TLS ClientHello peek (agent/tls/client-hello.ts): hellos built field by
 * field (SNI, ALPN, GREASE-like and unknown extensions, session ids, any
 * record fragmentation), then damaged byte-wise.
 *
 * Properties: never throws; an undamaged hello reads back exactly what was
 * built; every strict prefix of one is "incomplete"; a name it reports is
 * printable lower-case ASCII without a trailing dot.
 */
import fc from 'fast-check';
import { parseClientHello, type ClientHelloResult } from '../../../agent/tls/client-hello.js';
import { applyByteMutations, byteMutation } from '../lib/mutate.js';
import { callParser, deepEqual, ensure, type FuzzTarget } from '../lib/target.js';

export interface HelloSpec {
  /** Raw server_name bytes as latin1 text; null = no SNI extension. */
  sni: string | null;
  alpn: string[];
  sessionId: number;
  suites: number[];
  compression: number[];
  extra: { type: number; data: Uint8Array }[];
  recordVersion: number;
  /** Handshake bytes per record (fragmentation). */
  recordSize: number;
  /** Where SNI and ALPN go among the other extensions. */
  order: number[];
}

const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 255, n & 255]);
const extension = (type: number, data: Uint8Array): Buffer => Buffer.concat([u16(type), u16(data.length), data]);

/** The handshake message, framed into records of at most `recordSize` bytes. */
export function buildClientHello(spec: HelloSpec): Buffer {
  const exts: Buffer[] = spec.extra.map((e) => extension(e.type, e.data));
  const mine: Buffer[] = [];
  if (spec.sni !== null) {
    const name = Buffer.from(spec.sni, 'latin1');
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    mine.push(extension(0, Buffer.concat([u16(entry.length), entry])));
  }
  if (spec.alpn.length > 0) {
    const list = Buffer.concat(spec.alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])));
    mine.push(extension(16, Buffer.concat([u16(list.length), list])));
  }
  mine.forEach((e, i) => exts.splice((spec.order[i] ?? 0) % (exts.length + 1), 0, e));
  const extBytes = Buffer.concat(exts);
  const suites = Buffer.concat(spec.suites.map(u16));
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 0x5a),
    Buffer.from([spec.sessionId]),
    Buffer.alloc(spec.sessionId, 0x11),
    u16(suites.length),
    suites,
    Buffer.from([spec.compression.length, ...spec.compression]),
    u16(extBytes.length),
    extBytes,
  ]);
  const message = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 255, body.length & 255]), body]);
  const records: Buffer[] = [];
  for (let at = 0; at < message.length; at += spec.recordSize) {
    const piece = message.subarray(at, at + spec.recordSize);
    records.push(Buffer.from([22, 3, spec.recordVersion]), u16(piece.length), piece);
  }
  return Buffer.concat(records);
}

/** What parseClientHello must answer for an undamaged hello of `spec`. */
export function expectedHello(spec: HelloSpec): ClientHelloResult {
  let sni: string | null = null;
  if (spec.sni !== null) {
    const lower = spec.sni.replace(/[A-Z]/g, (c) => c.toLowerCase());
    sni = lower.endsWith('.') ? lower.slice(0, -1) : lower;
    if (sni.split('.').some((label) => label === '')) return { kind: 'malformed', reason: 'server_name has an empty label' };
  }
  return { kind: 'hello', sni, alpn: spec.alpn };
}

const hostChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._*~!'.split(''));
const sni = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('sts.us-east-1.amazonaws.com', 'S3.AMAZONAWS.COM.', 'ec2.eu-west-1.api.aws', 'a.io', 'x.') },
  { weight: 3, arbitrary: fc.string({ unit: hostChar, minLength: 1, maxLength: 253 }) },
  { weight: 1, arbitrary: fc.constant(null) },
);
const alpnName = fc.oneof(fc.constantFrom('h2', 'http/1.1', 'acme-tls/1'), fc.string({ unit: hostChar, minLength: 1, maxLength: 40 }));

export const helloSpec: fc.Arbitrary<HelloSpec> = fc.record({
  sni,
  alpn: fc.array(alpnName, { maxLength: 4 }),
  sessionId: fc.oneof(fc.constant(0), fc.constant(32), fc.integer({ min: 0, max: 32 })),
  suites: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 20 }),
  compression: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 3 }),
  extra: fc.uniqueArray(
    fc.record({
      type: fc.oneof(fc.constantFrom(0x0a0a, 0x2b, 0x33, 0x0d, 0xff01, 0x4469), fc.integer({ min: 17, max: 0xffff })),
      data: fc.uint8Array({ maxLength: 300 }),
    }),
    { selector: (e) => e.type, maxLength: 8 },
  ),
  recordVersion: fc.constantFrom(1, 3),
  recordSize: fc.oneof(fc.constant(16_384), fc.integer({ min: 1, max: 600 })),
  order: fc.array(fc.nat(), { minLength: 2, maxLength: 2 }),
});

interface HelloCase {
  spec: HelloSpec;
  bytes: Buffer;
  kind: 'intact' | 'prefix' | 'mutated' | 'random';
}

const helloCase: fc.Arbitrary<HelloCase> = fc.oneof(
  { weight: 2, arbitrary: helloSpec.map((spec) => ({ spec, bytes: buildClientHello(spec), kind: 'intact' as const })) },
  {
    weight: 1,
    arbitrary: fc.tuple(helloSpec, fc.nat()).map(([spec, cut]) => {
      const full = buildClientHello(spec);
      return { spec, bytes: full.subarray(0, cut % full.length), kind: 'prefix' as const };
    }),
  },
  {
    weight: 6,
    arbitrary: fc
      .tuple(helloSpec, fc.array(byteMutation, { minLength: 1, maxLength: 6 }))
      .map(([spec, ms]) => ({ spec, bytes: applyByteMutations(buildClientHello(spec), ms), kind: 'mutated' as const })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(helloSpec, fc.uint8Array({ maxLength: 1200 }))
      .map(([spec, bytes]) => ({ spec, bytes: Buffer.from(bytes), kind: 'random' as const })),
  },
);

const KINDS = new Set(['hello', 'incomplete', 'not-tls', 'malformed']);

export const clientHelloTarget: FuzzTarget<HelloCase> = {
  name: 'client-hello',
  title: 'TLS ClientHello peek (SNI, ALPN)',
  arbitrary: helloCase,
  check({ spec, bytes, kind }) {
    const result = callParser('parseClientHello', () => parseClientHello(bytes));
    ensure(result && KINDS.has(result.kind), () => `unexpected answer ${fc.stringify(result)}`);
    if (result.kind === 'malformed') ensure(typeof result.reason === 'string' && result.reason !== '', 'malformed without a reason');
    if (result.kind === 'hello') {
      ensure(result.sni === null || /^[\x21-\x40\x5b-\x7e]*$/.test(result.sni), () => `SNI not lower-case printable: ${result.sni}`);
      ensure(result.sni === null || !result.sni.endsWith('.'), 'SNI keeps its trailing dot');
      ensure(
        result.alpn.every((p) => typeof p === 'string' && p.length > 0),
        'empty ALPN protocol reported',
      );
    }
    const built = buildClientHello(spec);
    if (kind === 'intact') {
      const want = expectedHello(spec);
      ensure(deepEqual(result, want), () => `built hello read back as ${fc.stringify(result)}, expected ${fc.stringify(want)}`);
    }
    if (kind === 'prefix' && bytes.length < built.length) {
      ensure(result.kind === 'incomplete', () => `a ${bytes.length}-byte prefix of a ${built.length}-byte hello answered ${result.kind}`);
    }
  },
};

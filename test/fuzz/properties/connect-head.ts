/**
 * The CONNECT head read on an explicit connection's first bytes
 * (agent/proxy/connect-head.ts): heads built line by line (authorities,
 * HTTP/1.0 and 1.1, field names in any case, values with tabs and spaces,
 * tunnel bytes after the head), then damaged byte-wise, read under several
 * size limits.
 *
 * Properties: never throws; it answers exactly as the grammar written out
 * below as one regular expression (a second, independent reading); an
 * undamaged head reads back as built, with the head's exact length; no
 * strict prefix of a head is taken; nothing with a Content-Length or
 * Transfer-Encoding field, a bare CR or LF, or a byte outside printable
 * ASCII and HTAB in the head is taken.
 */
import fc from 'fast-check';
import { readConnectHead, type ConnectHead } from '../../../agent/proxy/connect-head.js';
import { applyByteMutations, byteMutation, type ByteMutation } from '../lib/mutate.js';
import { callParser, deepEqual, ensure, type FuzzTarget } from '../lib/target.js';

interface HeadCase {
  bytes: Buffer;
  maxBytes: number;
  /** What an undamaged head must read as; null when damaged. */
  expected: ConnectHead | null;
}

/** The same grammar, written out independently. */
const GRAMMAR = /^CONNECT ([A-Za-z0-9._:[\]-]+) HTTP\/1\.[01]\r\n((?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e]*\r\n)*)\r\n/;

function byGrammar(bytes: Buffer, maxBytes: number): ConnectHead {
  const m = GRAMMAR.exec(bytes.toString('latin1'));
  if (!m || m[0].length > maxBytes) return { kind: 'other' };
  const names = (m[2] ?? '').split('\r\n').map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
  if (names.includes('content-length') || names.includes('transfer-encoding')) return { kind: 'other' };
  return { kind: 'connect', authority: m[1] ?? '', headLength: m[0].length };
}

const tchar = fc.constantFrom(..."!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split(''));
const fieldName = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'Host',
      'User-Agent',
      'Proxy-Connection',
      'proxy-authorization',
      'X-Amz-Date',
      'CONTENT-length',
      'transfer-Encoding',
    ),
  },
  { weight: 2, arbitrary: fc.array(tchar, { minLength: 1, maxLength: 16 }).map((cs) => cs.join('')) },
);
const fieldValue = fc
  .array(
    fc
      .integer({ min: 0x20, max: 0x7e })
      .map((c) => String.fromCharCode(c))
      .chain((c) => fc.constantFrom(c, '\t', ' ')),
    { maxLength: 40 },
  )
  .map((cs) => cs.join(''));
const authority = fc.oneof(
  fc.constantFrom('sts.us-east-1.amazonaws.com:443', '127.0.0.1:8443', '[::1]:443', 'bucket_1.s3.amazonaws.com:443', 'a:1'),
  fc.tuple(fc.stringMatching(/^[A-Za-z0-9._-]{1,30}$/), fc.integer({ min: 0, max: 99999 })).map(([h, p]) => `${h}:${p}`),
);

const headCase: fc.Arbitrary<HeadCase> = fc
  .record({
    authority,
    minor: fc.constantFrom('0', '1'),
    fields: fc.array(fc.tuple(fieldName, fc.constantFrom(':', ': ', ':\t'), fieldValue), { maxLength: 6 }),
    after: fc.uint8Array({ maxLength: 32 }),
    maxBytes: fc.oneof(fc.constantFrom(8192, 65536), fc.integer({ min: 0, max: 400 })),
    mutations: fc.oneof(
      { weight: 1, arbitrary: fc.constant([] as ByteMutation[]) },
      { weight: 3, arbitrary: fc.array(byteMutation, { minLength: 1, maxLength: 3 }) },
    ),
  })
  .map(({ authority: a, minor, fields, after, maxBytes, mutations }) => {
    const head = `CONNECT ${a} HTTP/1.${minor}\r\n${fields.map(([n, sep, v]) => `${n}${sep}${v}\r\n`).join('')}\r\n`;
    const built = Buffer.concat([Buffer.from(head, 'latin1'), after]);
    const framing = fields.some(([n]) => ['content-length', 'transfer-encoding'].includes(n.toLowerCase()));
    const expected: ConnectHead | null =
      mutations.length > 0
        ? null
        : framing || head.length > maxBytes
          ? { kind: 'other' }
          : { kind: 'connect', authority: a, headLength: head.length };
    return { bytes: mutations.length > 0 ? applyByteMutations(built, mutations) : built, maxBytes, expected };
  });

export const connectHeadTarget: FuzzTarget<HeadCase> = {
  name: 'connect-head',
  title: 'CONNECT request head on a connection’s first read',
  arbitrary: headCase,
  check({ bytes, maxBytes, expected }) {
    const got = callParser('readConnectHead', () => readConnectHead(bytes, maxBytes));
    ensure(got !== undefined, 'no answer');
    const want = byGrammar(bytes, maxBytes);
    ensure(deepEqual(got, want), () => `read ${fc.stringify(got)}, the grammar says ${fc.stringify(want)}`);
    if (expected) ensure(deepEqual(got, expected), () => `undamaged head read as ${fc.stringify(got)}, built ${fc.stringify(expected)}`);
    if (got.kind !== 'connect') return;
    const head = bytes.subarray(0, got.headLength);
    for (let n = 0; n < got.headLength; n += Math.max(1, Math.floor(got.headLength / 16)))
      ensure(readConnectHead(bytes.subarray(0, n), maxBytes).kind === 'other', () => `prefix of ${n} bytes taken`);
    ensure(
      head.every((c) => (c >= 0x20 && c < 0x7f) || c === 0x09 || c === 0x0d || c === 0x0a),
      'a byte outside printable ASCII taken',
    );
    ensure(!/\r(?!\n)|(?<!\r)\n/.test(head.toString('latin1')), 'a bare CR or LF taken');
    ensure(!/\r\n(content-length|transfer-encoding):/i.test(head.toString('latin1')), 'a framing field taken');
  },
};

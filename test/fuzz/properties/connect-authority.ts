/**
 * What a client asks the proxy for (agent/net/authority.ts): CONNECT
 * authorities (`host:port`, `[v6]:port`) and absolute-form URLs, built from
 * names, IPv4 and IPv6 literals (compressed, mapped, zone-less) and ports,
 * then damaged as text.
 *
 * Properties: never throws; a result has a lower-case host without a
 * trailing dot and a port in 1-65535; it is canonical (reading its own
 * rendering gives it back); IP-shorthand names ("127.1", "0x7f.1") are never
 * taken for host names; an undamaged authority reads back as built.
 */
import fc from 'fast-check';
import { parseAbsoluteUrl, parseConnectAuthority, type Target } from '../../../agent/net/authority.js';
import { applyTextMutations, textMutation } from '../lib/mutate.js';
import { callParser, deepEqual, ensure, type FuzzTarget } from '../lib/target.js';

interface AuthorityCase {
  authority: string;
  url: string;
  /** The canonical host and port when undamaged and valid by construction; null otherwise. */
  expected: { host: string; port: number } | null;
}

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
const name = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom('sts.us-east-1.amazonaws.com', 'S3.AMAZONAWS.COM.', 'bucket_1.s3.amazonaws.com', 'localhost') },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.stringMatching(/^[a-z]{2,6}$/), fc.boolean())
      .map(([labels, tld, dot]) => `${[...labels, tld].join('.')}${dot ? '.' : ''}`),
  },
);
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const ipv6 = fc.oneof(
  fc.ipV6(),
  fc.constantFrom('::1', '::', '::ffff:127.0.0.1', '2001:db8::1', 'fe80::1', '64:ff9b::7f00:1', '2600:1f00::ABCD'),
);
const port = fc.oneof(fc.constantFrom(443, 80, 1, 65535, 0, 65536, 99999), fc.integer({ min: 1, max: 65535 }));

const authorityCase: fc.Arbitrary<AuthorityCase> = fc
  .tuple(
    fc.oneof(
      name.map((h) => ({ text: h, kind: 'name' as const })),
      ipv4.map((h) => ({ text: h, kind: 'v4' as const })),
      ipv6.map((h) => ({ text: `[${h}]`, kind: 'v6' as const })),
    ),
    port,
    fc.array(textMutation, { maxLength: 3 }),
    fc.constantFrom('/', '/a?b=c', '?x', '', '/p#frag', '/%41'),
  )
  .map(([host, p, ms, path]) => {
    const authority = `${host.text}:${p}`;
    const damaged = applyTextMutations(authority, ms);
    const validPort = p >= 1 && p <= 65535;
    const canonicalName = host.text.toLowerCase().replace(/\.$/, '');
    const expected =
      ms.length === 0 && validPort && host.kind === 'name' && !/^[0-9.]+$/.test(canonicalName) && !/\.\d+$/.test(canonicalName)
        ? { host: canonicalName, port: p }
        : null;
    return { authority: damaged, url: `http://${damaged}${path}`, expected };
  });

function render(t: Target): string {
  return `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

function checkTarget(t: Target, what: string): void {
  ensure(t.host === t.host.toLowerCase() && !t.host.endsWith('.') && t.host !== '', () => `${what}: host not canonical: ${t.host}`);
  ensure(Number.isInteger(t.port) && t.port >= 1 && t.port <= 65535, () => `${what}: port out of range: ${t.port}`);
  if (!t.isIp) ensure(!/^[0-9.]+$/.test(t.host) && !/^0x[0-9a-f]+$/.test(t.host), () => `${what}: IP shorthand taken as a name: ${t.host}`);
  const again = parseConnectAuthority(render(t));
  ensure(
    again !== null && deepEqual(again, { host: t.host, port: t.port, isIp: t.isIp }),
    () => `${what}: ${render(t)} does not read back as itself (${fc.stringify(again)})`,
  );
}

export const connectAuthorityTarget: FuzzTarget<AuthorityCase> = {
  name: 'connect-authority',
  title: 'CONNECT authority and absolute-form URL',
  arbitrary: authorityCase,
  check({ authority, url, expected }) {
    const t = callParser('parseConnectAuthority', () => parseConnectAuthority(authority));
    if (t) checkTarget(t, `CONNECT ${authority}`);
    if (expected) ensure(t && t.host === expected.host && t.port === expected.port, () => `${authority} read as ${fc.stringify(t)}`);
    const u = callParser('parseAbsoluteUrl', () => parseAbsoluteUrl(url));
    ensure(u !== undefined, 'no answer');
    if (!('error' in u)) {
      checkTarget(u, `URL ${url}`);
      ensure(u.path.startsWith('/') && !u.path.includes('#'), () => `URL ${url}: path ${u.path}`);
    }
  },
};

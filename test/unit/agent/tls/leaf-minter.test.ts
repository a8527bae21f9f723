import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, webcrypto } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { AWS_PERMITTED_DOMAINS, createInspectionCa, loadInspectionCa, type InspectionCa } from '../../../../agent/tls/ca.js';
import { LeafMinter, leafNameFor, MAX_LEAF_VALIDITY_MS } from '../../../../agent/tls/leaf-minter.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const STS = 'sts.us-east-1.amazonaws.com';

let plain: { certPem: string; ca: InspectionCa };
let constrained: { certPem: string; ca: InspectionCa };

beforeAll(async () => {
  const a = await createInspectionCa({});
  plain = { certPem: a.certPem, ca: await loadInspectionCa(a.certPem, a.keyPem) };
  const b = await createInspectionCa({ permittedDomains: [...AWS_PERMITTED_DOMAINS] });
  constrained = { certPem: b.certPem, ca: await loadInspectionCa(b.certPem, b.keyPem) };
});

describe('LeafMinter leaves in a real TLS handshake', () => {
  it('serves a leaf that Node trusts for the SNI name', async () => {
    const minter = new LeafMinter(plain.ca, { validityMs: 7 * DAY, cacheSize: 10 });
    const result = await handshake(minter, { servername: STS, ca: plain.certPem });
    expect(result.authorizationError).toBeNull();
    expect(result.authorized).toBe(true);

    const leaf = result.peer;
    const caCert = new X509Certificate(plain.certPem);
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.checkHost(STS)).toBe(STS);
    expect(leaf.checkHost('example.com')).toBeUndefined();
    expect(leaf.ca).toBe(false);
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(leaf.publicKey.asymmetricKeyType).toBe('ec');
    expect(leaf.subjectAltName).toBe(`DNS:${STS}`);
    const now = Date.now();
    expect(Math.abs(Date.parse(leaf.validFrom) - (now - HOUR))).toBeLessThan(60_000);
    expect(Math.abs(Date.parse(leaf.validTo) - (now + 7 * DAY))).toBeLessThan(60_000);
  });

  it('reuses one key pair for every leaf, with distinct serials', async () => {
    const minter = new LeafMinter(plain.ca, { validityMs: DAY, cacheSize: 10 });
    const one = await handshake(minter, { servername: STS, ca: plain.certPem });
    const two = await handshake(minter, { servername: 's3.us-east-1.amazonaws.com', ca: plain.certPem });
    expect(two.authorized).toBe(true);
    expect(two.peer.publicKey.export({ type: 'spki', format: 'der' })).toEqual(one.peer.publicKey.export({ type: 'spki', format: 'der' }));
    expect(two.peer.serialNumber).not.toBe(one.peer.serialNumber);
  });

  it('mints an IP SAN for an IP-literal target', async () => {
    const minter = new LeafMinter(plain.ca, { validityMs: DAY, cacheSize: 10 });
    const { context } = await minter.secureContextFor('127.0.0.1');
    const result = await handshake(minter, { ca: plain.certPem }, context);
    expect(result.authorizationError).toBeNull();
    expect(result.peer.subjectAltName).toBe('IP Address:127.0.0.1');
  });

  it('caps the leaf at the CA expiry', async () => {
    const short = await createInspectionCa({ validityDays: 2 });
    const ca = await loadInspectionCa(short.certPem, short.keyPem);
    const minter = new LeafMinter(ca, { validityMs: 30 * DAY, cacheSize: 10 });
    const result = await handshake(minter, { servername: STS, ca: short.certPem });
    expect(Date.parse(result.peer.validTo)).toBe(Math.floor(ca.notAfter.getTime() / 1000) * 1000);
  });

  it('signs leaves with an RSA CA brought by the operator', async () => {
    const rsa = await rsaCa();
    const minter = new LeafMinter(await loadInspectionCa(rsa.certPem, rsa.keyPem), { validityMs: DAY, cacheSize: 10 });
    const result = await handshake(minter, { servername: STS, ca: rsa.certPem });
    expect(result.authorizationError).toBeNull();
    expect(result.peer.checkIssued(new X509Certificate(rsa.certPem))).toBe(true);
  });
});

describe('name constraints on the CA', () => {
  it.each([
    STS,
    's3.dualstack.eu-west-1.amazonaws.com',
    'bedrock-runtime.us-east-1.api.aws',
    'sts.cn-north-1.amazonaws.com.cn',
    'amazonaws.com',
  ])('lets Node accept %s', async (host) => {
    const minter = new LeafMinter(constrained.ca, { validityMs: DAY, cacheSize: 10 });
    const result = await handshake(minter, { servername: host, ca: constrained.certPem });
    expect(result.authorizationError).toBeNull();
    expect(result.authorized).toBe(true);
  });

  // OpenSSL reports X509_V_ERR_PERMITTED_VIOLATION (47) / EXCLUDED_VIOLATION (48);
  // Node has no name for those codes and says 'UNSPECIFIED'. The unconstrained
  // CA accepting the same name shows the constraint is what refuses it.
  it.each(['example.com', 'notamazonaws.com', 'amazonaws.com.evil.example', 'api.aws.example'])('makes Node reject %s', async (host) => {
    const minter = new LeafMinter(constrained.ca, { validityMs: DAY, cacheSize: 10 });
    const result = await handshake(minter, { servername: host, ca: constrained.certPem });
    expect(result.authorized).toBe(false);
    expect(result.authorizationError).toBe('UNSPECIFIED');
    const control = await handshake(new LeafMinter(plain.ca, { validityMs: DAY, cacheSize: 10 }), { servername: host, ca: plain.certPem });
    expect(control.authorized).toBe(true);
  });

  it('makes Node reject any IP address leaf', async () => {
    const minter = new LeafMinter(constrained.ca, { validityMs: DAY, cacheSize: 10 });
    const { context } = await minter.secureContextFor('127.0.0.1');
    const result = await handshake(minter, { ca: constrained.certPem }, context);
    expect(result.authorized).toBe(false);
    expect(result.authorizationError).toBe('UNSPECIFIED');
  });

  it('makes a strict client refuse the connection', async () => {
    const minter = new LeafMinter(constrained.ca, { validityMs: DAY, cacheSize: 10 });
    await expect(handshake(minter, { servername: 'example.com', ca: constrained.certPem, rejectUnauthorized: true })).rejects.toMatchObject(
      { code: 'UNSPECIFIED' },
    );
  });
});

describe('LeafMinter cache', () => {
  it('counts a miss then hits, and normalizes the host', async () => {
    const minter = new LeafMinter(plain.ca, { validityMs: DAY, cacheSize: 10 });
    const first = await minter.secureContextFor(STS);
    const second = await minter.secureContextFor('STS.us-east-1.amazonaws.com.');
    expect(first.cached).toBe(false);
    expect(second).toEqual({ context: first.context, cached: true });
    expect(minter.stats()).toMatchObject({ size: 1, hits: 1, misses: 1, coalesced: 0 });
    expect(minter.stats().lastMintMs).toBeGreaterThan(0);
  });

  it('evicts the least recently used host', async () => {
    const minter = new LeafMinter(plain.ca, { validityMs: DAY, cacheSize: 2 });
    await minter.secureContextFor('a.amazonaws.com');
    await minter.secureContextFor('b.amazonaws.com');
    expect((await minter.secureContextFor('a.amazonaws.com')).cached).toBe(true); // a is now the newest
    await minter.secureContextFor('c.amazonaws.com'); // evicts b
    expect(minter.stats().size).toBe(2);
    expect((await minter.secureContextFor('a.amazonaws.com')).cached).toBe(true);
    expect((await minter.secureContextFor('c.amazonaws.com')).cached).toBe(true);
    expect((await minter.secureContextFor('b.amazonaws.com')).cached).toBe(false);
    expect(minter.stats()).toMatchObject({ size: 2, hits: 3, misses: 4 });
  });

  it('re-mints an entry once half its validity has passed', async () => {
    let now = Date.now();
    const minter = new LeafMinter(plain.ca, { validityMs: 10 * HOUR, cacheSize: 10, now: () => now });
    const first = await minter.secureContextFor(STS);
    now += 5 * HOUR - 1;
    expect((await minter.secureContextFor(STS)).cached).toBe(true);
    now += 1;
    const renewed = await minter.secureContextFor(STS);
    expect(renewed.cached).toBe(false);
    expect(renewed.context).not.toBe(first.context);
    expect(minter.stats()).toMatchObject({ size: 1, hits: 1, misses: 2 });
  });

  it('coalesces concurrent requests for one host into one mint', async () => {
    const minter = new LeafMinter(plain.ca, { validityMs: DAY, cacheSize: 10 });
    const [a, b, c] = await Promise.all([
      minter.secureContextFor(STS),
      minter.secureContextFor(STS),
      minter.secureContextFor('s3.amazonaws.com'),
    ]);
    expect(a.context).toBe(b.context);
    expect(c.context).not.toBe(a.context);
    expect(minter.stats()).toMatchObject({ size: 2, hits: 0, misses: 2, coalesced: 1 });
  });

  it('refuses hosts that are no host name and caches nothing on failure', async () => {
    const minter = new LeafMinter(plain.ca, { validityMs: DAY, cacheSize: 10 });
    for (const bad of ['', 'bad host', '-a.com', 'a..com', `${'a'.repeat(64)}.com`, 'x/y']) {
      await expect(minter.secureContextFor(bad), JSON.stringify(bad)).rejects.toThrow(/cannot mint a certificate/);
    }
    expect(minter.stats()).toMatchObject({ size: 0, misses: 0 });
  });

  it('rejects once the CA has expired, and recovers nothing into the cache', async () => {
    const old = await createInspectionCa({ validityDays: 1, now: new Date(Date.now() - 10 * DAY) });
    const ca = await loadInspectionCa(old.certPem, old.keyPem, { now: new Date(Date.now() - 9.5 * DAY) });
    const minter = new LeafMinter(ca, { validityMs: DAY, cacheSize: 10 });
    await expect(minter.secureContextFor(STS)).rejects.toThrow(/inspection CA expired/);
    await expect(minter.secureContextFor(STS)).rejects.toThrow(/inspection CA expired/);
    expect(minter.stats()).toMatchObject({ size: 0, misses: 2 });
  });

  it('validates its options', () => {
    expect(() => new LeafMinter(plain.ca, { validityMs: 0, cacheSize: 1 })).toThrow(/validity must be positive/);
    expect(() => new LeafMinter(plain.ca, { validityMs: DAY, cacheSize: 0 })).toThrow(/cache size/);
    expect(MAX_LEAF_VALIDITY_MS).toBe(397 * DAY);
  });

  it('normalizes names for the certificate', () => {
    expect(leafNameFor('S3.Amazonaws.com.')).toEqual({ type: 'dns', value: 's3.amazonaws.com' });
    expect(leafNameFor('[::1]')).toEqual({ type: 'ip', value: '::1' });
    expect(leafNameFor('::ffff:10.0.0.1')).toEqual({ type: 'ip', value: '10.0.0.1' });
  });
});

// ── helpers ─────────────────────────────────────────────────────────────────

interface HandshakeResult {
  authorized: boolean;
  authorizationError: string | null;
  peer: X509Certificate;
}

/**
 * A loopback TLS server the way the proxy will run one: a raw socket wrapped
 * in a server-side TLSSocket whose SNICallback asks the minter; `fixed`
 * serves one context regardless of SNI (for IP-literal targets).
 */
async function handshake(minter: LeafMinter, client: tls.ConnectionOptions, fixed?: tls.SecureContext): Promise<HandshakeResult> {
  const server = net.createServer((raw) => {
    const socket = new tls.TLSSocket(raw, {
      isServer: true,
      ...(fixed ? { secureContext: fixed } : {}),
      SNICallback: (name, cb) => {
        minter.secureContextFor(name).then(
          (r) => cb(null, r.context),
          (err: Error) => cb(err, undefined),
        );
      },
    });
    socket.on('error', () => undefined);
    socket.on('secure', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<HandshakeResult>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...client }, () => {
        const raw = socket.getPeerCertificate(true).raw;
        resolve({
          authorized: socket.authorized,
          authorizationError: socket.authorizationError ? String(socket.authorizationError) : null,
          peer: new X509Certificate(raw),
        });
        socket.destroy();
      });
      socket.on('error', reject);
    });
  } finally {
    server.close();
  }
}

/** An RSA-2048 CA made directly with @peculiar/x509, as an operator's own CA would be. */
async function rsaCa(): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Operator RSA CA',
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + 30 * DAY),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

/**
 * The inspection CA: created by `egress-witness ca`, loaded by the agent to
 * mint leaf certificates for the AWS hosts it inspects.
 *
 * A created CA is ECDSA P-256, `CA:TRUE, pathlen:0` and keyCertSign+cRLSign
 * (both critical). With `permittedDomains` it carries a critical
 * name-constraints extension that permits only those DNS subtrees and
 * excludes every IPv4 and IPv6 address, so a stolen CA key cannot
 * impersonate anything else to the clients that trust it (OpenSSL, Go, Java
 * and browsers enforce it). @peculiar/x509 has no class for the extension, so
 * its DER is written here (RFC 5280 §4.2.1.10).
 *
 * `loadInspectionCa` accepts what operators bring: the first certificate in
 * the PEM is the CA (any further ones are its issuers, served with every
 * leaf); the key may be PKCS#8, SEC1 or PKCS#1 (unencrypted), EC or RSA.
 */
import { DEFAULT_COMMON_NAME, DEFAULT_VALIDITY_DAYS } from './ca-defaults.js';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  createPrivateKey,
  createPublicKey,
  randomBytes,
  webcrypto,
  X509Certificate as NodeX509Certificate,
  type KeyObject,
} from 'node:crypto';

x509.cryptoProvider.set(webcrypto);

export const NAME_CONSTRAINTS_OID = '2.5.29.30';

/** What `egress-witness ca` permits by default: the AWS commercial, dual-stack and China endpoint domains. */
export { AWS_PERMITTED_DOMAINS } from './ca-defaults.js';

export interface InspectionCa {
  /** The CA certificate followed by any issuer certificates, PEM. */
  readonly chainPem: string;
  readonly certificate: x509.X509Certificate;
  readonly signingKey: webcrypto.CryptoKey;
  readonly signingAlgorithm: webcrypto.EcdsaParams | webcrypto.Algorithm;
  /** Hex key id for the leaves' authority key identifier, when the CA has one. */
  readonly subjectKeyId: string | null;
  readonly notAfter: Date;
  /** Colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly fingerprintSha256: string;
}

export interface CreateInspectionCaOptions {
  readonly commonName?: string;
  readonly permittedDomains?: readonly string[];
  readonly validityDays?: number;
  readonly now?: Date;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const DNS_CONSTRAINT = /^\.?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A positive 127-bit serial as hex (RFC 5280: positive, at most 20 octets, unpredictable). */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v >>>= 8) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

function tlv(tag: number, content: readonly number[]): number[] {
  return [tag, ...derLength(content.length), ...content];
}

/** NameConstraints { permittedSubtrees [0] dNSName*, excludedSubtrees [1] iPAddress 0/0 and ::/0 }. */
export function encodeNameConstraints(domains: readonly string[]): Uint8Array {
  const subtree = (generalName: number[]): number[] => tlv(0x30, generalName);
  const permitted = domains.flatMap((d) => subtree(tlv(0x82, [...Buffer.from(d, 'ascii')])));
  const anyV4 = subtree(tlv(0x87, new Array<number>(8).fill(0)));
  const anyV6 = subtree(tlv(0x87, new Array<number>(32).fill(0)));
  return new Uint8Array(tlv(0x30, [...tlv(0xa0, permitted), ...tlv(0xa1, [...anyV4, ...anyV6])]));
}

function normalizeDomains(domains: readonly string[]): string[] {
  return domains.map((raw) => {
    const d = raw.trim().toLowerCase().replace(/\.$/, '');
    if (!DNS_CONSTRAINT.test(d) || d.length > 253) throw new Error(`permitted domain "${raw}" is not a DNS name (e.g. "amazonaws.com")`);
    return d;
  });
}

/** Creates a new self-signed inspection CA; the key is returned as PKCS#8 PEM. */
export async function createInspectionCa(opts: CreateInspectionCaOptions = {}): Promise<{ certPem: string; keyPem: string }> {
  const now = opts.now ?? new Date();
  const validityDays = opts.validityDays ?? DEFAULT_VALIDITY_DAYS;
  if (!Number.isInteger(validityDays) || validityDays < 1) throw new Error(`validityDays must be a positive integer, got ${validityDays}`);
  const commonName = opts.commonName ?? DEFAULT_COMMON_NAME;
  if (commonName.length === 0 || commonName.length > 64) throw new Error('commonName must be 1 to 64 characters');
  const domains = normalizeDomains(opts.permittedDomains ?? []);

  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (domains.length > 0) extensions.push(new x509.Extension(NAME_CONSTRAINTS_OID, true, encodeNameConstraints(domains)));

  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }, { O: ['egress-witness'] }],
    notBefore: new Date(now.getTime() - HOUR_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    keys,
    extensions,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: `${cert.toString('pem')}\n`, keyPem: `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n` };
}

const CURVES: Record<string, { namedCurve: string; hash: string }> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
  secp521r1: { namedCurve: 'P-521', hash: 'SHA-512' },
};

function readPrivateKey(keyPem: string): KeyObject {
  if (keyPem.includes('ENCRYPTED PRIVATE KEY') || /Proc-Type:\s*4,ENCRYPTED/.test(keyPem)) {
    throw new Error(
      'inspect.ca_key is encrypted; store it unencrypted with mode 0600 (openssl pkcs8 -topk8 -nocrypt -in key.pem -out ca-key.pem)',
    );
  }
  try {
    return createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (err) {
    throw new Error(`inspect.ca_key is not a PEM private key: ${(err as Error).message}`, { cause: err });
  }
}

async function importSigningKey(
  key: KeyObject,
): Promise<{ signingKey: webcrypto.CryptoKey; signingAlgorithm: webcrypto.EcdsaParams | webcrypto.Algorithm }> {
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  if (key.asymmetricKeyType === 'ec') {
    const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (!curve) throw new Error(`inspect.ca_key uses curve ${key.asymmetricKeyDetails?.namedCurve}; use P-256, P-384 or P-521`);
    const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: curve.namedCurve }, false, ['sign']);
    return { signingKey, signingAlgorithm: { name: 'ECDSA', hash: curve.hash } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { signingKey: await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']), signingAlgorithm: algorithm };
  }
  throw new Error(`inspect.ca_key is a ${key.asymmetricKeyType} key; use ECDSA (P-256) or RSA`);
}

function firstCertificate(certPem: string): { first: string; chainPem: string } {
  const blocks = certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks || blocks.length === 0) throw new Error('inspect.ca_cert holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  return { first: blocks[0], chainPem: `${blocks.join('\n')}\n` };
}

function checkIsCa(cert: x509.X509Certificate, now: Date): void {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) throw new Error('inspect.ca_cert is not a CA certificate (basicConstraints CA:TRUE is missing)');
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0)
    throw new Error('inspect.ca_cert may not sign certificates (keyUsage lacks keyCertSign)');
  if (now < cert.notBefore) throw new Error(`inspect.ca_cert is not valid before ${cert.notBefore.toISOString()}`);
  if (now > cert.notAfter) throw new Error(`inspect.ca_cert expired on ${cert.notAfter.toISOString()}`);
}

/**
 * Parses the CA certificate and key and checks that they belong together
 * (same public key) and that the certificate is a CA valid at `now`.
 * Throws an `Error` whose message names the config key and the fix.
 */
export async function loadInspectionCa(certPem: string, keyPem: string, opts: { now?: Date } = {}): Promise<InspectionCa> {
  const { first, chainPem } = firstCertificate(certPem);
  let certificate: x509.X509Certificate;
  let fingerprintSha256: string;
  try {
    certificate = new x509.X509Certificate(first);
    fingerprintSha256 = new NodeX509Certificate(first).fingerprint256;
  } catch (err) {
    throw new Error(`inspect.ca_cert is not a valid certificate: ${(err as Error).message}`, { cause: err });
  }
  checkIsCa(certificate, opts.now ?? new Date());

  const privateKey = readPrivateKey(keyPem);
  const fromKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(Buffer.from(certificate.publicKey.rawData))) {
    throw new Error("inspect.ca_key does not match inspect.ca_cert (the key's public half differs from the certificate's)");
  }
  const { signingKey, signingAlgorithm } = await importSigningKey(privateKey);
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  return {
    chainPem,
    certificate,
    signingKey,
    signingAlgorithm,
    subjectKeyId: ski?.keyId ?? null,
    notAfter: certificate.notAfter,
    fingerprintSha256,
  };
}

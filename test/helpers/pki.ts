/**
 * Throwaway PKI for tests: a CA and server certificates for given DNS names
 * and IPs (ECDSA P-256, valid for a day). Nothing touches the disk unless a
 * test writes the PEMs itself.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestCa {
  certPem: string;
  keyPem: string;
  issue(names: { dns?: string[]; ips?: string[] }): Promise<{ certPem: string; keyPem: string }>;
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

export async function createTestCa(name = 'egress-witness test CA'): Promise<TestCa> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01' + webcrypto.getRandomValues(new Uint8Array(8)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), ''),
    name: `CN=${name}`,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const caKeyPem = await pkcs8Pem(keys.privateKey);
  return {
    certPem: ca.toString('pem'),
    keyPem: caKeyPem,
    async issue(names) {
      const leafKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
      const entries: x509.JsonGeneralName[] = [
        ...(names.dns ?? []).map((d) => ({ type: 'dns' as const, value: d })),
        ...(names.ips ?? []).map((i) => ({ type: 'ip' as const, value: i })),
      ];
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: '02' + webcrypto.getRandomValues(new Uint8Array(8)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), ''),
        subject: `CN=${names.dns?.[0] ?? names.ips?.[0] ?? 'test'}`,
        issuer: ca.subject,
        notBefore: new Date(now - 3_600_000),
        notAfter: new Date(now + 86_400_000),
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(entries),
        ],
      });
      return { certPem: cert.toString('pem'), keyPem: await pkcs8Pem(leafKeys.privateKey) };
    },
  };
}

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AWS_PERMITTED_DOMAINS,
  createInspectionCa,
  encodeNameConstraints,
  loadInspectionCa,
  NAME_CONSTRAINTS_OID,
} from '../../../../agent/tls/ca.js';

const DAY = 86_400_000;

describe('createInspectionCa', () => {
  let plain: { certPem: string; keyPem: string };
  let constrained: { certPem: string; keyPem: string };

  beforeAll(async () => {
    plain = await createInspectionCa({});
    constrained = await createInspectionCa({
      commonName: 'Gateway 7 inspection',
      permittedDomains: [...AWS_PERMITTED_DOMAINS],
      validityDays: 30,
    });
  });

  it('is an ECDSA P-256 CA as Node sees it', () => {
    const cert = new X509Certificate(plain.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe('ec');
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.subject).toBe('CN=egress-witness inspection CA\nO=egress-witness');
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(Date.parse(cert.validTo) - Date.now()).toBeGreaterThan(1824 * DAY);
  });

  it('marks basicConstraints (pathlen 0) and keyUsage critical, with a key identifier', () => {
    const cert = new x509.X509Certificate(plain.certPem);
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    expect(bc).toMatchObject({ ca: true, pathLength: 0, critical: true });
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    expect(ku?.critical).toBe(true);
    expect(ku?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
    expect(cert.getExtension(NAME_CONSTRAINTS_OID)).toBeNull();
  });

  it('writes the key as unencrypted PKCS#8 PEM', () => {
    expect(plain.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    expect(createPrivateKey(plain.keyPem).asymmetricKeyType).toBe('ec');
  });

  it('adds critical name constraints when domains are given', () => {
    const cert = new x509.X509Certificate(constrained.certPem);
    const nc = cert.getExtension(NAME_CONSTRAINTS_OID);
    expect(nc?.critical).toBe(true);
    expect(Buffer.from(nc!.value)).toEqual(Buffer.from(encodeNameConstraints(AWS_PERMITTED_DOMAINS)));
    expect(new X509Certificate(constrained.certPem).subject).toBe('CN=Gateway 7 inspection\nO=egress-witness');
    expect(Date.parse(new X509Certificate(constrained.certPem).validTo) - Date.now()).toBeLessThan(30 * DAY + 60_000);
  });

  it('encodes name constraints as DER', () => {
    const der = Buffer.from(encodeNameConstraints(['api.aws']));
    // SEQ { [0] { SEQ { dNSName "api.aws" } }, [1] { SEQ { iPAddress 0/0 }, SEQ { iPAddress ::/0 } } }
    const permitted = Buffer.from([0xa0, 11, 0x30, 9, 0x82, 7, ...Buffer.from('api.aws')]);
    const excluded = Buffer.from([
      0xa1,
      48,
      0x30,
      10,
      0x87,
      8,
      ...new Array<number>(8).fill(0),
      0x30,
      34,
      0x87,
      32,
      ...new Array<number>(32).fill(0),
    ]);
    expect(der).toEqual(Buffer.concat([Buffer.from([0x30, permitted.length + excluded.length]), permitted, excluded]));
  });

  it('refuses bad options', async () => {
    await expect(createInspectionCa({ permittedDomains: ['*.amazonaws.com'] })).rejects.toThrow(/permitted domain "\*.amazonaws.com"/);
    await expect(createInspectionCa({ permittedDomains: ['amazon aws.com'] })).rejects.toThrow(/is not a DNS name/);
    await expect(createInspectionCa({ validityDays: 0 })).rejects.toThrow(/validityDays/);
    await expect(createInspectionCa({ commonName: 'x'.repeat(65) })).rejects.toThrow(/commonName/);
  });
});

describe('loadInspectionCa', () => {
  let a: { certPem: string; keyPem: string };
  let b: { certPem: string; keyPem: string };

  beforeAll(async () => {
    [a, b] = await Promise.all([createInspectionCa({}), createInspectionCa({})]);
  });

  it('loads a matching pair', async () => {
    const ca = await loadInspectionCa(a.certPem, a.keyPem);
    expect(ca.fingerprintSha256).toBe(new X509Certificate(a.certPem).fingerprint256);
    expect(ca.subjectKeyId).toMatch(/^[0-9a-f]{40}$/);
    expect(ca.signingAlgorithm).toEqual({ name: 'ECDSA', hash: 'SHA-256' });
    expect(ca.chainPem).toBe(a.certPem);
    expect(ca.notAfter.getTime()).toBe(Date.parse(new X509Certificate(a.certPem).validTo));
  });

  it('accepts SEC1 keys and keeps issuer certificates in the chain', async () => {
    const sec1 = createPrivateKey(a.keyPem).export({ type: 'sec1', format: 'pem' }).toString();
    const ca = await loadInspectionCa(`${a.certPem}${b.certPem}`, sec1);
    expect(ca.chainPem).toBe(`${a.certPem.trim()}\n${b.certPem.trim()}\n`);
  });

  it('refuses a key that does not match the certificate', async () => {
    await expect(loadInspectionCa(a.certPem, b.keyPem)).rejects.toThrow('inspect.ca_key does not match inspect.ca_cert');
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await expect(loadInspectionCa(a.certPem, ed)).rejects.toThrow('inspect.ca_key does not match inspect.ca_cert');
  });

  it('refuses a certificate that is not a CA', async () => {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const leaf = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=not a ca',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(false)],
    });
    const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
    await expect(loadInspectionCa(leaf.toString('pem'), keyPem)).rejects.toThrow(/inspect.ca_cert is not a CA certificate/);
  });

  it('refuses a CA whose keyUsage forbids signing certificates', async () => {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=crl only',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.cRLSign, true)],
    });
    const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
    await expect(loadInspectionCa(cert.toString('pem'), keyPem)).rejects.toThrow(/keyUsage lacks keyCertSign/);
  });

  it('refuses a CA outside its validity', async () => {
    await expect(loadInspectionCa(a.certPem, a.keyPem, { now: new Date(Date.now() + 3650 * DAY) })).rejects.toThrow(
      /inspect.ca_cert expired on \d{4}-/,
    );
    await expect(loadInspectionCa(a.certPem, a.keyPem, { now: new Date(Date.now() - DAY) })).rejects.toThrow(
      /inspect.ca_cert is not valid before/,
    );
  });

  it('names the config key for unreadable input', async () => {
    await expect(loadInspectionCa('hello', a.keyPem)).rejects.toThrow(/inspect.ca_cert holds no PEM certificate/);
    await expect(loadInspectionCa('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', a.keyPem)).rejects.toThrow(
      /inspect.ca_cert is not a valid certificate/,
    );
    await expect(loadInspectionCa(a.certPem, 'nonsense')).rejects.toThrow(/inspect.ca_key is not a PEM private key/);
    const encrypted = createPrivateKey(a.keyPem)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' })
      .toString();
    await expect(loadInspectionCa(a.certPem, encrypted)).rejects.toThrow(/inspect.ca_key is encrypted/);
  });
});

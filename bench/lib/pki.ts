/**
 * Test certificates made fresh for every run, in the run's temp folder:
 *
 *   fake-ca ──signs──▶ fake-server (the "AWS" endpoint: *.amazonaws.com, …, 127.0.0.1)
 *   squid-ca            (Squid ssl-bump's signing CA, ECDSA like the agent's)
 *   agent-ca            (egress-witness inspection CA, made by the agent's own code)
 *
 * Everything is ECDSA P-256, so handshake costs compare like with like.
 */
import { writeFileSync, readFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { createInspectionCa } from '../../agent/tls/ca.js';
import { run } from './proc.js';

export interface CertPair {
  certFile: string;
  keyFile: string;
  certPem: string;
}

export interface Pki {
  fakeCa: CertPair;
  fakeServer: CertPair;
  squidCa: CertPair;
  agentCa: CertPair;
}

/** Names the fake server's certificate covers (the client always verifies). */
export const FAKE_SERVER_NAMES = ['*.amazonaws.com', '*.us-east-1.amazonaws.com', '*.s3.us-east-1.amazonaws.com', 'localhost'];

function opensslCa(dir: string, name: string, cn: string): CertPair {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-sha256',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '3',
    '-subj',
    `/CN=${cn}/O=egress-witness bench`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(keyFile, 0o600);
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}

function opensslLeaf(dir: string, name: string, ca: CertPair, dnsNames: readonly string[]): CertPair {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const san = [...dnsNames.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',');
  writeFileSync(
    ext,
    `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  );
  run('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    csr,
    '-subj',
    `/CN=${dnsNames[0] ?? 'localhost'}`,
  ]);
  run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-CAcreateserial',
    '-days',
    '3',
    '-sha256',
    '-extfile',
    ext,
    '-out',
    certFile,
  ]);
  chmodSync(keyFile, 0o600);
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}

export async function makePki(dir: string): Promise<Pki> {
  const fakeCa = opensslCa(dir, 'fake-ca', 'bench fake AWS CA');
  const fakeServer = opensslLeaf(dir, 'fake-server', fakeCa, FAKE_SERVER_NAMES);
  const squidCa = opensslCa(dir, 'squid-ca', 'bench squid ssl-bump CA');
  const agent = await createInspectionCa({ commonName: 'bench egress-witness CA', permittedDomains: ['amazonaws.com'], validityDays: 3 });
  const agentCa: CertPair = { certFile: join(dir, 'agent-ca.pem'), keyFile: join(dir, 'agent-ca-key.pem'), certPem: agent.certPem };
  writeFileSync(agentCa.certFile, agent.certPem);
  writeFileSync(agentCa.keyFile, agent.keyPem, { mode: 0o600 });
  return { fakeCa, fakeServer, squidCa, agentCa };
}

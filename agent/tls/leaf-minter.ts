/**
 * Mints and caches the server certificates the agent presents when it
 * inspects a host.
 *
 *   secureContextFor(host)
 *     ├─ cache hit, younger than half its validity ─▶ { context, cached: true }
 *     ├─ a mint for host already running ──────────▶ await it (coalesced)
 *     └─ otherwise mint: sign a leaf for the shared key, build the context,
 *        store it as the newest entry, evict the oldest beyond cacheSize
 *
 * One ECDSA P-256 key serves every leaf (generated on first use, never
 * written anywhere): minting is then one signature, about 3 ms, instead of a
 * key generation per host. An entry is re-minted once half its validity has
 * passed, so a context handed out is never close to expiry. The cache is an
 * LRU on Map insertion order (a hit moves the entry to the end).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { performance } from 'node:perf_hooks';
import { webcrypto } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { formatIp, parseIp } from '../../common/cidr/ip.js';
import { randomSerial, type InspectionCa } from './ca.js';

export interface LeafMinterOptions {
  /** Leaf lifetime from now; capped by MAX_LEAF_VALIDITY_MS and the CA's own expiry. */
  readonly validityMs: number;
  /** Most hosts kept; the least recently used is dropped beyond it. */
  readonly cacheSize: number;
  readonly now?: () => number;
}

export interface LeafMinterStats {
  readonly size: number;
  readonly hits: number;
  /** Mints started: first sight of a host, an entry past half its validity, or one evicted earlier. */
  readonly misses: number;
  /** Calls that waited for a mint another call had started. */
  readonly coalesced: number;
  /** Wall time of the last completed mint (sign + PEM + secure context), for benchmarks. */
  readonly lastMintMs: number | null;
}

/** 397 days: the longest server certificate some TLS clients accept. */
export const MAX_LEAF_VALIDITY_MS = 397 * 86_400_000;
/** Backdating absorbs clients whose clocks run a little behind. */
const BACKDATE_MS = 3_600_000;
const HOST_LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

interface CacheEntry {
  readonly context: SecureContext;
  readonly refreshAt: number;
}

type LeafName = { readonly type: 'dns' | 'ip'; readonly value: string };

/** Lower-cases, strips a trailing dot and IPv6 brackets; throws for anything that is no host name or IP. */
export function leafNameFor(host: string): LeafName {
  const trimmed = host.trim().toLowerCase().replace(/\.$/, '');
  const ip = parseIp(trimmed);
  if (ip) return { type: 'ip', value: formatIp(ip) };
  if (trimmed.length === 0 || trimmed.length > 253 || !trimmed.split('.').every((l) => HOST_LABEL.test(l))) {
    throw new Error(`cannot mint a certificate for "${host}": not a host name or IP address`);
  }
  return { type: 'dns', value: trimmed };
}

export class LeafMinter {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<CacheEntry>>();
  private readonly now: () => number;
  private readonly validityMs: number;
  private readonly cacheSize: number;
  private leafKey: Promise<{ keys: webcrypto.CryptoKeyPair; keyPem: string; extensions: x509.Extension[] }> | null = null;
  private hits = 0;
  private misses = 0;
  private coalesced = 0;
  private lastMintMs: number | null = null;

  constructor(
    private readonly ca: InspectionCa,
    options: LeafMinterOptions,
  ) {
    if (!(options.validityMs > 0)) throw new Error(`leaf validity must be positive, got ${options.validityMs} ms`);
    if (!Number.isInteger(options.cacheSize) || options.cacheSize < 1)
      throw new Error(`cert cache size must be a positive integer, got ${options.cacheSize}`);
    this.validityMs = Math.min(options.validityMs, MAX_LEAF_VALIDITY_MS);
    this.cacheSize = options.cacheSize;
    this.now = options.now ?? Date.now;
  }

  /** The TLS server context for `host` (an SNI name or the CONNECT target). Rejects for an invalid host or an expired CA. */
  async secureContextFor(host: string): Promise<{ context: SecureContext; cached: boolean }> {
    const name = leafNameFor(host);
    const key = `${name.type}:${name.value}`;
    const entry = this.cache.get(key);
    if (entry) {
      this.cache.delete(key);
      if (this.now() < entry.refreshAt) {
        this.cache.set(key, entry);
        this.hits++;
        return { context: entry.context, cached: true };
      }
    }
    const running = this.inflight.get(key);
    if (running) {
      this.coalesced++;
      return { context: (await running).context, cached: false };
    }
    this.misses++;
    const minting = this.mint(name).finally(() => this.inflight.delete(key));
    this.inflight.set(key, minting);
    const minted = await minting;
    this.cache.set(key, minted);
    while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value as string);
    return { context: minted.context, cached: false };
  }

  stats(): LeafMinterStats {
    return { size: this.cache.size, hits: this.hits, misses: this.misses, coalesced: this.coalesced, lastMintMs: this.lastMintMs };
  }

  private sharedKey(): Promise<{ keys: webcrypto.CryptoKeyPair; keyPem: string; extensions: x509.Extension[] }> {
    this.leafKey ??= (async () => {
      const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
      const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
      // Extensions that do not depend on the host are built once.
      const extensions: x509.Extension[] = [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ];
      if (this.ca.subjectKeyId) extensions.push(new x509.AuthorityKeyIdentifierExtension(this.ca.subjectKeyId));
      return { keys, keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), extensions };
    })();
    this.leafKey.catch(() => {
      this.leafKey = null;
    });
    return this.leafKey;
  }

  private async mint(name: LeafName): Promise<CacheEntry> {
    const shared = await this.sharedKey();
    const started = performance.now();
    const now = this.now();
    const notAfter = Math.min(now + this.validityMs, this.ca.notAfter.getTime());
    if (notAfter <= now)
      throw new Error(`the inspection CA expired on ${this.ca.notAfter.toISOString()}; create a new one with "egress-witness ca"`);
    const subject: x509.JsonName =
      name.value.length <= 64 ? [{ CN: [name.value] }, { O: ['egress-witness'] }] : [{ O: ['egress-witness'] }];
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomSerial(),
        subject,
        issuer: this.ca.certificate.subjectName,
        notBefore: new Date(now - BACKDATE_MS),
        notAfter: new Date(notAfter),
        publicKey: shared.keys.publicKey,
        signingKey: this.ca.signingKey,
        signingAlgorithm: this.ca.signingAlgorithm,
        extensions: [...shared.extensions, new x509.SubjectAlternativeNameExtension([{ type: name.type, value: name.value }])],
      },
      webcrypto,
    );
    const context = createSecureContext({ key: shared.keyPem, cert: `${cert.toString('pem')}\n${this.ca.chainPem}` });
    this.lastMintMs = performance.now() - started;
    return { context, refreshAt: now + (notAfter - now) / 2 };
  }
}

/**
 * The system roots plus an extra CA bundle: `upstream.ca_file` adds trust, it
 * never replaces the public roots. Built once per bundle — a TLS context from
 * ~150 roots costs tens of milliseconds, too much for every new connection.
 */
import tls from 'node:tls';

const contexts = new Map<string, tls.SecureContext>();

export function trustedSecureContext(extraCa: string | null): tls.SecureContext {
  const key = extraCa ?? '';
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = tls.createSecureContext({ ca: extraCa ? [...tls.rootCertificates, extraCa] : [...tls.rootCertificates] });
    contexts.set(key, ctx);
  }
  return ctx;
}

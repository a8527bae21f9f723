/** The system roots plus an extra CA bundle: `upstream.ca_file` adds trust, it never replaces the public roots. */
import tls from 'node:tls';

export function trustStore(extraCa: string | null): string[] {
  return extraCa ? [...tls.rootCertificates, extraCa] : [...tls.rootCertificates];
}

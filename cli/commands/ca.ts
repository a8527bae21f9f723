/** `egress-witness ca init`: create the inspection CA and say how to trust it. */
import { createInspectionCa } from '../../agent/tls/ca.js';
import { writeCaFiles } from '../../agent/tls/ca-files.js';
import type { Output } from '../../common/runtime/output.js';

export async function caInitCommand(
  o: { out: string; force?: boolean; name: string; validityDays: string; domains: string },
  out: Output,
): Promise<number> {
  const validityDays = Number(o.validityDays); // an integer 1-3650: the CLI's option parser checked it
  const domains = o.domains
    .split(',')
    .map((d) => d.trim().toLowerCase())
    .filter(Boolean);
  try {
    const ca = await createInspectionCa({ commonName: o.name, validityDays, permittedDomains: domains });
    const paths = await writeCaFiles(o.out, ca, { force: o.force ?? false });
    out.stdout(`Wrote ${paths.certPath} (certificate) and ${paths.keyPath} (private key, mode 0600).
${domains.length ? `Name constraints: the CA can only issue for ${domains.join(', ')}.` : 'No name constraints: the CA can issue for any name; keep its key safe.'}

Point the agent at them:
  inspect:
    ca_cert: ${paths.certPath}
    ca_key: ${paths.keyPath}

Then make the routed clients trust the CA (only clients whose AWS calls you want attributed):
  system bundle (Debian/Ubuntu): cp ${paths.certPath} /usr/local/share/ca-certificates/egress-witness.crt && update-ca-certificates
  system bundle (RHEL/Amazon Linux): cp ${paths.certPath} /etc/pki/ca-trust/source/anchors/egress-witness.pem && update-ca-trust
  AWS CLI and SDKs: export AWS_CA_BUNDLE=/path/to/bundle.pem   (the system bundle plus this CA)
  Node.js:          export NODE_EXTRA_CA_CERTS=${paths.certPath}
Never copy ca-key.pem off the gateway.
`);
    return 0;
  } catch (err) {
    out.stderr(`ca init: ${(err as Error).message}\n`);
    return 1;
  }
}

/** File checks for the detector config (secrets private, TLS and inventory files readable), run by check-config and at start. */
import type { ConfigProblem } from '../common/config/load.js';
import { checkPrivateFile, checkReadableFile, checkSecretFile } from '../common/runtime/config-file.js';
import type { DetectorConfig } from './config/schema.js';
import { readInventoryFile } from './inventory/files.js';

export async function preflightDetector(c: DetectorConfig): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  const add = (path: string, r: { ok: true } | { ok: false; message: string }): void => {
    if (!r.ok) problems.push({ path, message: r.message });
  };
  for (const [i, g] of c.gateways.entries())
    add(`gateways[${i}].secret_file`, await checkSecretFile(g.secret_file, `the HMAC secret of gateway ${g.id}`));
  if (c.tls.cert) add('tls.cert', await checkReadableFile(c.tls.cert));
  if (c.tls.key) add('tls.key', await checkPrivateFile(c.tls.key, 'the TLS key', true));
  if (c.ingest.token_file) add('ingest.token_file', await checkSecretFile(c.ingest.token_file, 'the ingest bearer token'));
  if (c.aws_ip_ranges) add('aws_ip_ranges', await checkReadableFile(c.aws_ip_ranges));
  for (const [i, path] of c.inventory.files.entries()) {
    const readable = await checkReadableFile(path);
    add(`inventory.files[${i}]`, readable);
    if (readable.ok)
      add(
        `inventory.files[${i}]`,
        await readInventoryFile(path).then(
          () => ({ ok: true }) as const,
          (err: unknown) => ({ ok: false, message: `${path}: ${(err as Error).message}` }) as const,
        ),
      );
  }
  if (c.guardduty.ca_file) add('guardduty.ca_file', await checkReadableFile(c.guardduty.ca_file));
  const sh = c.findings.security_hub;
  if (sh?.ca_file) add('findings.security_hub.ca_file', await checkReadableFile(sh.ca_file));
  return problems;
}

/**
 * Checks that need the file system, run by `check-config` and at start and
 * reload: referenced files exist, secrets are private. Schema validation
 * already happened; these are the problems a YAML file cannot show.
 */
import type { ConfigProblem } from '../common/config/load.js';
import { checkPrivateFile, checkReadableFile, checkSecretFile } from '../common/runtime/config-file.js';
import type { AgentConfig } from './config/schema.js';

export async function preflightAgent(c: AgentConfig): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  const add = (path: string, r: { ok: true } | { ok: false; message: string }): void => {
    if (!r.ok) problems.push({ path, message: r.message });
  };
  if (c.inspect) {
    add('inspect.ca_cert', await checkReadableFile(c.inspect.ca_cert));
    add('inspect.ca_key', await checkPrivateFile(c.inspect.ca_key, 'the inspection CA key', true));
  }
  if (c.upstream.ca_file) add('upstream.ca_file', await checkReadableFile(c.upstream.ca_file));
  if (c.telemetry.secret_file) add('telemetry.secret_file', await checkSecretFile(c.telemetry.secret_file, 'the telemetry HMAC secret'));
  return problems;
}

/** The detector daemon entry points (the detector lands with its own issue). */
import type { Output } from '../common/runtime/output.js';

export function runDetector(configPath: string): Promise<number> {
  process.stderr.write(`egress-witness detector: not yet implemented (config ${configPath} was not read)\n`);
  return Promise.resolve(2);
}

export function listDecisions(configPath: string, _o: { since: string; disposition: string | null; limit: number }, out: Output): Promise<number> {
  out.stderr(`egress-witness detector decisions: not yet implemented (config ${configPath} was not read)\n`);
  return Promise.resolve(2);
}

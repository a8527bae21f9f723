import type { Output } from '../../common/runtime/output.js';

export function replayCommand(_o: { config: string }, out: Output): Promise<number> {
  out.stderr('egress-witness replay: not yet implemented\n');
  return Promise.resolve(2);
}

/**
 * Which Node.js the figures are for. The goals hold for the supported lines
 * (package.json "engines"); a bench run on an older Node (a development
 * machine's) is still a comparison, but says so next to its targets.
 */
import { meetsEngines } from '../../common/runtime/node-support.js';

/** The warning a run on an unsupported Node prints (at the start and before its targets), or null. */
export function runtimeWarning(version: string, engines: string): string | null {
  if (meetsEngines(version, engines) !== false) return null;
  return (
    `Node ${version} is outside the supported lines (package.json engines ${engines}): the figures are for comparison on this machine, ` +
    'the targets are for Node 22 and 24 (bench/with-node.sh 24 runs the bench on Node 24)'
  );
}

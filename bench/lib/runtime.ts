/**
 * Which Node.js the figures are for. The goals hold for the supported lines
 * (package.json "engines"); a bench run on an older Node (a development
 * machine's) is still a comparison, but says so next to its targets.
 */

/** `v20.20.2` or `20.20.2` → [20, 20, 2]; null when it is not a version. */
function versionParts(text: string): [number, number, number] | null {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/**
 * Whether `version` (process.version) satisfies `engines` (package.json's engines.node) of the
 * form `>=X.Y.Z`, the one form the project uses; null when either is not understood.
 */
export function meetsEngines(version: string, engines: string): boolean | null {
  const m = /^>=\s*(\S+)$/.exec(engines.trim());
  const min = m ? versionParts(m[1] as string) : null;
  const v = versionParts(version);
  if (min === null || v === null) return null;
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return (v[i] as number) > (min[i] as number);
  return true;
}

/** The warning a run on an unsupported Node prints (at the start and before its targets), or null. */
export function runtimeWarning(version: string, engines: string): string | null {
  if (meetsEngines(version, engines) !== false) return null;
  return (
    `Node ${version} is outside the supported lines (package.json engines ${engines}): the figures are for comparison on this machine, ` +
    'the targets are for Node 22 and 24 (bench/with-node.sh 24 runs the bench on Node 24)'
  );
}

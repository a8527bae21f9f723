/**
 * Whether the running Node.js is one the project supports: package.json's
 * "engines" (`>=22.13.0`: the 22 and 24 LTS lines). Older releases that still
 * run the code (Node.js 20, for development) are worth a warning wherever an
 * operator or a measurement could take them for a supported setup.
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

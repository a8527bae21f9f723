/** The package's version and supported Node.js range, read once from the nearest package.json named egress-witness. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface PackageFacts {
  version: string;
  /** package.json engines.node ('' when absent). */
  engines: string;
}

let cached: PackageFacts | null = null;

function packageFacts(): PackageFacts {
  if (cached !== null) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
        engines?: { node?: string };
      };
      if (pkg.name === 'egress-witness' && pkg.version) return (cached = { version: pkg.version, engines: pkg.engines?.node ?? '' });
    } catch {
      // not here; look one level up
    }
    dir = dirname(dir);
  }
  return (cached = { version: '0.0.0-unknown', engines: '' });
}

export function packageVersion(): string {
  return packageFacts().version;
}

/** The Node.js versions the package supports (engines.node, e.g. ">=22.13.0"); '' when unknown. */
export function packageEngines(): string {
  return packageFacts().engines;
}

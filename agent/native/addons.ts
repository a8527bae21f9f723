/**
 * Where the agent's optional native addons are (native/<name>/build/Release/<name>.node, built at
 * install by native/build.mjs) and how their errno numbers read.
 */
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The addon at `relative` (from the package root), looked for from this file upward: the package
 * root is two folders up in the sources (agent/native) and three in the build (dist/agent/native).
 */
export function findAddon(relative: string): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** The name of an errno number (either sign), such as ECONNRESET; null when it has none. */
export function errnoName(errno: number): string | null {
  return ERRNO_NAMES.get(errno) ?? ERRNO_NAMES.get(-errno) ?? null;
}

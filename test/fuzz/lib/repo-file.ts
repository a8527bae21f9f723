/** Reads a file of the source tree, from the sources (vitest) or from dist/ (the compiled runner) alike. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('fuzz: cannot find the repository root (no package.json above the fuzz targets)');
    dir = up;
  }
  return dir;
}

const root = repoRoot();

export function readRepoFile(rel: string): string {
  return readFileSync(join(root, rel), 'utf8');
}

export function readRepoJson(rel: string): unknown {
  return JSON.parse(readRepoFile(rel)) as unknown;
}

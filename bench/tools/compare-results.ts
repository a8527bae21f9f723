/**
 * Two results files side by side without a new run:
 *   node dist/bench/tools/compare-results.js BEFORE.json AFTER.json
 * Prints the figures worse (and better) beyond the run-to-run noise; exit code 0 either way.
 */
import { pathToFileURL } from 'node:url';
import { compareRuns, formatComparison, readResults } from '../lib/compare.js';

export function main(argv: readonly string[]): number {
  const [beforePath, afterPath] = argv;
  if (argv.length !== 2 || !beforePath || !afterPath || argv.includes('--help')) {
    process.stderr.write('usage: node dist/bench/tools/compare-results.js BEFORE.json AFTER.json\n');
    return argv.includes('--help') ? 0 : 2;
  }
  const before = readResults(beforePath);
  const after = readResults(afterPath);
  process.stdout.write(
    `${formatComparison(`${beforePath} (${before.date}), for ${afterPath} (${after.date})`, compareRuns(before.rows, after.rows))}\n`,
  );
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}

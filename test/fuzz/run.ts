/**
 * `npm run fuzz`: every fuzz target in test/fuzz/properties/ with a large
 * budget (100,000 cases each by default), seeded so that a failure
 * reproduces. Prints cases/s and the slowest case per target; exits 1 when a
 * target fails, printing the seed, the path and the command that replays it.
 */
import { parseArgs as parseArgv } from 'node:util';
import fc from 'fast-check';
import { FUZZ_TARGETS } from './properties/index.js';
import { propertyOf, type AnyFuzzTarget } from './lib/target.js';

const USAGE = `usage: npm run fuzz -- [options]
  --runs N          cases per target (default 100000)
  --seed S          fast-check seed (default: a random one, printed)
  --only a,b        only these targets (see --list)
  --path P          replay one failing case (with the --seed and --only it was printed with)
  --max-case-ms MS  a case taking more CPU time than this fails the target (default 1000)
  --list            list the targets and exit
  --help`;

interface Args {
  runs: number;
  seed: number;
  only: string[] | null;
  path: string | null;
  maxCaseMs: number;
  list: boolean;
  help: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const { values } = parseArgv({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      runs: { type: 'string' },
      seed: { type: 'string' },
      only: { type: 'string' },
      path: { type: 'string' },
      'max-case-ms': { type: 'string' },
      list: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const integer = (flag: string, text: string | undefined, min: number, fallback: number): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) throw new Error(`--${flag} needs an integer ≥ ${min}, got "${text}"`);
    return n;
  };
  return {
    runs: integer('runs', values.runs, 1, 100_000),
    seed: integer('seed', values.seed, -(2 ** 31), Math.floor(Math.random() * 2 ** 31)),
    only:
      values.only === undefined
        ? null
        : values.only
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
    path: values.path ?? null,
    maxCaseMs: integer('max-case-ms', values['max-case-ms'], 1, 1_000),
    list: values.list ?? false,
    help: values.help ?? false,
  };
}

function selectTargets(only: readonly string[] | null): AnyFuzzTarget[] {
  if (only === null) return [...FUZZ_TARGETS];
  const unknown = only.filter((n) => !FUZZ_TARGETS.some((t) => t.name === n));
  if (unknown.length > 0) throw new Error(`unknown target ${unknown.map((n) => `"${n}"`).join(', ')} (see --list)`);
  return FUZZ_TARGETS.filter((t) => only.includes(t.name));
}

const out = (line: string): void => void process.stdout.write(`${line}\n`);

function main(): number {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`npm run fuzz: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    out(USAGE);
    return 0;
  }
  let targets: AnyFuzzTarget[];
  try {
    targets = selectTargets(args.only);
  } catch (err) {
    process.stderr.write(`npm run fuzz: ${(err as Error).message}\n`);
    return 2;
  }
  if (args.list) {
    for (const t of FUZZ_TARGETS) out(`${t.name.padEnd(22)} ${t.title}`);
    return 0;
  }
  if (args.path !== null && targets.length !== 1) {
    process.stderr.write('npm run fuzz: --path replays one target: name it with --only\n');
    return 2;
  }
  out(
    `fuzz: ${targets.length} targets, ${args.path ? 'replaying one case' : `${args.runs} cases each`}, seed ${args.seed}, case limit ${args.maxCaseMs} ms`,
  );
  out(
    `  ${'target'.padEnd(22)} ${'cases'.padStart(8)} ${'seconds'.padStart(8)} ${'cases/s'.padStart(9)} ${'slowest cpu ms'.padStart(14)}  result`,
  );
  const failures: string[] = [];
  for (const t of targets) {
    let slowest = 0;
    let cases = 0;
    const property = propertyOf(t, {
      maxCaseMs: args.maxCaseMs,
      onCase: (ms) => {
        cases++;
        if (ms > slowest) slowest = ms;
      },
    });
    const t0 = performance.now();
    const details = fc.check(property, { numRuns: args.runs, seed: args.seed, ...(args.path ? { path: args.path } : {}) });
    const secs = (performance.now() - t0) / 1000;
    const ran = details.failed ? details.numRuns : cases;
    const rate = details.failed ? '–' : Math.round(ran / secs).toString();
    out(
      `  ${t.name.padEnd(22)} ${String(ran).padStart(8)} ${secs.toFixed(1).padStart(8)} ${rate.padStart(9)} ${slowest.toFixed(1).padStart(14)}  ${details.failed ? 'FAILED' : 'ok'}`,
    );
    if (details.failed) {
      const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      const example = fc.stringify(details.counterexample);
      failures.push(
        [
          `${t.name} (${t.title}) failed after ${details.numRuns} cases and ${details.numShrinks} shrinks:`,
          `  ${error.split('\n')[0]}`,
          `  counterexample: ${example.length > 2000 ? `${example.slice(0, 2000)}… (${example.length} characters)` : example}`,
          `  seed ${details.seed}, path ${details.counterexamplePath ?? '?'}`,
          `  replay: npm run fuzz -- --only ${t.name} --seed ${details.seed} --path ${details.counterexamplePath ?? '?'}`,
        ].join('\n'),
      );
    }
  }
  if (failures.length > 0) {
    out('');
    for (const f of failures) out(f);
    out(`\n${failures.length} of ${targets.length} targets failed`);
    return 1;
  }
  out(`\nall ${targets.length} targets passed`);
  return 0;
}

process.exitCode = main();

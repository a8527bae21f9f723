/**
 * Command-line options of `npm run bench -- …`. Unknown options fail fast
 * with the usage text, so a typo never silently runs the full suite.
 */
import { parseArgs as parseArgv } from 'node:util';
import { parseDuration } from '../../common/config/units.js';

export interface BenchArgs {
  /** Seconds-long smoke run: one short run per figure, small sizes. */
  readonly quick: boolean;
  /** Scenario names (or prefixes) to run; null = all. */
  readonly only: readonly string[] | null;
  /** Soak duration in ms (`--soak`, `--duration`); null = the benchmark table instead. */
  readonly soakMs: number | null;
  /** Start the agents under `--cpu-prof` and summarise the profiles at the end. */
  readonly profile: boolean;
  /** Agent `log.level` (info is the production default: one line per tunnel or request). */
  readonly agentLogLevel: string;
  /** Where the JSON results go. */
  readonly out: string | null;
  /** An earlier results file to compare this run with (figures worse beyond the noise are listed). */
  readonly baseline: string | null;
  readonly list: boolean;
  readonly help: boolean;
}

export const USAGE = `usage: npm run bench -- [options]
  --quick              smoke run in seconds (1 short run per figure, small sizes)
  --only a,b           run only these scenarios (names or prefixes; see --list)
  --list               list the scenarios and exit
  --soak [DURATION]    soak with faults (default 30m): mixed tunnel and inspected load through
                       an agent shipping to a real detector; the detector killed and restarted
                       every 4 min, the agent SIGHUP'd every minute and SIGKILL'd once; RSS,
                       fds, handles and event-loop delay sampled every 10 s (trend and slope);
                       records the agent spooled vs records the detector stored (must be equal)
  --duration D         soak length (e.g. 3m for a short run; implies --soak)
  --profile            run the agents under node --cpu-prof and print their hot functions
  --agent-log-level L  agent log.level (default info, as in production)
  --out FILE           JSON results file (default bench/results/latest.json,
                       bench/results/soak-latest.json for --soak)
  --baseline FILE      compare with an earlier results file: every figure in both runs (as its
                       ratio to Squid, ssl-bump or direct where the run has one), listing those
                       worse or better by more than the run-to-run noise
  --help`;

/** `--soak` without a duration. */
export const DEFAULT_SOAK_MS = 30 * 60_000;

/** A duration option's value in ms: "10m", "90s", "1h30m", "500ms" or bare seconds. */
function duration(flag: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new Error(`${flag}: not a duration: "${text}" (use e.g. 10m, 90s)`);
  return ms;
}

/** A comma-separated list option's value: "a, b,,c" → ["a", "b", "c"]. */
function listValue(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function parseArgs(argv: readonly string[]): BenchArgs {
  // --soak takes an optional duration ("--soak", "--soak 10m", "--soak=10m"), which node:util's
  // parser does not model: a bare --soak becomes --soak=<default> before parsing.
  const normalised = argv.map((arg, i) => {
    const next = argv[i + 1];
    return arg === '--soak' && (next === undefined || next.startsWith('-')) ? `--soak=${DEFAULT_SOAK_MS}ms` : arg;
  });
  const { values } = parseArgv({
    args: normalised,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      soak: { type: 'string' },
      duration: { type: 'string' },
      profile: { type: 'boolean' },
      'agent-log-level': { type: 'string' },
      out: { type: 'string' },
      baseline: { type: 'string' },
      list: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const soakText = values.duration ?? values.soak;
  return {
    quick: values.quick ?? false,
    only: values.only === undefined ? null : listValue(values.only),
    soakMs: soakText === undefined ? null : duration(values.duration !== undefined ? '--duration' : '--soak', soakText),
    profile: values.profile ?? false,
    agentLogLevel: values['agent-log-level'] ?? 'info',
    out: values.out ?? null,
    baseline: values.baseline ?? null,
    list: values.list ?? false,
    help: values.help ?? false,
  };
}

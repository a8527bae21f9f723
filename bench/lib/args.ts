/**
 * Command-line options of `npm run bench -- …`. Unknown options fail fast
 * with the usage text, so a typo never silently runs the full suite.
 */

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
  --help`;

/** `--soak` without a duration. */
export const DEFAULT_SOAK_MS = 30 * 60_000;

/** "10m", "90s", "1h", "500ms" or bare seconds → ms. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`not a duration: "${text}" (use e.g. 10m, 90s)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1_000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(n * factor);
}

export function parseArgs(argv: readonly string[]): BenchArgs {
  let quick = false;
  let only: string[] | null = null;
  let soakMs: number | null = null;
  let profile = false;
  let agentLogLevel = 'info';
  let out: string | null = null;
  let list = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--quick':
        quick = true;
        break;
      case '--only':
        only = value()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      case '--soak': {
        // The duration is optional: "--soak", "--soak 10m", "--soak=10m".
        const next = inline ?? argv[i + 1];
        if (next !== undefined && !next.startsWith('--')) {
          soakMs = parseDuration(next);
          if (inline === undefined) i++;
        } else soakMs ??= DEFAULT_SOAK_MS;
        break;
      }
      case '--duration':
        soakMs = parseDuration(value());
        break;
      case '--profile':
        profile = true;
        break;
      case '--agent-log-level':
        agentLogLevel = value();
        break;
      case '--out':
        out = value();
        break;
      case '--list':
        list = true;
        break;
      case '--help':
      case '-h':
        help = true;
        break;
      default:
        throw new Error(`unknown option "${arg}"`);
    }
  }
  return { quick, only, soakMs, profile, agentLogLevel, out, list, help };
}

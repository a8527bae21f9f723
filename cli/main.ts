#!/usr/bin/env node
/**
 * egress-witness: one CLI for the gateway agent, the detector and the tools
 * around them. Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage.
 */
import { Command, CommanderError, Option } from 'commander';
import { packageVersion } from '../common/runtime/version.js';
import { InvalidArgumentError } from 'commander';
import { LOG_LEVELS } from '../common/log/levels.js';
import { parseDuration } from '../common/config/units.js';
import { AWS_PERMITTED_DOMAINS, DEFAULT_COMMON_NAME, DEFAULT_VALIDITY_DAYS } from '../agent/tls/ca-defaults.js';
import type { ReplayCommandOptions } from './commands/replay.js';
import type { BackfillCommandOptions } from './commands/backfill.js';

// Commands load their code when they run: `--version` and `--help` stay fast.
const load = {
  agent: () => import('../agent/main.js'),
  detector: () => import('../detector/main.js'),
  checkConfig: () => import('./commands/check-config.js'),
  suppressionRule: () => import('./commands/suppression-rule.js'),
  transparentRules: () => import('./commands/transparent-rules.js'),
  ca: () => import('./commands/ca.js'),
  replay: () => import('./commands/replay.js'),
  youngGeneration: () => import('./young-generation.js'),
  doctor: () => import('./commands/doctor.js'),
  backfill: () => import('./commands/backfill.js'),
  migrate: () => import('./commands/migrate.js'),
};

/** A duration such as 30m, 1h or 7d, in milliseconds (a usage error otherwise). */
function durationOption(value: string): number {
  const ms = parseDuration(value);
  if (ms === null || ms <= 0) throw new InvalidArgumentError(`expected a duration like 30m, 1h, 1h30m or 7d, got "${value}"`);
  return ms;
}

/** Text of `min`-`max` characters matching `re` (a usage error otherwise). */
function textOption(re: RegExp, what: string) {
  return (value: string): string => {
    if (!re.test(value)) throw new InvalidArgumentError(`expected ${what}, got "${value}"`);
    return value;
  };
}

function intOption(min: number, max: number) {
  return (value: string): string => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
      throw new InvalidArgumentError(`expected an integer ${min}-${max}, got "${value}"`);
    return value;
  };
}

const out = { stdout: (s: string | Uint8Array) => process.stdout.write(s), stderr: (s: string) => process.stderr.write(s) };

function program(): Command {
  const p = new Command('egress-witness')
    .description(
      'Attest AWS API calls that leave through an on-prem gateway, instead of blindly suppressing\nGuardDuty InstanceCredentialExfiltration.OutsideAWS findings for the gateway address.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: out.stdout, writeErr: out.stderr })
    .addHelpText(
      'after',
      `
Examples:
  egress-witness agent --config /etc/egress-witness/agent.yaml
  egress-witness detector --config /etc/egress-witness/detector.yaml
  egress-witness check-config /etc/egress-witness/agent.yaml
  egress-witness doctor --config /etc/egress-witness/agent.yaml
  egress-witness suppression-rule --config /etc/egress-witness/agent.yaml --format cli
  egress-witness transparent-rules --config /etc/egress-witness/agent.yaml --aws-ip-ranges ip-ranges.json
  egress-witness <command> --help

Exit codes: 0 ok, 1 invalid configuration or runtime failure, 2 usage error.`,
    );

  p.command('agent')
    .description('run the gateway agent: forward proxy, observations, telemetry shipping')
    .requiredOption('-c, --config <file>', 'agent configuration file (YAML)')
    .addOption(new Option('--log-level <level>', 'override log.level').choices(LOG_LEVELS))
    .addHelpText(
      'after',
      `
Examples:
  egress-witness agent --config /etc/egress-witness/agent.yaml
  egress-witness agent --config config/agent.local.yaml --log-level debug

Signals: SIGHUP reloads the configuration (the old one stays on error),
SIGTERM/SIGINT drain and exit 0; a second one exits at once.`,
    )
    .action(async (o: { config: string; logLevel?: string }) => {
      process.exitCode = await (await load.agent()).runAgent(o.config, o.logLevel ? { logLevel: o.logLevel } : {});
    });

  const det = p
    .command('detector')
    .description('run the central detector, or query its store')
    .usage('[run] --config <file> | decisions --config <file> [options]')
    .addHelpText(
      'after',
      `
Options of "detector run" (the default command):
  -c, --config <file>  detector configuration file (YAML)

Examples:
  egress-witness detector --config /etc/egress-witness/detector.yaml
  egress-witness detector decisions --config /etc/egress-witness/detector.yaml --since 1h --disposition finding
  egress-witness detector migrate --config /etc/egress-witness/detector.yaml`,
    );
  det
    .command('run', { isDefault: true })
    .description('run the detector daemon: telemetry ingest, CloudTrail and GuardDuty input, correlation, findings')
    .requiredOption('-c, --config <file>', 'detector configuration file (YAML)')
    .addHelpText(
      'after',
      `
Examples:
  egress-witness detector --config /etc/egress-witness/detector.yaml`,
    )
    .action(async (o: { config: string }) => {
      process.exitCode = await (await load.detector()).runDetector(o.config);
    });
  det
    .command('backfill')
    .description("decide a trail's log files for a time range, read from its bucket, into the store (as the daemon would have)")
    .requiredOption('-c, --config <file>', 'detector configuration file (YAML)')
    .requiredOption('--s3 <url>', "the trail's bucket: s3://BUCKET/PREFIX/")
    .requiredOption('--since <when>', 'from this date, time or duration ago (2026-11-01, 2026-11-01T12:00:00Z, 7d)')
    .option('--until <when>', 'up to this date, time or duration ago (default: now)')
    .option('--region <region>', "the bucket's region (default: cloudtrail.sqs.region, AWS_REGION, or us-east-1)")
    .option('--role-arn <arn>', 'a role to assume for reading (default: cloudtrail.sqs.role_arn)')
    .option('--concurrency <n>', 'log files fetched at once (1 to 64)', '8')
    .option('--quiet', 'no progress on stderr')
    .addHelpText(
      'after',
      `
Records already decided are recognised by event ID and left alone; the daemon may run meanwhile.
Exit 1 when a log file could not be read (each is named on stderr).

Examples:
  egress-witness detector backfill --config /etc/egress-witness/detector.yaml --s3 s3://org-trail/AWSLogs/ --since 2026-11-01 --until 2026-11-08`,
    )
    .action(async (o: BackfillCommandOptions) => {
      process.exitCode = await (await load.backfill()).backfillCommand(o, out, process.stderr.isTTY === true);
    });
  det
    .command('decisions')
    .description('list stored decisions (CloudTrail events and GuardDuty findings) with their evidence, as JSON lines')
    .requiredOption('-c, --config <file>', 'detector configuration file (YAML)')
    .option('--since <duration>', 'only decisions newer than this (e.g. 30m, 1h, 7d)', durationOption, 86_400_000)
    .addOption(new Option('--disposition <d>', 'only this disposition').choices(['ignored', 'suppressed', 'finding', 'archive', 'keep']))
    .option('--limit <n>', 'at most this many', intOption(1, 1_000_000), '1000')
    .addHelpText(
      'after',
      `
Examples:
  egress-witness detector decisions --config /etc/egress-witness/detector.yaml --since 1h --disposition suppressed`,
    )
    .action(async (o: { config: string; since: number; disposition?: string; limit: string }) => {
      process.exitCode = await (
        await load.detector()
      ).listDecisions(o.config, { sinceMs: o.since, disposition: o.disposition ?? null, limit: Number(o.limit) }, out);
    });

  det
    .command('migrate')
    .description("bring the store (store.path or store.postgres) to this version's schema; the daemon also does it when it starts")
    .requiredOption('-c, --config <file>', 'detector configuration file (YAML)')
    .addHelpText(
      'after',
      `
PostgreSQL: migrations run under an advisory lock, so replicas starting meanwhile wait and migrate
nothing. A store at a newer schema than this version knows is refused (exit 1).

Examples:
  egress-witness detector migrate --config /etc/egress-witness/detector.yaml`,
    )
    .action(async (o: { config: string }) => {
      process.exitCode = await (await load.migrate()).migrateCommand(o, out);
    });

  p.command('check-config')
    .description('validate an agent or detector configuration file (told apart by its top-level keys)')
    .argument('<file>', 'configuration file (YAML)')
    .addHelpText(
      'after',
      `
Valid: exit 0 and a one-line summary. Invalid: exit 1 and every problem as "path: reason".

Examples:
  egress-witness check-config /etc/egress-witness/agent.yaml
  egress-witness check-config config/detector.example.yaml`,
    )
    .action(async (file: string) => {
      process.exitCode = await (await load.checkConfig()).checkConfigCommand(file, out);
    });

  p.command('doctor')
    .description('check an agent or detector setup: files, listen ports, TLS, the detector (a signed heartbeat), clocks')
    .requiredOption('-c, --config <file>', 'agent or detector configuration file (YAML)')
    .addHelpText(
      'after',
      `
One line per check: ok, warn or FAIL, with the fix. Exit 1 when a check fails.
Agent: the configuration, the referenced files, proxy.listen / admin.listen / transparent.listen,
the inspection CA and its key, and the detector: one signed heartbeat to telemetry.detector_url
(TLS trust through upstream.ca_file, the signature, gateway.id) and the clock difference.
Detector: the configuration, the referenced files, listen / admin.listen, tls.cert and tls.key,
and store.path.

Examples:
  egress-witness doctor --config /etc/egress-witness/agent.yaml
  egress-witness doctor --config /etc/egress-witness/detector.yaml`,
    )
    .action(async (o: { config: string }) => {
      process.exitCode = await (await load.doctor()).doctorCommand(o, out);
    });

  p.command('suppression-rule')
    .description('print the static GuardDuty suppression rule (CreateFilter) for the configured egress CIDRs')
    .requiredOption('-c, --config <file>', 'agent or detector configuration file')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'cli']).default('json'))
    .option('--expand', 'list single addresses for CIDRs of at most 50 addresses')
    .option('--detector-id <id>', 'GuardDuty detector id to put in the rule')
    .option(
      '--name <name>',
      'filter name (3-64 of A-Z a-z 0-9 . _ -)',
      textOption(/^[A-Za-z0-9._-]{3,64}$/, '3-64 of A-Z a-z 0-9 . _ - (no spaces)'),
      'egress-witness-gateway-cidrs',
    )
    .option('--rank <n>', 'filter rank (1 = evaluated first)', intOption(1, 100), '1')
    .addHelpText(
      'after',
      `
Why this rule is blind: it archives every OutsideAWS finding whose caller address is the
gateway's, so an attacker who steals instance credentials and sends them through the same
gateway (or anyone behind the same NAT) is silenced too. It cannot say which host, which key,
or whether the call was routed at all. The egress-witness agent instead attests each key it
saw used by a routed client, and the detector suppresses only what was attested — use this
rule only as a fallback while the agent and detector are not deployed.

Examples:
  egress-witness suppression-rule --config /etc/egress-witness/agent.yaml
  egress-witness suppression-rule --config agent.yaml --format cli --expand --detector-id 12abc34d567e8fa901bc2d34e56789f0`,
    )
    .action(async (o: { config: string; format: 'json' | 'cli'; expand?: boolean; detectorId?: string; name: string; rank: string }) => {
      process.exitCode = await (await load.suppressionRule()).suppressionRuleCommand(o, out);
    });

  p.command('transparent-rules')
    .description('print the nftables (or iptables) rules that redirect routed clients to the transparent listener')
    .requiredOption('-c, --config <file>', 'agent configuration file with a transparent section')
    .option('--aws-ip-ranges <file>', "AWS's ip-ranges.json: redirect connections to AWS's published ranges")
    .option('--all-destinations', 'redirect connections to every destination the agent may dial, not only AWS')
    .addOption(new Option('--format <format>', 'output format').choices(['nft', 'iptables', 'ip6tables']).default('nft'))
    .addHelpText(
      'after',
      `
Redirects TCP to transparent.ports from the clients the agent admits (proxy.allowed_clients,
or every networks[].cidrs) to the transparent listener's port, in the nat prerouting hook only:
connections the gateway itself opens, the agent's upstream connections included, are never
redirected. AWS's ranges are merged into the fewest prefixes; --all-destinations leaves out the
special-purpose ranges the agent refuses (except proxy.allow_destination_cidrs).

nft output replaces table inet egress_witness as a whole: applying it twice leaves one copy.
iptables / ip6tables output is iptables-restore input for --noflush (never without it: that
would empty the whole nat table); the jump from PREROUTING is added once, as the header says.
Get ip-ranges.json from https://ip-ranges.amazonaws.com/ip-ranges.json and regenerate when it
changes.

Examples:
  egress-witness transparent-rules --config /etc/egress-witness/agent.yaml --aws-ip-ranges ip-ranges.json > /etc/egress-witness/transparent.nft
  nft -c -f /etc/egress-witness/transparent.nft && nft -f /etc/egress-witness/transparent.nft
  egress-witness transparent-rules --config agent.yaml --all-destinations
  egress-witness transparent-rules --config agent.yaml --aws-ip-ranges ip-ranges.json --format iptables | iptables-restore --noflush
  egress-witness transparent-rules --config agent.yaml --aws-ip-ranges ip-ranges.json --format ip6tables | ip6tables-restore --noflush`,
    )
    .action(async (o: { config: string; awsIpRanges?: string; allDestinations?: boolean; format: 'nft' | 'iptables' | 'ip6tables' }) => {
      process.exitCode = await (await load.transparentRules()).transparentRulesCommand(o, out);
    });

  const ca = p
    .command('ca')
    .description('manage the inspection CA')
    .addHelpText(
      'after',
      `
Examples:
  egress-witness ca init --out /etc/egress-witness`,
    );
  ca.command('init')
    .description('create an inspection CA (ECDSA P-256) for TLS inspection of AWS endpoints')
    .requiredOption('-o, --out <dir>', 'folder to write ca.pem and ca-key.pem into')
    .option('--force', 'overwrite existing files')
    .option('--name <cn>', 'CA common name', textOption(/^.{1,64}$/s, '1-64 characters'), DEFAULT_COMMON_NAME)
    .option('--validity-days <n>', 'CA validity in days', intOption(1, 3650), String(DEFAULT_VALIDITY_DAYS))
    .option('--domains <list>', 'comma-separated DNS name constraints (empty = none)', AWS_PERMITTED_DOMAINS.join(','))
    .addHelpText(
      'after',
      `
Examples:
  egress-witness ca init --out /etc/egress-witness
  egress-witness ca init --out ./ca --domains amazonaws.com`,
    )
    .action(async (o: { out: string; force?: boolean; name: string; validityDays: string; domains: string }) => {
      process.exitCode = await (await load.ca()).caInitCommand(o, out);
    });

  p.command('replay')
    .description('offline forensics: correlate CloudTrail files (and GuardDuty findings) with agent NDJSON telemetry')
    .requiredOption('-c, --config <file>', 'detector configuration file (gateways, correlation)')
    .option('--cloudtrail <files...>', 'CloudTrail log files (.json or .json.gz, {"Records":[...]})')
    .option('--telemetry <files...>', 'agent NDJSON files (telemetry.file sink format): the evidence')
    .option('--no-telemetry', 'decide without evidence, on purpose: every decision about a gateway address says no evidence was given')
    .option('--guardduty <files...>', 'GuardDuty findings (JSON lines, arrays, EventBridge events or bare findings)')
    .option(
      '--inventory <files...>',
      'instance inventory: describe-instances JSON or [{"instanceId","privateIps"}] lists (default: the config\'s inventory.files)',
    )
    .option('--s3 <url>', "a trail's bucket: s3://BUCKET/PREFIX/ (its log files between --since and --until are read)")
    .option('--since <when>', 'with --s3: from this date, time or duration ago (2026-11-01, 2026-11-01T12:00:00Z, 7d)')
    .option('--until <when>', 'with --s3: up to this date, time or duration ago (default: now)')
    .option('--region <region>', "with --s3: the bucket's region (default: cloudtrail.sqs.region, AWS_REGION, or us-east-1)")
    .option('--role-arn <arn>', 'with --s3: a role to assume for reading (default: cloudtrail.sqs.role_arn)')
    .option('--concurrency <n>', 'with --s3: log files fetched at once (1 to 64)', '8')
    .option('--findings', 'print the aggregated findings instead of one decision per record')
    .option(
      '--jobs <n>',
      'worker threads deciding the CloudTrail records, each holding all the telemetry: its memory and loading time once per worker (auto: one per core, at most 4; not with --findings, --guardduty or --s3)',
      '1',
    )
    .option('--quiet', 'no progress on stderr')
    .addHelpText(
      'after',
      `
Examples:
  egress-witness replay --config detector.yaml --cloudtrail logs/*.json.gz --telemetry gw1.ndjson
  egress-witness replay --config detector.yaml --cloudtrail logs/ --telemetry gw1.ndjson --findings
  egress-witness replay --config detector.yaml --guardduty findings.json --cloudtrail logs/*.json.gz --telemetry gw1.ndjson
  egress-witness replay --config detector.yaml --cloudtrail logs/ --telemetry gw1.ndjson --inventory instances-2026-11-01.json
  egress-witness replay --config detector.yaml --cloudtrail logs/ --no-telemetry
  egress-witness replay --config detector.yaml --s3 s3://org-trail/AWSLogs/ --since 2026-11-01 --until 2026-11-02 --telemetry gw1.ndjson

Output: one decision record per line, as "detector decisions" prints them (docs/detection.md#decision-records).
Without agent telemetry there is no evidence, so replay needs --telemetry, or --no-telemetry to say so.`,
    )
    .action(async (o: ReplayCommandOptions) => {
      const { relaunchArgs, runRelaunched } = await load.youngGeneration();
      const again = relaunchArgs(process.execArgv, process.env.NODE_OPTIONS ?? '', process.argv);
      if (again !== null) {
        process.exitCode = await runRelaunched(again);
        return;
      }
      process.exitCode = await (await load.replay()).replayCommand(o, out, process.stderr.isTTY === true);
    });
  return p;
}

async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; everything else is a usage error.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`egress-witness: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

// `egress-witness replay … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

await main(process.argv);

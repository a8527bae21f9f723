/** `egress-witness replay`: offline correlation of CloudTrail files and GuardDuty findings with agent telemetry. */
import { formatProblems } from '../../common/config/load.js';
import { readConfigFile } from '../../common/runtime/config-file.js';
import type { Output } from '../../common/runtime/output.js';
import { detectorConfigSchema } from '../../detector/config/schema.js';
import { replay } from '../../detector/replay/replay.js';

export async function replayCommand(
  o: { config: string; cloudtrail?: string[]; telemetry?: string[]; guardduty?: string[]; findings?: boolean; quiet?: boolean },
  out: Output,
): Promise<number> {
  if (!o.cloudtrail?.length && !o.guardduty?.length) {
    out.stderr('replay: give --cloudtrail FILE… and/or --guardduty FILE… (with --telemetry FILE… as the evidence)\n');
    return 2;
  }
  const loaded = await readConfigFile(o.config, detectorConfigSchema);
  if (!loaded.ok) {
    out.stderr(formatProblems(`${o.config}: invalid detector configuration`, loaded.problems));
    return 1;
  }
  let buffer = '';
  const flush = (): void => {
    if (buffer) out.stdout(buffer);
    buffer = '';
  };
  const started = Date.now();
  try {
    const s = await replay(
      loaded.value,
      { cloudtrail: o.cloudtrail ?? [], telemetry: o.telemetry ?? [], guardduty: o.guardduty ?? [], findings: o.findings ?? false },
      {
        line: (text) => {
          buffer += `${text}\n`;
          if (buffer.length > 1 << 20) flush();
        },
        progress: (text) => {
          if (!o.quiet) out.stderr(`replay: ${text}\n`);
        },
      },
    );
    flush();
    if (!o.quiet) {
      out.stderr(
        `replay: ${s.telemetryRecords} telemetry records (${s.telemetryInvalid} invalid) loaded in ${(s.telemetryMs / 1000).toFixed(1)} s, ` +
          `${s.cloudtrailRecords} CloudTrail records from ${s.files} files (${s.cloudtrailInvalid} invalid) correlated in ${(s.correlateMs / 1000).toFixed(1)} s ` +
          `(${s.correlateMs > 0 ? Math.round(s.cloudtrailRecords / (s.correlateMs / 1000)) : 0} records/s); total ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
          `decisions ${JSON.stringify(s.decisions)}${o.findings ? `; ${s.findings} findings` : ''}${o.guardduty?.length ? `; GuardDuty ${JSON.stringify(s.guardduty)}` : ''}\n`,
      );
    }
    for (const f of s.failedFiles) out.stderr(`replay: skipped ${f}\n`);
    return 0;
  } catch (err) {
    flush();
    out.stderr(`replay: ${(err as Error).message}\n`);
    return 1;
  }
}

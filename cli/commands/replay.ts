/** `egress-witness replay`: offline correlation of CloudTrail files and GuardDuty findings with agent telemetry. */
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { formatProblems } from '../../common/config/load.js';
import { AGENT_FILE, DETECTOR_FILE } from '../../common/config/kinds.js';
import { readConfigFileOf } from '../../common/runtime/config-file.js';
import type { Output } from '../../common/runtime/output.js';
import { detectorConfigSchema } from '../../detector/config/schema.js';
import { replay, type ReplayIo, type ReplaySummary } from '../../detector/replay/replay.js';
import { replayInWorkers } from '../../detector/replay/parallel.js';
import { replayJobs } from '../../detector/replay/shards.js';
import type { TrailFile } from '../../detector/trail/backfill.js';
import { openTrailRange, trailRange, type TrailRangeOptions } from './trail-range.js';

/** The size of the pieces replay writes its lines to stdout in. */
const OUT_CHUNK = 1 << 20;

export const NO_EVIDENCE = 'no evidence given (replay --no-telemetry)';

export interface ReplayCommandOptions extends TrailRangeOptions {
  config: string;
  cloudtrail?: string[];
  /** false: --no-telemetry, deciding without evidence on purpose. */
  telemetry?: string[] | false;
  guardduty?: string[];
  inventory?: string[];
  findings?: boolean;
  /** Worker threads deciding the CloudTrail records: a number (default 1), or `auto`. */
  jobs?: string;
  quiet?: boolean;
}

export async function replayCommand(o: ReplayCommandOptions, out: Output, tty = false): Promise<number> {
  if (!o.cloudtrail?.length && !o.guardduty?.length && !o.s3) {
    out.stderr(
      'replay: give --cloudtrail FILE…, --s3 s3://BUCKET/PREFIX/ and/or --guardduty FILE… (with --telemetry FILE… as the evidence)\n',
    );
    return 2;
  }
  const range = o.s3 ? trailRange(o) : null;
  if (range && 'error' in range) {
    out.stderr(`replay: ${range.error}\n`);
    return 2;
  }
  const jobsAsked = o.jobs ?? '1';
  const jobsValid = replayJobs(jobsAsked, availableParallelism());
  if ('error' in jobsValid) {
    out.stderr(`replay: ${jobsValid.error}\n`);
    return 2;
  }
  if (o.telemetry === undefined) {
    out.stderr(
      "replay: no evidence given: add --telemetry FILE… (the agents' NDJSON, telemetry.file), or --no-telemetry to decide without it " +
        '(every event from a gateway address then becomes a gateway-unverified finding, every GuardDuty finding for one is kept)\n',
    );
    return 2;
  }
  const noEvidence = o.telemetry === false;
  const loaded = await readConfigFileOf(o.config, detectorConfigSchema, DETECTOR_FILE, AGENT_FILE, 'replay');
  if (!loaded.ok) {
    out.stderr(formatProblems(`${o.config}: invalid detector configuration`, loaded.problems));
    return 1;
  }
  const missing = await missingInputs([
    ...(o.cloudtrail ?? []).map((p) => ({ flag: '--cloudtrail', path: p, folder: true })),
    ...(o.telemetry || []).map((p) => ({ flag: '--telemetry', path: p, folder: false })),
    ...(o.guardduty ?? []).map((p) => ({ flag: '--guardduty', path: p, folder: false })),
    ...(o.inventory ?? []).map((p) => ({ flag: '--inventory', path: p, folder: false })),
  ]);
  if (missing.length > 0) {
    for (const m of missing) out.stderr(`replay: ${m}\n`);
    return 1;
  }
  if (noEvidence)
    out.stderr(
      'replay: --no-telemetry: no evidence given: events from a gateway address are decided as if the gateway had been silent ' +
        "(gateway-unverified findings), GuardDuty findings for one are kept (gateway-silent); each such decision's reason says so\n",
    );
  const c = loaded.value;
  let trail: { files: AsyncIterable<TrailFile>; close: () => void } | null = null;
  if (range) {
    const opened = await openTrailRange('replay', range, c, o, out, tty);
    if ('error' in opened) {
      out.stderr(`replay: ${opened.error}\n`);
      return 1;
    }
    trail = opened;
  }
  // Lines are encoded one by one into a buffer written out in 1 MiB pieces: encoding a long string
  // built by concatenation (flattened first, two bytes a character once a line has a '…') cost more
  // than deciding the record.
  let buffer = Buffer.allocUnsafe(OUT_CHUNK);
  let used = 0;
  const flush = (): void => {
    if (used === 0) return;
    out.stdout(buffer.subarray(0, used));
    buffer = Buffer.allocUnsafe(OUT_CHUNK);
    used = 0;
  };
  const write = (text: string): void => {
    const most = text.length * 3; // UTF-8 bytes at most
    if (used + most > buffer.length) {
      flush();
      if (most > buffer.length) {
        out.stdout(text);
        return;
      }
    }
    used += buffer.write(text, used);
  };
  const io: ReplayIo = {
    line: (text) => {
      // The newline written apart: appended, it would make a line to be copied flat again first.
      write(noEvidence && !o.findings ? markNoEvidence(text) : text);
      write('\n');
    },
    lineParts: (parts) => {
      if (noEvidence && !o.findings) write(markNoEvidence(parts.join('')));
      else for (const part of parts) write(part);
      write('\n');
    },
    progress: (text) => {
      if (!o.quiet) out.stderr(`replay: ${text}\n`);
    },
  };
  const started = Date.now();
  try {
    // Only printed decisions of local files are split over workers: findings, GuardDuty findings
    // and a bucket's files are decided in one thread.
    const oneThread = o.findings ? '--findings' : o.guardduty?.length ? '--guardduty' : range ? '--s3' : null;
    const jobs = oneThread === null ? jobsValid.jobs : 1;
    if (jobsValid.jobs > 1 && oneThread !== null)
      io.progress(`--jobs ${jobsAsked} does not apply with ${oneThread}: deciding in one thread`);
    if (jobs > 1) io.progress(`deciding with ${jobs} workers, each loading all the telemetry and the inventory`);
    const s: ReplaySummary =
      jobs > 1
        ? await replayInWorkers(
            c,
            { cloudtrail: o.cloudtrail ?? [], telemetry: o.telemetry || [], inventory: o.inventory ?? c.inventory.files },
            {
              ...io,
              bytes: (data) => {
                if (!noEvidence) {
                  flush();
                  out.stdout(data);
                  return;
                }
                for (const line of Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8').split('\n'))
                  if (line !== '') io.line(line);
              },
            },
            jobs,
          )
        : await replay(
            c,
            {
              cloudtrail: o.cloudtrail ?? [],
              telemetry: o.telemetry || [],
              guardduty: o.guardduty ?? [],
              findings: o.findings ?? false,
              ...(o.inventory ? { inventory: o.inventory } : {}),
              ...(trail ? { trailFiles: trail.files } : {}),
            },
            io,
          );
    flush();
    if (!o.quiet) {
      out.stderr(
        `replay: ${s.telemetryRecords} telemetry records (${s.telemetryInvalid} invalid) loaded in ${(s.telemetryMs / 1000).toFixed(1)} s, ` +
          (s.inventoryInstances > 0 ? `${s.inventoryInstances} instances in the inventory, ` : '') +
          `${s.cloudtrailRecords} CloudTrail records from ${s.files} files (${s.cloudtrailInvalid} invalid) correlated in ${(s.correlateMs / 1000).toFixed(1)} s ` +
          `(${s.correlateMs > 0 ? Math.round(s.cloudtrailRecords / (s.correlateMs / 1000)) : 0} records/s${jobs > 1 ? `, ${jobs} workers` : ''}); total ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
          `decisions ${JSON.stringify(s.decisions)}${o.findings ? `; ${s.findings} findings` : ''}${o.guardduty?.length ? `; GuardDuty ${JSON.stringify(s.guardduty)}` : ''}\n`,
      );
    }
    for (const f of s.failedFiles) out.stderr(`replay: skipped ${f}\n`);
    return 0;
  } catch (err) {
    flush();
    out.stderr(`replay: ${(err as Error).message}\n`);
    return 1;
  } finally {
    trail?.close();
  }
}

/** A decision about a gateway address, decided without telemetry, says so in its reason. */
function markNoEvidence(line: string): string {
  const r = JSON.parse(line) as { gatewayId?: unknown; detail?: { reason?: unknown } };
  if (r.gatewayId === null || r.gatewayId === undefined || !r.detail) return line;
  r.detail.reason = `${NO_EVIDENCE}: ${String(r.detail.reason)}`;
  return JSON.stringify(r);
}

/** Each input that cannot be read, as a sentence naming the flag and the file. */
async function missingInputs(inputs: { flag: string; path: string; folder: boolean }[]): Promise<string[]> {
  const problems: string[] = [];
  for (const i of inputs) {
    try {
      const s = await stat(i.path);
      if (s.isDirectory() && !i.folder) problems.push(`${i.flag} ${i.path} is a folder; give the files in it`);
    } catch (err) {
      const code = (err as { code?: string }).code;
      problems.push(
        code === 'ENOENT'
          ? `${i.flag} ${i.path}: no such file${i.folder ? ' or folder' : ''} (docs/operations.md#4-replay-offline-forensics)`
          : code === 'EACCES'
            ? `${i.flag} ${i.path}: permission denied`
            : `${i.flag} ${i.path}: ${(err as Error).message}`,
      );
    }
  }
  return problems;
}

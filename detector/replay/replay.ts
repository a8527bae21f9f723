/**
 * Offline forensics without a running daemon: agent NDJSON telemetry (the
 * `telemetry.file` sink format) goes into an in-memory store, then every
 * CloudTrail record and GuardDuty finding runs through the daemon's own
 * decision pipeline over that store — with all evidence up front, so no grace
 * period. Same pipeline, same store contract: the daemon's answer.
 *
 *   telemetry ─▶ MemoryStore ◀─ DecisionPipeline ◀─ CloudTrail records, then GuardDuty findings
 *   inventory files ─▶ address history ─┘   └─▶ decisions (one line each), findings (--findings)
 *
 * The inventory is read from `--inventory` files, else from the config's
 * inventory.files, as the daemon reads them at its start (EC2 is never polled).
 */
import { stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { validateRecord } from '../../protocol/telemetry.js';
import { recordTimeProblem, type TimeBounds } from '../../protocol/time-bounds.js';
import type { DetectorConfig } from '../config/schema.js';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/log/logger.js';
import { packageVersion } from '../../common/runtime/version.js';
import { parseCloudTrailInput } from '../cloudtrail/parse.js';
import { readTextBounded } from '../../common/io/bounded-read.js';
import type { Decision } from '../correlate/decide.js';
import { parseGuardDutyFinding, type GuardDutyDecision } from '../guardduty/decide.js';
import { wireFinding } from '../guardduty/wire-shape.js';
import { cloudTrailDecisionRow, decisionRecord, guardDutyDecisionRow } from '../decisions/record.js';
import { cloudTrailFiles } from '../engine/cloudtrail-watcher.js';
import { decideRecords } from '../engine/decide-records.js';
import { DecisionPipeline, type PipelineOptions } from '../engine/pipeline.js';
import { createDetectorMetrics } from '../metrics/metrics.js';
import { MemoryStore } from '../store/memory-store.js';
import type { DetectorStore } from '../store/store.js';
import { buildCorrelationContext } from '../correlation-context.js';
import type { TrailFile } from '../trail/backfill.js';
import { DecisionCounts } from '../decisions/counts.js';
import { EMPTY_INVENTORY, type InventoryView } from '../correlate/types.js';
import { historyFromFiles } from '../inventory/files.js';
import { inventoryView } from '../inventory/view.js';

export interface ReplayIo {
  line(text: string): void;
  /** One line given in pieces, written one after the other (without it: `line` of the pieces joined). */
  lineParts?(parts: readonly string[]): void;
  progress(text: string): void;
}

export interface ReplayOptions {
  cloudtrail: string[];
  telemetry: string[];
  guardduty: string[];
  findings: boolean;
  /** Inventory files (describe-instances JSON or address lists); default: the config's inventory.files. */
  inventory?: string[];
  /** Log files read from a trail's bucket (`--s3`), decided after the local ones. */
  trailFiles?: AsyncIterable<TrailFile>;
}

export interface ReplaySummary {
  telemetryRecords: number;
  telemetryInvalid: number;
  cloudtrailRecords: number;
  cloudtrailInvalid: number;
  decisions: Record<string, number>;
  findings: number;
  guardduty: Record<string, number>;
  files: number;
  failedFiles: string[];
  /** Instances in the inventory read. */
  inventoryInstances: number;
  /** Wall time loading telemetry, and deciding CloudTrail records (reading files excluded). */
  telemetryMs: number;
  correlateMs: number;
}

/** A summary with nothing counted yet. */
export function emptySummary(): ReplaySummary {
  return {
    telemetryRecords: 0,
    telemetryInvalid: 0,
    cloudtrailRecords: 0,
    cloudtrailInvalid: 0,
    decisions: {},
    findings: 0,
    guardduty: {},
    files: 0,
    failedFiles: [],
    inventoryInstances: 0,
    telemetryMs: 0,
    correlateMs: 0,
  };
}

/** Expands folders into their .json/.json.gz files. */
export async function expand(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const s = await stat(p);
    if (s.isDirectory()) for await (const f of cloudTrailFiles(p)) out.push(f);
    else out.push(p);
  }
  return out;
}

/** CloudTrail records from a file as the watch directory reads it (gzip or not, at most `maxBytes`). */
export async function readCloudTrailRecords(path: string, maxBytes: number): Promise<unknown[]> {
  const file = parseCloudTrailInput(await readTextBounded(path, maxBytes));
  if ('error' in file) throw new Error(file.error);
  return file.records;
}

/** GuardDuty findings from JSON lines, arrays, EventBridge events or bare findings (gzip or not, at most `maxBytes`). */
async function readGuardDutyFindings(path: string, maxBytes: number): Promise<unknown[]> {
  const text = (await readTextBounded(path, maxBytes)).trim();
  try {
    const v = JSON.parse(text) as unknown;
    if (Array.isArray(v)) return v as unknown[];
    const findings = (v as { Findings?: unknown; findings?: unknown } | null)?.Findings ?? (v as { findings?: unknown } | null)?.findings;
    return Array.isArray(findings) ? (findings as unknown[]) : [v];
  } catch {
    return text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        try {
          return JSON.parse(l) as unknown;
        } catch {
          return l;
        }
      });
  }
}

/** Records outside the time bounds count as invalid, as the daemon would have rejected them. */
export async function loadTelemetry(
  paths: string[],
  store: MemoryStore,
  bounds: TimeBounds,
  io: Pick<ReplayIo, 'progress'>,
): Promise<{ records: number; invalid: number }> {
  let records = 0;
  let invalid = 0;
  for (const path of paths) {
    const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const line of rl) {
      if (!line.trim()) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        invalid++;
        continue;
      }
      const v = validateRecord(value);
      if (!v.ok || recordTimeProblem(v.record, bounds) !== null || !store.addRecord(v.record.gatewayId, v.record)) {
        invalid++;
        continue;
      }
      if (++records % 200_000 === 0) io.progress(`telemetry: ${records} records`);
    }
  }
  return { records, invalid };
}

/** A CloudTrail decision as a decision record line (docs/decision-record.schema.json), as `detector decisions` prints it. */
export function decisionLine(d: Decision, eventTimeMs: number, decidedMs: number): string {
  return decisionLineParts(d, eventTimeMs, decidedMs).join('');
}

const EMPTY_REASON = '"reason":""';

/**
 * decisionLine in three pieces: the record with an empty reason up to it, the reason, and the
 * rest. A reason masks keys with '…', and one such character in a JSON text makes all of it
 * two bytes a character, built and then copied flat to be written; apart, only the reason is.
 */
export function decisionLineParts(d: Decision, eventTimeMs: number, decidedMs: number): string[] {
  const record = decisionRecord(cloudTrailDecisionRow(d, eventTimeMs, decidedMs));
  const reason = d.reason;
  if (typeof reason !== 'string') return [JSON.stringify(record)];
  // The decision itself is written with its reason set aside for the call, not a copy of it with an
  // empty reason (about a sixth of the line's time); nothing else runs meanwhile.
  let text: string;
  d.reason = '';
  try {
    text = JSON.stringify(record);
  } finally {
    d.reason = reason;
  }
  // The detail's reason: no other key is named so, and a quote inside a JSON string is escaped.
  const at = text.lastIndexOf(EMPTY_REASON);
  if (at < 0) return [JSON.stringify(record)];
  const split = at + EMPTY_REASON.length - 2;
  return [text.slice(0, split), JSON.stringify(reason), text.slice(split + 2)];
}

/** A GuardDuty decision as a decision record line, with the subject and time the daemon stores it under. */
export function guardDutyDecisionLine(d: GuardDutyDecision, raw: unknown, decidedMs: number): string {
  const parsed = parseGuardDutyFinding(wireFinding(raw));
  const f = parsed.kind === 'finding' ? parsed.finding : null;
  const subjectId = f ? `${f.id}@${f.updatedAt ?? f.eventLastSeen ?? ''}` : d.findingId;
  const timeMs = Date.parse(f?.eventLastSeen ?? '') || decidedMs;
  return JSON.stringify(decisionRecord(guardDutyDecisionRow(d, subjectId, timeMs, decidedMs)));
}

/**
 * The daemon's pipeline over `store` without the daemon: no grace period (the evidence is all
 * there), GuardDuty in report mode without an API (nothing is read back or archived), the sink
 * doing nothing (findings kept in the store only), metrics counted but never exported, a silent
 * logger; `o` overrides any of it (replay adds its inventory and hooks, tests their clock).
 */
export async function replayPipeline(
  config: DetectorConfig,
  store: DetectorStore,
  o: Partial<PipelineOptions> = {},
): Promise<DecisionPipeline> {
  const { registry, policy } = await buildCorrelationContext(config);
  return new DecisionPipeline({
    store,
    registry: () => registry,
    policy: () => policy,
    graceMs: () => 0,
    sink: { emit: () => Promise.resolve() },
    metrics: createDetectorMetrics(new Registry(), { version: packageVersion(), nodeVersion: 'replay' }),
    logger: createLogger({ level: 'silent', name: 'replay' }),
    now: () => Date.now(),
    guardduty: { mode: () => 'report', target: () => ({ region: null, detectorId: null }), webhookKept: () => false, api: null },
    ...o,
  });
}

/** The inventory files read once, as the daemon reads them at its start; entries left out are reported. */
export async function replayInventory(
  config: DetectorConfig,
  paths: readonly string[],
  io: Pick<ReplayIo, 'progress'>,
): Promise<{ view: InventoryView; instances: number }> {
  if (paths.length === 0) return { view: EMPTY_INVENTORY, instances: 0 };
  const { history, rejected } = await historyFromFiles(paths, Date.now());
  for (const r of rejected.slice(0, 20)) io.progress(`inventory ${r.path}: left out ${r.reason}`);
  if (rejected.length > 20) io.progress(`inventory: ${rejected.length - 20} more entries left out`);
  return { view: inventoryView(history, config.inventory.translated_networks), instances: history.size.instances };
}

export async function replay(
  config: DetectorConfig,
  o: ReplayOptions,
  io: ReplayIo,
  // Without GuardDuty findings nothing reads a decision back but its own verdict (a repeated or
  // superseded event's): the rows keep only that.
  store = new MemoryStore({ copyValues: false, decisions: o.guardduty.length > 0 ? 'without-detail' : 'verdict' }),
): Promise<ReplaySummary> {
  const summary = emptySummary();
  const loadStart = performance.now();
  const bounds = { nowMs: Date.now(), clockSkewMs: config.ingest.clock_skew, maxSpanMs: config.ingest.max_observation_span };
  const t = await loadTelemetry(o.telemetry, store, bounds, io);
  summary.telemetryMs = performance.now() - loadStart;
  summary.telemetryRecords = t.records;
  summary.telemetryInvalid = t.invalid;
  const inventory = await replayInventory(config, o.inventory ?? config.inventory.files, io);
  summary.inventoryInstances = inventory.instances;
  const findingIds = new Set<string>();
  const counts = new DecisionCounts();
  const printDecisions = !o.findings && o.guardduty.length === 0;
  const pipeline = await replayPipeline(config, store, {
    inventory: () => inventory.view,
    // Printing decisions, nothing reads a finding back (--findings prints them, GuardDuty findings
    // are judged against the decisions): they are not built, and the decisions are the same.
    findings: !printDecisions,
    findingChanged: (_tx, id) => {
      findingIds.add(id);
      return Promise.resolve();
    },
    // Told each decision the daemon makes, so a record repeated (in one file or across files) is
    // decided once; a record not made with instance credentials is told as ignored each time it comes.
    decided: (d, event) => {
      summary.cloudtrailRecords++;
      counts.add(d.disposition, d.rule);
      if (printDecisions) {
        const parts = decisionLineParts(d, event.eventTimeMs, Date.now());
        if (io.lineParts) io.lineParts(parts);
        else io.line(parts.join(''));
      }
      if (summary.cloudtrailRecords % 100_000 === 0) io.progress(`cloudtrail: ${summary.cloudtrailRecords} records decided`);
    },
  });
  const decideFile = async (records: readonly unknown[]): Promise<void> => {
    summary.files++;
    const decideStart = performance.now();
    // In the daemon's slices: a transaction per slice keeps what it holds until its commit (the
    // undo log) short-lived; the evidence is the in-memory index itself, read for free per slice.
    const { invalid, failed } = await decideRecords(pipeline.cloudtrail, records, 'trail');
    summary.cloudtrailInvalid += invalid + failed;
    summary.correlateMs += performance.now() - decideStart;
  };
  try {
    for (const path of await expand(o.cloudtrail)) {
      let records: unknown[];
      try {
        records = await readCloudTrailRecords(path, config.cloudtrail.max_file_bytes);
      } catch (err) {
        summary.failedFiles.push(`${path}: ${(err as Error).message}`);
        continue;
      }
      await decideFile(records);
    }
    for await (const { key, read } of o.trailFiles ?? []) {
      if (read.kind === 'failed') summary.failedFiles.push(`${key}: ${read.reason}`);
      else await decideFile(read.records);
    }
    // Events dated after now are findings held for their grace period: end it.
    await pipeline.cloudtrail.tick(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    summary.decisions = counts.toRecord();
    if (o.findings) {
      for (const id of findingIds) io.line(JSON.stringify(await store.getFinding(id)));
      summary.findings = findingIds.size;
    }
    for (const path of o.guardduty) {
      for (const raw of await readGuardDutyFindings(path, config.cloudtrail.max_file_bytes)) {
        const r = await pipeline.guardduty.process(raw);
        if (r.kind !== 'decided') {
          summary.guardduty[r.kind] = (summary.guardduty[r.kind] ?? 0) + 1;
          continue;
        }
        const d = r.decision;
        summary.guardduty[`${d.decision}/${d.reason}`] = (summary.guardduty[`${d.decision}/${d.reason}`] ?? 0) + 1;
        io.line(guardDutyDecisionLine(d, raw, Date.now()));
      }
    }
  } finally {
    await pipeline.close();
  }
  return summary;
}

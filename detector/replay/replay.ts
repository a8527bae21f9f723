/**
 * Offline forensics without a running daemon: agent NDJSON telemetry (the
 * `telemetry.file` sink format) becomes in-memory evidence, then every
 * CloudTrail record is decided by the same pure rules as the daemon — with
 * all evidence up front, so no grace period — and GuardDuty findings too.
 */
import { readFile } from 'node:fs/promises';
import { stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { validateRecord } from '../../protocol/telemetry.js';
import { recordTimeProblem, type TimeBounds } from '../../protocol/time-bounds.js';
import type { DetectorConfig } from '../config/schema.js';
import { normalizeRecord, unwrapEventBridge, type CloudTrailEvent } from '../cloudtrail/parse.js';
import { cloudTrailFiles, readCloudTrailFile, readTextMaybeGzip } from '../engine/cloudtrail-watcher.js';
import { decide, type Decision } from '../correlate/decide.js';
import { MemoryEvidence } from '../correlate/memory-evidence.js';
import { findingContextOf, findingFromDecision, mergeFinding, type Finding } from '../findings/shape.js';
import { parseGuardDutyFinding, decideGuardDutyFinding, type CloudTrailUse } from '../guardduty/decide.js';
import { buildCorrelationContext } from '../correlation-context.js';
import { wireFinding } from '../guardduty/wire-shape.js';

export interface ReplayIo {
  line(text: string): void;
  progress(text: string): void;
}

export interface ReplayOptions {
  cloudtrail: string[];
  telemetry: string[];
  guardduty: string[];
  findings: boolean;
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
  /** Wall time loading telemetry, and deciding CloudTrail records (reading files excluded). */
  telemetryMs: number;
  correlateMs: number;
}

/** Expands folders into their .json/.json.gz files. */
async function expand(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const s = await stat(p);
    if (s.isDirectory()) for await (const f of cloudTrailFiles(p)) out.push(f);
    else out.push(p);
  }
  return out;
}

/** CloudTrail records from a log file, an EventBridge event/array, or JSON lines of either. */
async function readCloudTrailRecords(path: string): Promise<unknown[]> {
  const file = await readCloudTrailFile(path);
  if ('records' in file) return file.records;
  if (file.error.startsWith('not valid gzip') || file.error.startsWith('larger than')) throw new Error(file.error);
  const text = await readTextMaybeGzip(path);
  try {
    return unwrapEventBridge(JSON.parse(text) as unknown);
  } catch {
    const out: unknown[] = [];
    for (const l of text.split('\n')) {
      if (!l.trim()) continue;
      try {
        out.push(...unwrapEventBridge(JSON.parse(l) as unknown));
      } catch {
        out.push(l);
      }
    }
    return out;
  }
}

/** GuardDuty findings from JSON lines, arrays, EventBridge events or bare findings. */
async function readGuardDutyFindings(path: string): Promise<unknown[]> {
  const text = (await readFile(path, 'utf8')).trim();
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
async function loadTelemetry(
  paths: string[],
  evidence: MemoryEvidence,
  bounds: TimeBounds,
  io: ReplayIo,
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
      if (!v.ok || recordTimeProblem(v.record, bounds) !== null || !evidence.addRecord(v.record.gatewayId, v.record)) {
        invalid++;
        continue;
      }
      if (++records % 200_000 === 0) io.progress(`telemetry: ${records} records`);
    }
  }
  return { records, invalid };
}

function decisionLine(d: Decision): string {
  return JSON.stringify({
    eventId: d.eventId,
    eventTime: d.eventTime,
    accessKeyId: d.accessKeyId,
    sourceIPAddress: d.sourceIPAddress,
    disposition: d.disposition,
    rule: d.rule,
    severity: d.severity,
    gatewayId: d.gatewayId,
    instanceId: d.instanceId,
    reason: d.reason,
    evidence: d.disposition === 'suppressed' || d.evidence.length > 0 ? d.evidence : undefined,
  });
}

export async function replay(
  config: DetectorConfig,
  o: ReplayOptions,
  io: ReplayIo,
  evidence = new MemoryEvidence(),
): Promise<ReplaySummary> {
  const summary: ReplaySummary = {
    telemetryRecords: 0,
    telemetryInvalid: 0,
    cloudtrailRecords: 0,
    cloudtrailInvalid: 0,
    decisions: {},
    findings: 0,
    guardduty: {},
    files: 0,
    failedFiles: [],
    telemetryMs: 0,
    correlateMs: 0,
  };
  const loadStart = performance.now();
  const bounds = { nowMs: Date.now(), clockSkewMs: config.ingest.clock_skew, maxSpanMs: config.ingest.max_observation_span };
  const t = await loadTelemetry(o.telemetry, evidence, bounds, io);
  summary.telemetryMs = performance.now() - loadStart;
  summary.telemetryRecords = t.records;
  summary.telemetryInvalid = t.invalid;
  const ctx = { ...(await buildCorrelationContext(config)), evidence };
  const findings = new Map<string, Finding>();
  const nowIso = new Date().toISOString();
  const uses = new Map<string, CloudTrailUse[]>();
  /** Event times of this replay's own findings, per key (GuardDuty findings are checked against them). */
  const ownFindingTimes = new Map<string, number[]>();
  const seen = new Set<string>();
  for (const path of await expand(o.cloudtrail)) {
    let records: unknown[];
    try {
      records = await readCloudTrailRecords(path);
    } catch (err) {
      summary.failedFiles.push(`${path}: ${(err as Error).message}`);
      continue;
    }
    summary.files++;
    const decideStart = performance.now();
    for (const raw of records) {
      const n = normalizeRecord(raw);
      if (n.kind === 'invalid') {
        summary.cloudtrailInvalid++;
        continue;
      }
      const e: CloudTrailEvent = n.event;
      if (seen.has(e.eventId)) continue;
      seen.add(e.eventId);
      summary.cloudtrailRecords++;
      if (e.identity.accessKeyId) {
        const list = uses.get(e.identity.accessKeyId) ?? [];
        list.push({ eventId: e.eventId, eventTime: e.eventTime, sourceIPAddress: e.sourceIPAddress, vpcEndpointId: e.vpcEndpointId });
        uses.set(e.identity.accessKeyId, list);
      }
      const d = decide(e, ctx);
      if (d.disposition === 'finding' && e.identity.accessKeyId) {
        const list = ownFindingTimes.get(e.identity.accessKeyId) ?? [];
        list.push(e.eventTimeMs);
        ownFindingTimes.set(e.identity.accessKeyId, list);
      }
      const k = `${d.disposition}/${d.rule}`;
      summary.decisions[k] = (summary.decisions[k] ?? 0) + 1;
      if (!o.findings && o.guardduty.length === 0) io.line(decisionLine(d));
      else if (o.findings && d.disposition === 'finding') {
        const f = findingFromDecision(d, e, findingContextOf(e, nowIso));
        const prev = findings.get(f.id);
        findings.set(f.id, prev ? mergeFinding(prev, f) : f);
      }
      if (summary.cloudtrailRecords % 100_000 === 0) io.progress(`cloudtrail: ${summary.cloudtrailRecords} records decided`);
    }
    summary.correlateMs += performance.now() - decideStart;
  }
  if (o.findings) {
    for (const f of findings.values()) io.line(JSON.stringify(f));
    summary.findings = findings.size;
  }
  if (o.guardduty.length > 0) {
    const cloudTrailUses = (key: string, from: number, to: number): CloudTrailUse[] =>
      (uses.get(key) ?? []).filter((u) => {
        const t = Date.parse(u.eventTime);
        return t >= from && t <= to;
      });
    for (const path of o.guardduty) {
      for (const raw of await readGuardDutyFindings(path)) {
        const p = parseGuardDutyFinding(wireFinding(raw));
        if (p.kind === 'invalid') {
          summary.guardduty.invalid = (summary.guardduty.invalid ?? 0) + 1;
          continue;
        }
        const ownFindings = (key: string, from: number, to: number): number =>
          (ownFindingTimes.get(key) ?? []).filter((t) => t >= from && t <= to).length;
        const d = decideGuardDutyFinding(p.finding, { ...ctx, cloudTrailUses, ownFindings });
        summary.guardduty[`${d.decision}/${d.reason}`] = (summary.guardduty[`${d.decision}/${d.reason}`] ?? 0) + 1;
        io.line(
          JSON.stringify({
            findingId: d.findingId,
            accessKeyId: d.accessKeyId,
            remoteIp: d.remoteIp,
            decision: d.decision,
            reason: d.reason,
            gatewayId: d.gatewayId,
            spanStart: d.spanStart,
            spanEnd: d.spanEnd,
            evidence: d.evidence,
          }),
        );
      }
    }
  }
  return summary;
}

// Rebuilding the spool's queue from its directory after a restart or a crash.
//
//   segment-000000007.log  [r40][r41][r42][r43]
//   segment-000000008.log  [r44][r45][r4▒▒      ← torn tail: truncated
//   state.json             readIndex 43, inFlight [41], skipped []
//                                 │
//                                 ▼
//   retry (pending again, in seq order): r41
//   fresh (never taken, in seq order):   r43 r44 r45
//
// The segments are the truth about what exists; state.json only says what is
// finished. Anything state.json cannot vouch for as finished is pending, so a
// lost, stale or corrupt state.json costs duplicates, never batches.

import { readdir, readFile, rename, open } from 'node:fs/promises';
import { join } from 'node:path';
import { scanSegment } from './spool-record.js';
import { EMPTY_STATE, STATE_FILE, loadState, type SpoolState } from './spool-state.js';

/** One batch still in the spool, pending or in flight. */
export interface LiveBatch {
  id: string;
  seq: number;
  segment: number;
  offset: number;
  /** Record bytes (header + payload): what the batch costs against maxBytes. */
  size: number;
  enqueuedAt: number;
  attempts: number;
  /** Taken at least once: seq is below readIndex, so it is listed in state.json's inFlight. */
  taken: boolean;
  inFlight: boolean;
  removed: boolean;
}

export interface SegmentFile {
  no: number;
  path: string;
  size: number;
  /** Live batches whose record is in this segment; the file goes when it reaches 0. */
  live: number;
  readFd: number | null;
}

export interface SegmentDamage {
  segment: string;
  offset: number;
  bytes: number;
  reason: string;
}

export interface RecoveredSpool {
  segments: Map<number, SegmentFile>;
  /** Taken before the restart and not finished: pending again, ahead of everything else. */
  retry: LiveBatch[];
  fresh: LiveBatch[];
  writeIndex: number;
  damage: SegmentDamage[];
  /** Why state.json was ignored (every record found is then pending), or null. */
  stateReset: string | null;
}

const SEGMENT_NAME = /^segment-(\d{9,})\.log$/;

export function segmentName(no: number): string {
  return `segment-${String(no).padStart(9, '0')}.log`;
}

export async function recoverSpool(dir: string, nowMs: number): Promise<RecoveredSpool> {
  const segmentNos = (await readdir(dir))
    .map((name) => SEGMENT_NAME.exec(name)?.[1])
    .filter((no): no is string => no !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  const { state, stateReset } = await readStateOrReset(dir, segmentNos.length > 0, nowMs);

  const segments = new Map<number, SegmentFile>();
  const damage: SegmentDamage[] = [];
  const retry: LiveBatch[] = [];
  const fresh: LiveBatch[] = [];
  const liveIds = new Set<string>();
  const inFlightBySeq = new Map(state.inFlight.map((m) => [m.seq, m]));
  const skipped = new Set(state.skipped);
  let writeIndex = Math.max(state.writeIndex, state.readIndex, ...state.inFlight.map((m) => m.seq + 1));

  for (const no of segmentNos) {
    const name = segmentName(no);
    const path = join(dir, name);
    const bytes = await readFile(path);
    const scan = scanSegment(bytes);
    for (const range of scan.skipped) damage.push({ segment: name, ...range, reason: `skipped: ${range.reason}` });
    if (scan.tail !== null) {
      await truncateFile(path, scan.tail.offset);
      damage.push({ segment: name, ...scan.tail, reason: `truncated: ${scan.tail.reason}` });
    }
    const segment: SegmentFile = { no, path, size: scan.tail?.offset ?? bytes.length, live: 0, readFd: null };
    segments.set(no, segment);

    for (const record of scan.records) {
      writeIndex = Math.max(writeIndex, record.seq + 1);
      // A duplicate id can only come from an append that failed after its bytes
      // reached the disk and was retried; the first copy stands for both.
      if (liveIds.has(record.id)) continue;
      const mark = inFlightBySeq.get(record.seq);
      const taken = record.seq < state.readIndex;
      if (taken && mark?.id !== record.id) continue;
      if (!taken && skipped.has(record.seq)) continue;
      liveIds.add(record.id);
      segment.live += 1;
      const batch: LiveBatch = {
        id: record.id,
        seq: record.seq,
        segment: no,
        offset: record.offset,
        size: record.size,
        enqueuedAt: record.enqueuedAt,
        attempts: taken ? (mark?.attempts ?? 0) : 0,
        taken,
        inFlight: false,
        removed: false,
      };
      (taken ? retry : fresh).push(batch);
    }
  }
  retry.sort((a, b) => a.seq - b.seq);
  fresh.sort((a, b) => a.seq - b.seq);
  return { segments, retry, fresh, writeIndex, damage, stateReset };
}

/**
 * A corrupt state.json is set aside as `state.json.corrupt-<ms>` for a human
 * to look at, and the spool restarts from the segments alone: every intact
 * record is pending, including ones already acknowledged (sent again; the
 * detector dedupes on batch id). A missing state.json next to segments is
 * treated the same way.
 */
async function readStateOrReset(
  dir: string,
  haveSegments: boolean,
  nowMs: number,
): Promise<{ state: SpoolState; stateReset: string | null }> {
  const loaded = await loadState(dir);
  switch (loaded.kind) {
    case 'found':
      return { state: loaded.state, stateReset: null };
    case 'missing':
      return { state: EMPTY_STATE, stateReset: haveSegments ? 'state.json missing' : null };
    case 'corrupt':
      await rename(join(dir, STATE_FILE), join(dir, `${STATE_FILE}.corrupt-${nowMs}`));
      return { state: EMPTY_STATE, stateReset: loaded.reason };
  }
}

async function truncateFile(path: string, length: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(length);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

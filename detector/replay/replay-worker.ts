/**
 * One worker of `replay --jobs N` (a worker thread; parallel.ts starts them).
 * It loads all the evidence as replay does, reads every CloudTrail file, and
 * decides the records that are its own (shards.ts: by eventID), a round of
 * records at a time. Each round's decision lines go to the main thread encoded
 * (the buffer is handed over, not copied), each with the index of its record
 * in the file, so that the main thread can print every worker's lines in the
 * order of the records. Held events (dated after now) are decided at the end
 * and sent with their due time.
 *
 * Messages, in this order: `loaded`, then per file either `failed` or one
 * `round` per RECORDS_PER_ROUND records, then `done`; `progress` (worker 0
 * only) and `error` at any time. A worker runs at most ROUNDS_AHEAD rounds
 * ahead of what the main thread has printed (`ack`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { CloudTrailEvent } from '../cloudtrail/parse.js';
import type { Decision } from '../correlate/decide.js';
import { MemoryStore } from '../store/memory-store.js';
import type { RecordOutcome } from '../engine/correlation-engine.js';
import { decisionLineParts, loadTelemetry, readCloudTrailRecords, replayInventory, replayPipeline } from './replay.js';
import { RECORDS_PER_ROUND, shardOf, toldInBatch } from './shards.js';
import { ROUNDS_AHEAD, type FromWorker, type Lines, type ToWorker, type WorkerInput } from './parallel.js';

const input = workerData as WorkerInput;
const port = parentPort;
if (port === null) throw new Error('replay-worker runs as a worker thread of replay --jobs');

let acked = -1;
let wake: (() => void) | null = null;
port.on('message', (m: ToWorker) => {
  acked = m.acked;
  wake?.();
  wake = null;
});

function post(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(m, transfer);
}

/**
 * A round's decision lines (or the held ones'), encoded one after the other, each ending in a
 * newline at `ends[n]`, with what the main thread orders and counts them by. The bytes are in a
 * buffer of their own (not the pool's), handed over as they are.
 */
class LineBuffer {
  private bytes = Buffer.allocUnsafeSlow(1 << 20);
  private used = 0;
  private readonly lines: Omit<Lines, 'bytes'> = { ends: [], order: [], dispositions: [], rules: [] };
  /** With `due`: each line's due time (the held events'). */
  readonly due: number[] = [];

  add(decision: Decision, event: CloudTrailEvent, order: number): void {
    for (const part of decisionLineParts(decision, event.eventTimeMs, Date.now())) this.write(part);
    this.write('\n');
    this.lines.ends.push(this.used);
    this.lines.order.push(order);
    this.lines.dispositions.push(decision.disposition);
    this.lines.rules.push(decision.rule);
  }

  get count(): number {
    return this.lines.ends.length;
  }

  private write(text: string): void {
    const most = text.length * 3; // UTF-8 bytes at most
    if (this.used + most > this.bytes.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.used + most));
      this.bytes.copy(bigger, 0, 0, this.used);
      this.bytes = bigger;
    }
    this.used += this.bytes.write(text, this.used);
  }

  /** The lines, to post with their buffer in the transfer list. */
  take(): Lines {
    return { bytes: this.bytes.buffer, ...this.lines };
  }
}

async function run(): Promise<void> {
  const { config, shard, jobs } = input;
  const io = {
    progress: (text: string) => {
      if (shard === 0) post({ type: 'progress', text });
    },
  };
  const store = new MemoryStore({ copyValues: false, decisions: 'verdict' });
  const loadStart = performance.now();
  const bounds = { nowMs: input.nowMs, clockSkewMs: config.ingest.clock_skew, maxSpanMs: config.ingest.max_observation_span };
  const t = await loadTelemetry(input.telemetry, store, bounds, io);
  const telemetryMs = performance.now() - loadStart;
  const inventory = await replayInventory(config, input.inventory, io);
  post({ type: 'loaded', telemetryRecords: t.records, telemetryInvalid: t.invalid, telemetryMs, inventoryInstances: inventory.instances });

  let told: { decision: Decision; event: CloudTrailEvent }[] = [];
  const pipeline = await replayPipeline(config, store, {
    inventory: () => inventory.view,
    findings: false,
    decided: (decision, event) => told.push({ decision, event }),
  });
  let records = 0;
  let invalid = 0;
  let decideMs = 0;
  let round = 0;
  let base = 0; // records of the files before this one
  /** Held events: their record's index over all files. */
  const held = new Map<string, number>();
  for (const [file, path] of input.cloudtrail.entries()) {
    let all: unknown[];
    try {
      all = await readCloudTrailRecords(path, config.cloudtrail.max_file_bytes);
    } catch (err) {
      post({ type: 'failed', file, reason: `${path}: ${(err as Error).message}` });
      continue;
    }
    for (let from = 0; from < all.length; from += RECORDS_PER_ROUND) {
      const start = performance.now();
      const mine: unknown[] = [];
      const index: number[] = [];
      for (let i = from; i < Math.min(from + RECORDS_PER_ROUND, all.length); i++)
        if (shardOf(all[i], jobs) === shard) {
          mine.push(all[i]);
          index.push(i);
        }
      const lines = new LineBuffer();
      if (mine.length > 0) {
        told = [];
        const outcomes: RecordOutcome[] = await pipeline.cloudtrail.processBatch(mine, 'trail');
        let next = 0;
        for (let n = 0; n < outcomes.length; n++) {
          const outcome = outcomes[n]!;
          if (outcome === 'invalid' || outcome === 'failed') invalid++;
          else if (outcome === 'pending') {
            const id = (mine[n] as { eventID: string }).eventID;
            if (!held.has(id)) held.set(id, base + index[n]!);
          }
          if (!toldInBatch(outcome)) continue;
          const one = told[next++];
          if (one === undefined) break;
          lines.add(one.decision, one.event, index[n]!);
        }
        if (next !== told.length)
          throw new Error(`replay worker ${shard}: ${told.length} decisions told for ${lines.count} records decided`);
        records += lines.count;
      }
      const taken = lines.take();
      decideMs += performance.now() - start;
      post({ type: 'round', round, file, ...taken }, [taken.bytes]);
      round++;
      // At most ROUNDS_AHEAD rounds ahead of the main thread, which prints them in turn.
      while (acked < round - ROUNDS_AHEAD) await new Promise<void>((resolve) => (wake = resolve));
    }
    base += all.length;
  }
  // Events dated after now were held for their grace period: end it, as replay does.
  const start = performance.now();
  told = [];
  await pipeline.cloudtrail.tick(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const lines = new LineBuffer();
  for (const { decision, event } of told) {
    lines.add(decision, event, held.get(event.eventId) ?? Number.MAX_SAFE_INTEGER);
    lines.due.push(event.eventTimeMs);
  }
  records += told.length;
  decideMs += performance.now() - start;
  await pipeline.close();
  const taken = lines.take();
  post({ type: 'done', records, invalid, decideMs, due: lines.due, ...taken }, [taken.bytes]);
}

run().catch((err: unknown) => post({ type: 'error', message: err instanceof Error ? err.message : String(err) }));

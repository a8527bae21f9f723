/**
 * `replay --jobs N`: the CloudTrail records decided by N worker threads
 * (replay-worker.ts), the decisions printed as one thread prints them.
 *
 *   worker k: telemetry + inventory (all of it) ─▶ every file ─▶ its records (shards.ts) ─▶ lines of a round ─┐
 *   main:     rounds of all workers, in turn ─▶ lines merged by record ─▶ io.bytes ─▶ ack (workers wait past ROUNDS_AHEAD) ◀┘
 *
 * Each worker loads the whole evidence, so a decision needs nothing from another
 * worker and is the one a single thread makes: N workers cost N times the memory
 * and the loading CPU of one. Only printed decisions are split this way:
 * findings (`--findings`), GuardDuty findings and a trail's bucket are decided
 * in one thread (replay.ts says so).
 */
import { Worker } from 'node:worker_threads';
import type { DetectorConfig } from '../config/schema.js';
import { DecisionCounts } from '../decisions/counts.js';
import { mergeLines } from './shards.js';
import { emptySummary, expand, type ReplayIo, type ReplaySummary } from './replay.js';

/** Rounds a worker may decide before the main thread has printed them: bounds what waits in memory. */
export const ROUNDS_AHEAD = 16;

export interface WorkerInput {
  config: DetectorConfig;
  shard: number;
  jobs: number;
  /** The time bounds' now, the same for every worker. */
  nowMs: number;
  telemetry: string[];
  inventory: string[];
  /** Files, folders expanded. */
  cloudtrail: string[];
}

export interface ToWorker {
  /** The last round printed. */
  acked: number;
}

/** Lines encoded (UTF-8, each ending in a newline at `ends[n]`) with what the main thread orders and counts them by. */
export interface Lines {
  bytes: ArrayBuffer;
  ends: number[];
  /** Each line's record: its index in the file (a round), or over all files (`done`). */
  order: number[];
  dispositions: string[];
  rules: string[];
}

export type FromWorker =
  | { type: 'progress'; text: string }
  | { type: 'error'; message: string }
  | { type: 'loaded'; telemetryRecords: number; telemetryInvalid: number; telemetryMs: number; inventoryInstances: number }
  | { type: 'failed'; file: number; reason: string }
  | ({ type: 'round'; round: number; file: number } & Lines)
  | ({ type: 'done'; records: number; invalid: number; decideMs: number; due: number[] } & Lines);

type Queued = Exclude<FromWorker, { type: 'progress' } | { type: 'error' }>;

/** Replay's ReplayIo, with the lines taken as bytes already encoded. */
export interface ParallelIo extends ReplayIo {
  bytes(data: Uint8Array): void;
}

export interface ParallelInputs {
  cloudtrail: string[];
  telemetry: string[];
  inventory: string[];
}

/**
 * Decides the CloudTrail files with `jobs` workers and prints their decisions in the order of the
 * records. The summary is replay's: `correlateMs` is the longest time a worker spent deciding
 * (reading files excluded, as with one thread), `telemetryMs` the longest a worker spent loading.
 */
export async function replayInWorkers(config: DetectorConfig, o: ParallelInputs, io: ParallelIo, jobs: number): Promise<ReplaySummary> {
  const cloudtrail = await expand(o.cloudtrail);
  const nowMs = Date.now();
  const workers = Array.from(
    { length: jobs },
    (_, shard) =>
      new Worker(new URL('./replay-worker.js', import.meta.url), {
        workerData: { config, shard, jobs, nowMs, telemetry: o.telemetry, inventory: o.inventory, cloudtrail } satisfies WorkerInput,
      }),
  );
  const summary: ReplaySummary = { ...emptySummary(), files: cloudtrail.length };
  const counts = new DecisionCounts();
  let printed = 0;
  const print = (parts: readonly Lines[], first?: readonly number[][]): void => {
    const chunks: Buffer[] = [];
    for (const [w, n] of mergeLines(parts.map((p, w) => ({ order: p.order, ...(first ? { first: first[w]! } : {}) })))) {
      const p = parts[w]!;
      const from = n === 0 ? 0 : p.ends[n - 1]!;
      chunks.push(Buffer.from(p.bytes, from, p.ends[n]! - from));
      counts.add(p.dispositions[n]!, p.rules[n]!);
      if (++printed % 100_000 === 0) io.progress(`cloudtrail: ${printed} records decided`);
    }
    if (chunks.length > 0) io.bytes(Buffer.concat(chunks));
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const queues: Queued[][] = workers.map(() => []);
      let over = false;
      const fail = (err: Error): void => {
        if (over) return;
        over = true;
        reject(err);
      };
      // Every worker sends the same messages in the same order (the same files, the same rounds):
      // they are taken a message of each at a time.
      const drain = (): void => {
        while (!over && queues.every((q) => q.length > 0)) {
          const heads = queues.map((q) => q.shift()!);
          const head = heads[0]!;
          if (heads.some((h) => h.type !== head.type || ('round' in h && 'round' in head && h.round !== head.round))) {
            fail(new Error(`replay workers out of step: ${heads.map((h) => h.type).join(', ')}`));
            return;
          }
          switch (head.type) {
            case 'loaded':
              for (const h of heads as Extract<Queued, { type: 'loaded' }>[])
                summary.telemetryMs = Math.max(summary.telemetryMs, h.telemetryMs);
              summary.telemetryRecords = head.telemetryRecords;
              summary.telemetryInvalid = head.telemetryInvalid;
              summary.inventoryInstances = head.inventoryInstances;
              break;
            case 'failed':
              summary.files--;
              summary.failedFiles.push(head.reason);
              break;
            case 'round':
              print(heads as Extract<Queued, { type: 'round' }>[]);
              for (const w of workers) w.postMessage({ acked: head.round } satisfies ToWorker);
              break;
            case 'done': {
              const done = heads as Extract<Queued, { type: 'done' }>[];
              print(
                done,
                done.map((d) => d.due),
              );
              for (const d of done) {
                summary.cloudtrailRecords += d.records;
                summary.cloudtrailInvalid += d.invalid;
                summary.correlateMs = Math.max(summary.correlateMs, d.decideMs);
              }
              over = true;
              resolve();
              return;
            }
          }
        }
      };
      workers.forEach((worker, shard) => {
        worker.on('message', (m: FromWorker) => {
          if (m.type === 'progress') io.progress(m.text);
          // Every worker reads the same inputs: the first to fail says why, as one thread would.
          else if (m.type === 'error') fail(new Error(m.message));
          else {
            queues[shard]!.push(m);
            try {
              drain();
            } catch (err) {
              // Printing failed (the output): the run fails with it, not the process with an uncaught error.
              fail(err as Error);
            }
          }
        });
        worker.on('error', (err) => fail(err));
        worker.on('exit', (code) => fail(new Error(`replay worker ${shard} stopped (exit code ${code}) before it was done`)));
      });
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  summary.decisions = counts.toRecord();
  return summary;
}

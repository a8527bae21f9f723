/**
 * CloudTrail from the trail's bucket, read through S3 event notifications on
 * an SQS queue (`cloudtrail.sqs`): the convention SIEM inputs use, and the
 * one that lets several detectors share a trail.
 *
 *   receive (long poll, ≤ free slots) ─▶ message ─┬─ s3:TestEvent ─▶ delete
 *                                                 ├─ not a notification ─▶ counted, left to the redrive policy
 *                                                 └─ objects ─▶ log keys only ─▶ GetObject ─▶ gunzip ≤ budget ─▶ parse
 *                                                                 ─▶ decide every record ─▶ committed ─▶ delete
 *
 * A message is deleted only after every record of its objects was decided
 * and committed. A crash between the two replays the object when the message
 * becomes visible again; decisions are idempotent by eventId, so nothing is
 * decided twice. An object that cannot be read because of its content
 * (corrupt gzip, not JSON, over cloudtrail.max_file_bytes) is poison: counted,
 * logged with its key, and its message left for the queue's redrive policy to
 * move to a dead-letter queue. A transient failure (throttling, a 503 after
 * the SDK's retries) leaves the message too. Either way the message comes
 * back after a backoff that grows with its receive count (1 s, 2 s, … capped
 * by the visibility timeout). While an object is read its message's visibility is
 * extended, so a slow object is not handed to a second reader.
 *
 * Backpressure: at most `concurrency` objects are read and decided at once,
 * and no message is received while every slot is taken.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_BACKOFF, classifyNetworkError, nextDelayMs } from '../../common/delivery/retry-policy.js';
import type { Logger } from '../../common/log/logger.js';
import { cloudTrailFailureEvent, failureLevel, failureMessage, type CloudTrailInputFailure } from '../failures/detector-failures.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import { isCloudTrailLogKey, parseQueueMessage, type S3ObjectRef } from './s3-notification.js';
import type { ReceivedMessage, TrailApi } from './trail-api.js';

/** What deciding a log file's records came to. */
export interface DecidedRecords {
  records: number;
  /** Records that are not CloudTrail API calls, or could not be processed. */
  rejected: number;
}

export interface SqsTrailOptions {
  queueUrl: string;
  maxMessages: number;
  waitSeconds: number;
  visibilitySeconds: number;
  concurrency: number;
  /** cloudtrail.max_file_bytes: an object larger than this, or inflating to more, is poison. */
  maxFileBytes: number;
  api: TrailApi;
  /** Decides every record of one log file and commits them; resolves when they are durable. */
  decide: (records: unknown[], ref: S3ObjectRef) => Promise<DecidedRecords>;
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
  random?: () => number;
}

/** Counting slots: acquire waits for a free one. */
class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly size: number) {}
  get free(): number {
    return this.size - this.used;
  }
  async acquire(): Promise<void> {
    if (this.used < this.size) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.used--;
  }
  /** Resolves when at least one slot is free (without taking it). */
  async whenFree(): Promise<void> {
    if (this.used < this.size) return;
    await this.acquire();
    this.release();
  }
}

export class SqsTrailSource {
  private readonly slots: Slots;
  private readonly abort = new AbortController();
  private readonly handling = new Set<Promise<void>>();
  private loop: Promise<void> | null = null;
  private stopped = false;
  private objectsInFlight = 0;

  constructor(private readonly o: SqsTrailOptions) {
    this.slots = new Slots(o.concurrency);
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops receiving and waits for the messages being handled to finish (their deletes included). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
    await Promise.allSettled([...this.handling]);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      await this.slots.whenFree();
      if (this.stopped) break;
      let messages: ReceivedMessage[];
      try {
        messages = await this.o.api.receive(
          this.o.queueUrl,
          {
            max: Math.max(1, Math.min(this.o.maxMessages, this.slots.free)),
            waitSeconds: this.o.waitSeconds,
            visibilitySeconds: this.o.visibilitySeconds,
          },
          this.abort.signal,
        );
        failures = 0;
      } catch (err) {
        if (this.stopped) break;
        failures++;
        this.o.metrics.sqsReceiveErrors.inc();
        const delay = nextDelayMs(DEFAULT_BACKOFF, failures, classifyNetworkError(err), this.o.random ?? Math.random);
        this.o.logger.warn(
          { event: 'cloudtrail_sqs_receive_failed', queue: this.o.queueUrl, err, retry_in_ms: delay },
          `cannot receive from cloudtrail.sqs.queue_url: ${(err as Error).message}`,
        );
        await sleep(delay, undefined, { signal: this.abort.signal }).catch(() => undefined);
        continue;
      }
      if (messages.length === 0) continue;
      const now = this.o.now();
      const oldest = Math.min(...messages.map((m) => m.sentMs ?? now));
      this.o.metrics.sqsOldestMessageAge.set(Math.max(0, (now - oldest) / 1000));
      for (const m of messages) {
        this.o.metrics.sqsMessages.inc({ outcome: 'received' });
        const p = this.handle(m).catch((err: unknown) =>
          this.o.logger.error({ event: 'cloudtrail_sqs_message_failed', message_id: m.id, err }, 'could not handle an SQS message'),
        );
        this.handling.add(p);
        void p.finally(() => this.handling.delete(p));
      }
      // Let the handlers take their slots before the next receive asks how many are free.
      await new Promise((r) => setImmediate(r));
    }
  }

  private async handle(m: ReceivedMessage): Promise<void> {
    const { metrics } = this.o;
    const parsed = parseQueueMessage(m.body);
    if (parsed.kind === 'test') {
      metrics.sqsMessages.inc({ outcome: 'test' });
      await this.delete(m);
      return;
    }
    if (parsed.kind === 'invalid') {
      this.failed({ kind: 'cloudtrail-message-invalid', reason: parsed.reason }, { message_id: m.id, receive_count: m.receiveCount });
      await this.retryLater(m, 'invalid');
      return;
    }
    const logs = parsed.objects.filter((ref) => isCloudTrailLogKey(ref.key));
    for (let i = logs.length; i < parsed.objects.length; i++) metrics.s3Objects.inc({ outcome: 'skipped' });
    const keepVisible = this.keepVisible(m);
    let ok: boolean[];
    try {
      ok = await Promise.all(logs.map((ref) => this.object(ref, m)));
    } finally {
      clearInterval(keepVisible);
    }
    if (ok.every(Boolean)) await this.delete(m);
    else await this.retryLater(m, 'failed');
  }

  /** Reads and decides one log file; true when its records are committed. */
  private async object(ref: S3ObjectRef, m: ReceivedMessage): Promise<boolean> {
    await this.slots.acquire();
    this.o.metrics.s3ObjectsInFlight.set(++this.objectsInFlight);
    try {
      const read = await this.o.api.readObject(ref, this.o.maxFileBytes);
      if (read.kind === 'failed') {
        this.o.metrics.s3Objects.inc({ outcome: read.poison ? 'poison' : 'failed' });
        this.failed(
          {
            kind: read.poison ? 'cloudtrail-object-poison' : 'cloudtrail-object-failed',
            bucket: ref.bucket,
            key: ref.key,
            reason: read.reason,
          },
          { message_id: m.id, receive_count: m.receiveCount },
        );
        return false;
      }
      this.o.metrics.s3Bytes.inc(read.bytes);
      const decided = await this.o.decide(read.records, ref);
      this.o.metrics.s3Objects.inc({ outcome: 'processed' });
      this.o.logger.info(
        { event: 'cloudtrail_object_processed', bucket: ref.bucket, key: ref.key, records: decided.records, rejected: decided.rejected },
        'CloudTrail object processed',
      );
      return true;
    } catch (err) {
      this.o.metrics.s3Objects.inc({ outcome: 'failed' });
      this.failed(
        { kind: 'cloudtrail-object-failed', bucket: ref.bucket, key: ref.key, reason: `processing failed: ${(err as Error).message}` },
        { message_id: m.id, receive_count: m.receiveCount, err },
      );
      return false;
    } finally {
      this.o.metrics.s3ObjectsInFlight.set(--this.objectsInFlight);
      this.slots.release();
    }
  }

  /** Logs a failure of an object or a message, as the detector's failure table says (level, event, message). */
  private failed(f: CloudTrailInputFailure, context: Record<string, unknown>): void {
    const { kind: _kind, ...fields } = f;
    this.o.logger[failureLevel(f)]({ event: cloudTrailFailureEvent(f), ...fields, ...context }, failureMessage(f));
  }

  /** Extends the message's visibility at half its timeout until cleared: a slow object stays ours. */
  private keepVisible(m: ReceivedMessage): NodeJS.Timeout {
    const t = setInterval(
      () =>
        void this.o.api
          .extendVisibility(this.o.queueUrl, m.receiptHandle, this.o.visibilitySeconds)
          .catch((err: unknown) =>
            this.o.logger.warn(
              { event: 'cloudtrail_sqs_visibility_failed', message_id: m.id, err },
              'could not extend an SQS message’s visibility',
            ),
          ),
      (this.o.visibilitySeconds * 1000) / 2,
    );
    t.unref();
    return t;
  }

  /**
   * Not deleted: the message comes back after a backoff that grows with its receive count (capped
   * by the visibility timeout), so a transient failure is retried soon and a poison object reaches
   * the redrive policy's maxReceiveCount without waiting a full timeout each time.
   */
  private async retryLater(m: ReceivedMessage, outcome: 'invalid' | 'failed'): Promise<void> {
    this.o.metrics.sqsMessages.inc({ outcome });
    const delayMs = nextDelayMs(DEFAULT_BACKOFF, m.receiveCount, { kind: 'retryable', reason: 'object' }, this.o.random ?? Math.random);
    const seconds = Math.min(this.o.visibilitySeconds, Math.max(1, Math.round(delayMs / 1000)));
    await this.o.api
      .extendVisibility(this.o.queueUrl, m.receiptHandle, seconds)
      .catch((err: unknown) =>
        this.o.logger.warn(
          { event: 'cloudtrail_sqs_visibility_failed', message_id: m.id, err },
          'could not set an SQS message’s retry delay',
        ),
      );
  }

  private async delete(m: ReceivedMessage): Promise<void> {
    try {
      await this.o.api.delete(this.o.queueUrl, m.receiptHandle);
      this.o.metrics.sqsMessages.inc({ outcome: 'deleted' });
    } catch (err) {
      // Its records are committed: when it comes back, they are recognised and not decided again.
      this.o.metrics.sqsMessages.inc({ outcome: 'failed' });
      this.o.logger.warn(
        { event: 'cloudtrail_sqs_delete_failed', message_id: m.id, err },
        `could not delete an SQS message: ${(err as Error).message}`,
      );
    }
  }
}

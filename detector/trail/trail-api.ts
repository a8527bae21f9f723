/**
 * The S3 and SQS calls that read a trail's bucket, over the AWS SDK.
 * Credentials come from the SDK's default chain (instance role, environment,
 * profile), through STS AssumeRole when a role is given (another account's
 * bucket or queue); endpoints from the SDK's own settings, so
 * AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_S3 point it elsewhere (VPC
 * endpoints, tests).
 */
import type { Readable } from 'node:stream';
import { ChangeMessageVisibilityCommand, DeleteMessageCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { BoundedReadError, readStreamBounded } from '../../common/io/bounded-read.js';
import { parseCloudTrailFile } from '../cloudtrail/parse.js';
import type { S3ObjectRef } from './s3-notification.js';

export interface TrailApiOptions {
  region: string;
  /** Assumed for every call when set (the role's session name says who reads). */
  roleArn: string | null;
  /** SDK attempts per call (the SDK's standard retry: throttling, 5xx, network errors). */
  maxAttempts?: number;
  /** Endpoint overrides; by default the SDK's own (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_S3, or AWS's). */
  endpoints?: { sqs?: string; s3?: string };
}

export interface ReceivedMessage {
  id: string;
  receiptHandle: string;
  body: string;
  /** When SQS received it (SentTimestamp), or null. */
  sentMs: number | null;
  /** How many times it was received, this one included. */
  receiveCount: number;
}

/** An object read: its records, or why it cannot be (`poison`: the content is bad, reading again will not help). */
export type ObjectRead = { kind: 'records'; records: unknown[]; bytes: number } | { kind: 'failed'; poison: boolean; reason: string };

export interface TrailApi {
  receive(
    queueUrl: string,
    o: { max: number; waitSeconds: number; visibilitySeconds: number },
    signal: AbortSignal,
  ): Promise<ReceivedMessage[]>;
  delete(queueUrl: string, receiptHandle: string): Promise<void>;
  extendVisibility(queueUrl: string, receiptHandle: string, seconds: number): Promise<void>;
  /** One log file: fetched, gunzipped within `maxBytes`, parsed. Never rejects. */
  readObject(ref: S3ObjectRef, maxBytes: number): Promise<ObjectRead>;
  /** One page of keys (and, with a delimiter, the folders) under a prefix. */
  list(
    bucket: string,
    prefix: string,
    delimiter: string | null,
    token: string | null,
  ): Promise<{ keys: { key: string; size: number }[]; folders: string[]; next: string | null }>;
  close(): void;
}

export function sdkTrailApi(o: TrailApiOptions): TrailApi {
  const credentials = o.roleArn
    ? fromTemporaryCredentials({
        params: { RoleArn: o.roleArn, RoleSessionName: 'egress-witness-detector' },
        clientConfig: { region: o.region },
      })
    : undefined;
  const common = { region: o.region, maxAttempts: o.maxAttempts ?? 5, ...(credentials ? { credentials } : {}) };
  const sqs = new SQSClient({ ...common, ...(o.endpoints?.sqs ? { endpoint: o.endpoints.sqs } : {}) });
  // A trail's bucket may live in another region than the queue: follow S3's redirect.
  const s3 = new S3Client({ ...common, followRegionRedirects: true, ...(o.endpoints?.s3 ? { endpoint: o.endpoints.s3 } : {}) });
  return {
    async receive(queueUrl, r, signal) {
      const out = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: r.max,
          WaitTimeSeconds: r.waitSeconds,
          VisibilityTimeout: r.visibilitySeconds,
          MessageSystemAttributeNames: ['SentTimestamp', 'ApproximateReceiveCount'],
        }),
        { abortSignal: signal },
      );
      return (out.Messages ?? []).flatMap((m: Message) =>
        m.ReceiptHandle && m.MessageId
          ? [
              {
                id: m.MessageId,
                receiptHandle: m.ReceiptHandle,
                body: m.Body ?? '',
                sentMs: numberAttribute(m.Attributes?.SentTimestamp),
                receiveCount: numberAttribute(m.Attributes?.ApproximateReceiveCount) ?? 1,
              },
            ]
          : [],
      );
    },
    async delete(queueUrl, receiptHandle) {
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: receiptHandle }));
    },
    async extendVisibility(queueUrl, receiptHandle, seconds) {
      await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: receiptHandle, VisibilityTimeout: seconds }));
    },
    async readObject(ref, maxBytes) {
      let body: Readable;
      try {
        const got = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
        if ((got.ContentLength ?? 0) > maxBytes) {
          (got.Body as Readable | undefined)?.destroy();
          return { kind: 'failed', poison: true, reason: `larger than cloudtrail.max_file_bytes (${got.ContentLength} bytes)` };
        }
        body = got.Body as Readable;
      } catch (err) {
        const e = err as { name?: string; message?: string };
        // Gone (a lifecycle rule, a deleted test file) or forbidden: reading again will not help until someone acts.
        const poison = e.name === 'NoSuchKey' || e.name === 'NoSuchBucket';
        return { kind: 'failed', poison, reason: `GetObject: ${e.name ?? 'Error'}: ${e.message ?? String(err)}` };
      }
      let bytes: Buffer;
      try {
        bytes = await readStreamBounded(body, maxBytes);
      } catch (err) {
        if (err instanceof BoundedReadError) return { kind: 'failed', poison: true, reason: err.message };
        return { kind: 'failed', poison: false, reason: `reading the object: ${(err as Error).message}` };
      }
      const parsed = parseCloudTrailFile(bytes.toString('utf8'));
      return 'error' in parsed
        ? { kind: 'failed', poison: true, reason: parsed.error }
        : { kind: 'records', records: parsed.records, bytes: bytes.length };
    },
    async list(bucket, prefix, delimiter, token) {
      const out = await s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(delimiter ? { Delimiter: delimiter } : {}),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      return {
        keys: (out.Contents ?? []).flatMap((c) => (c.Key ? [{ key: c.Key, size: c.Size ?? 0 }] : [])),
        folders: (out.CommonPrefixes ?? []).flatMap((p) => (p.Prefix ? [p.Prefix] : [])),
        next: out.IsTruncated ? (out.NextContinuationToken ?? null) : null,
      };
    },
    close() {
      sqs.destroy();
      s3.destroy();
    },
  };
}

function numberAttribute(text: string | undefined): number | null {
  const n = Number(text);
  return text !== undefined && Number.isFinite(n) ? n : null;
}

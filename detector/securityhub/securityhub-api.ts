/**
 * The one Security Hub call the detector makes, BatchImportFindings, over the
 * AWS SDK. Credentials come from the SDK's default provider chain; the
 * endpoint can be overridden. The SDK does not retry (maxAttempts 1): the
 * outbox owns retries, so every attempt is counted and survives a restart.
 * Never throws: a call that got no usable answer comes back as a CallFailure.
 */
import https from 'node:https';
import tls from 'node:tls';
import { BatchImportFindingsCommand, SecurityHubClient, type AwsSecurityFinding } from '@aws-sdk/client-securityhub';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { readImportAnswer, type CallFailure, type FailedFinding } from './import-outcome.js';

export type ImportAnswer = { kind: 'answered'; failed: FailedFinding[] } | { kind: 'failed'; failure: CallFailure };

export interface SecurityHubApi {
  /** At most 100 findings (BatchImportFindings' limit). */
  importFindings(findings: readonly AwsSecurityFinding[], signal: AbortSignal): Promise<ImportAnswer>;
  close(): void;
}

export interface SecurityHubApiOptions {
  region: string;
  endpoint: string | null;
  extraCa: string | null;
}

export function sdkSecurityHubApi(opts: SecurityHubApiOptions): SecurityHubApi {
  const agent = new https.Agent({ keepAlive: true, ...(opts.extraCa ? { ca: [...tls.rootCertificates, opts.extraCa] } : {}) });
  const client = new SecurityHubClient({
    region: opts.region,
    maxAttempts: 1,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    requestHandler: new NodeHttpHandler({ httpsAgent: agent, connectionTimeout: 10_000, requestTimeout: 30_000 }),
  });
  return {
    async importFindings(findings, signal) {
      try {
        const out = await client.send(new BatchImportFindingsCommand({ Findings: [...findings] }), { abortSignal: signal });
        const read = readImportAnswer(
          out,
          findings.map((f) => f.Id ?? ''),
        );
        if (!read.ok)
          return {
            kind: 'failed',
            failure: {
              name: 'InvalidAnswer',
              status: out.$metadata.httpStatusCode ?? null,
              code: null,
              retryAfter: null,
              unreadable: true,
              message: read.reason,
            },
          };
        return { kind: 'answered', failed: read.failed };
      } catch (err) {
        return { kind: 'failed', failure: callFailure(err) };
      }
    },
    close() {
      client.destroy();
      agent.destroy();
    },
  };
}

/** Reads an SDK error: the service's error type and status, the socket's code, Retry-After, and whether the answer was unreadable. */
export function callFailure(err: unknown): CallFailure {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: number };
    $response?: { statusCode?: number; headers?: Record<string, string | undefined> };
    $responseBodyText?: unknown;
    cause?: unknown;
  };
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode ?? null;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const code = networkCode(err);
  const unreadable = e.$responseBodyText !== undefined || name === 'SyntaxError' || (status !== null && status >= 200 && status < 300);
  return {
    name,
    status,
    code: status === null ? code : null,
    retryAfter: e.$response?.headers?.['retry-after'] ?? null,
    unreadable,
    message: typeof e.message === 'string' ? e.message.slice(0, 300) : String(err).slice(0, 300),
  };
}

function networkCode(err: unknown): string | null {
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code)) return code;
  }
  return null;
}

/**
 * The requests the load generator sends, built once as Buffers: an STS
 * GetCallerIdentity that looks SigV4-signed (the inspecting proxies attribute
 * it: key, action from the form body), and a bulk download.
 */
import { createHash } from 'node:crypto';

export const STS_HOST = 'sts.us-east-1.amazonaws.com';
/** The name whose tunnels go to the fake server's "hold" port (accept and keep idle). */
export const HOLD_HOST = 'sts.eu-west-1.amazonaws.com';
/** The name plain-HTTP (absolute-form) requests ask for; each proxy maps it to the fake server's plain port. */
export const PLAIN_HOST = 'sts.us-west-2.amazonaws.com';
export const SMALL_BYTES = 1024;

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** A well-formed temporary access key id (ASIA + 16 base32 characters), distinct per `n`. */
export function accessKeyId(n: number): string {
  let s = '';
  let v = n;
  for (let i = 0; i < 16; i++) {
    s = BASE32[v % 32] + s;
    v = Math.floor(v / 32);
  }
  return `ASIA${s.replace(/^A/, 'Q')}`;
}

function hex(seed: string, bytes: number): string {
  let out = '';
  for (let i = 0; out.length < bytes * 2; i++) out += createHash('sha256').update(`${seed}:${i}`).digest('hex');
  return out.slice(0, bytes * 2);
}

/** `Action=GetCallerIdentity&Version=2011-06-15` padded to exactly `bytes` with a harmless parameter. */
export function stsForm(bytes = SMALL_BYTES): Buffer {
  const base = 'Action=GetCallerIdentity&Version=2011-06-15&Padding=';
  return Buffer.from(base + 'x'.repeat(Math.max(0, bytes - base.length)));
}

export interface StsRequestOptions {
  host?: string;
  keyIndex?: number;
  close?: boolean;
  /** The request-target: `/` (default), or an absolute URL for a plain-HTTP proxy. */
  target?: string;
}

/** POST / with SigV4-looking headers (Authorization, x-amz-date, x-amz-security-token) and a 1 KiB form body. */
export function stsRequest(opts: StsRequestOptions = {}): Buffer {
  const host = opts.host ?? STS_HOST;
  const key = accessKeyId(opts.keyIndex ?? 1);
  const body = stsForm();
  const token = Buffer.from(hex(`token:${key}`, 300), 'hex').toString('base64');
  const head = [
    `POST ${opts.target ?? '/'} HTTP/1.1`,
    `Host: ${host}`,
    'User-Agent: egress-witness-bench/1 aws-sdk-js/3 api/sts',
    'Content-Type: application/x-www-form-urlencoded; charset=utf-8',
    `Content-Length: ${body.length}`,
    'X-Amz-Date: 20261125T120000Z',
    `X-Amz-Security-Token: ${token}`,
    `Authorization: AWS4-HMAC-SHA256 Credential=${key}/20261125/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=${hex(`sig:${key}`, 32)}`,
    ...(opts.close ? ['Connection: close'] : []),
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head), body]);
}

/** GET /bulk?bytes=N (signed-looking, like an S3 GetObject). */
export function bulkRequest(bytes: number, host = STS_HOST): Buffer {
  const key = accessKeyId(7);
  return Buffer.from(
    [
      `GET /bulk?bytes=${bytes} HTTP/1.1`,
      `Host: ${host}`,
      'User-Agent: egress-witness-bench/1',
      'X-Amz-Date: 20261125T120000Z',
      'X-Amz-Content-Sha256: UNSIGNED-PAYLOAD',
      `Authorization: AWS4-HMAC-SHA256 Credential=${key}/20261125/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${hex('bulk', 32)}`,
      '',
      '',
    ].join('\r\n'),
  );
}

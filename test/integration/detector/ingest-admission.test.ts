/**
 * The ingest listener spends nothing on a request before the checks that
 * need no body (route, gateway, signature header, bearer token), holds slots
 * per gateway and for the event routes, gives every body a deadline, and
 * answers refusals so that real clients see them: a client that reads only
 * after sending gets the 413 / 401 / 503, not EPIPE.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeat, observation } from '../../unit/detector/scenario.js';
import { sendThenRead, tricklePost } from '../../helpers/raw.js';
import {
  cloudTrailEventBridge,
  cloudTrailRecord,
  EXTERNAL_IP,
  newAccessKeyId,
  sleep,
  startDetector,
  writeSecretFile,
  type DetectorHarness,
} from '../../helpers/detector.js';
import { signatureHeader } from '../../../protocol/signature.js';

const TOKEN = 'admission-test-token-4f2a9c1e7b';
const AUTH = { authorization: `Bearer ${TOKEN}` };

let h: DetectorHarness;

beforeAll(async () => {
  h = await startDetector({
    config: async (dir) => {
      await writeSecretFile(join(dir, 'token'), TOKEN);
      return { ingest: { token_file: join(dir, 'token'), max_body_bytes: '64KiB', body_timeout: '2s' }, correlation: { grace: '0s' } };
    },
  });
});

afterAll(async () => {
  await h?.cleanup();
});

function telemetryHead(gateway: string, extra = '', contentLength = 60_000): string {
  return `POST /v1/telemetry HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${contentLength}\r\nX-Egress-Witness-Gateway: ${gateway}\r\n${extra}\r\n`;
}

/** A signature header of the right shape and a fresh timestamp, but made without the gateway's key. */
function forgedSignature(): string {
  return `X-Egress-Witness-Signature: ${signatureHeader(randomBytes(32), Math.floor(Date.now() / 1000), Buffer.from('x'))}\r\n`;
}

async function validBatch(gateway: string): Promise<number> {
  return (
    await h.signedPost(
      h.batch(gateway, [heartbeat(gateway, Date.now()), observation({ accessKeyId: newAccessKeyId(), at: Date.now() - 2_000 })]),
    )
  ).status;
}

describe('authentication before resources', () => {
  it('trickling connections (unknown gateway, no token, forged signature for one gateway) stop no other gateway, not the event routes, and not the gateway itself from another address', async () => {
    const port = h.ports.ingest;
    const nobody = Array.from({ length: 40 }, () => tricklePost(port, telemetryHead('nobody'), 200));
    const noToken = Array.from({ length: 4 }, () =>
      tricklePost(
        port,
        `POST /v1/cloudtrail HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n`,
        200,
      ),
    );
    // These pass the cheap checks (gw1 is configured, the header is well formed) and so hold slots until their deadline:
    // those of gw1 at their own address. Four from another address than the agent's, four from the agent's.
    const forged = Array.from({ length: 4 }, () => tricklePost(port, telemetryHead('gw1', forgedSignature(), 60_000), 200, '127.0.0.2'));
    const all = [...nobody, ...noToken, ...forged];
    try {
      await sleep(300);
      const statusesWhileHeld: number[] = [];
      for (let i = 0; i < 3; i++) {
        statusesWhileHeld.push(await validBatch('gw4'), await validBatch('gw3'));
        const r = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: Date.now() - 30_000 });
        statusesWhileHeld.push((await h.postJson('/v1/cloudtrail', cloudTrailEventBridge(r), AUTH)).status);
      }
      expect(statusesWhileHeld).toEqual(Array(9).fill(200));
      // gw1's agent, at its own address, still has its slots.
      expect(await validBatch('gw1')).toBe(200);
      // Forged requests from the agent's own address take that address's slots: 503 with Retry-After, never a hang.
      const sameAddress = Array.from({ length: 4 }, () => tricklePost(port, telemetryHead('gw1', forgedSignature(), 60_000), 200));
      all.push(...sameAddress);
      await sleep(300);
      const busy = await h.signedPost(h.batch('gw1', [heartbeat('gw1', Date.now())]));
      expect(busy.status, busy.text).toBe(503);
      expect(busy.headers['retry-after']).toBe('1');
      expect(busy.json.error).toMatch(/overloaded \(gateway gw1 from 127\.0\.0\.1\)/);

      // Every trickler is answered within the body deadline (2 s): 401 for those refused up front, 408 for the slot holders.
      const answers = await Promise.all(all.map((t) => t.answered));
      expect(answers.slice(0, 40)).toEqual(Array(40).fill(401));
      expect(answers.slice(40, 44)).toEqual(Array(4).fill(401));
      expect(answers.slice(44)).toEqual(Array(8).fill(408));
      expect(await validBatch('gw1')).toBe(200);
    } finally {
      for (const t of all) t.stop();
    }
    expect(await h.metric('egress_witness_detector_ingest_responses_total', { route: 'telemetry', status: '408' })).toBe(8);
  });
});

describe('refusals that real clients see', () => {
  it('a client that reads only after sending sees 413 for an oversized body, declared or streamed, not EPIPE', async () => {
    const port = h.ports.ingest;
    const size = 16 * 1024 * 1024;
    const declared = await sendThenRead(port, telemetryHead('gw1', forgedSignature(), size), size);
    expect(declared.error).toBeNull();
    expect(declared.response?.status).toBe(413);
    expect(declared.response?.text).toMatch(/ingest\.max_body_bytes/);
    const events = await sendThenRead(
      port,
      `POST /v1/cloudtrail HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`,
      size,
    );
    expect(events).toMatchObject({ error: null, response: { status: 413 } });
    const streamed = await sendThenRead(
      port,
      `POST /v1/telemetry HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nX-Egress-Witness-Gateway: gw1\r\n${forgedSignature()}\r\n`,
      size,
      { chunked: true },
    );
    expect(streamed).toMatchObject({ error: null, response: { status: 413 } });
  });

  it('the same client sees 401 (unknown gateway, wrong token) and 503 (gateway busy) with the body it sent', async () => {
    const port = h.ports.ingest;
    const unknown = await sendThenRead(port, telemetryHead('nobody', '', 60_000), 60_000);
    expect(unknown).toMatchObject({ error: null, response: { status: 401 } });
    const noToken = await sendThenRead(
      port,
      `POST /v1/guardduty HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong\r\nContent-Length: 60000\r\n\r\n`,
      60_000,
    );
    expect(noToken).toMatchObject({ error: null, response: { status: 401 } });
    expect(noToken.response?.headers.connection).toBe('close');
    const holders = Array.from({ length: 4 }, () => tricklePost(port, telemetryHead('gw4', forgedSignature(), 60_000), 200));
    try {
      await sleep(200);
      const busy = await sendThenRead(port, telemetryHead('gw4', forgedSignature(), 60_000), 60_000);
      expect(busy).toMatchObject({ error: null, response: { status: 503, headers: { 'retry-after': '1' } } });
    } finally {
      for (const t of holders) t.stop();
    }
  });

  it('undici and fetch see 413 for a body over the limit, and 200 for the next one', async () => {
    const body = gzipSync(randomBytes(200 * 1024));
    const headers = {
      'x-egress-witness-gateway': 'gw1',
      'content-encoding': 'gzip',
      'x-egress-witness-signature': signatureHeader(h.secrets.get('gw1')!, Math.floor(Date.now() / 1000), body),
    };
    const u = await request(h.url('/v1/telemetry'), { method: 'POST', body, headers });
    expect(u.statusCode).toBe(413);
    await u.body.dump();
    const f = await fetch(h.url('/v1/telemetry'), { method: 'POST', body, headers });
    expect(f.status).toBe(413);
    await f.arrayBuffer();
    expect(await validBatch('gw1')).toBe(200);
  });
});

/**
 * The original-destination reader on loopback (no redirect, so no root): it
 * loads the built addon, tells a direct connection from a redirected one, and
 * degrades to 'unavailable' with a reason when the addon is missing or broken.
 * Redirected connections are read in test/e2e/transparent-netns.test.ts.
 */
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOriginalDestinationReader } from '../../../agent/transparent/original-destination.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'egress-witness-odst-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** One accepted server-side socket for a loopback connection to `host`. */
async function accepted(host: string): Promise<{ socket: Socket; close: () => Promise<void> }> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, host);
  const [socket] = (await once(server, 'connection')) as [Socket];
  return {
    socket,
    close: async () => {
      client.destroy();
      socket.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('original destination reader', () => {
  const reader = loadOriginalDestinationReader();

  it('loads the addon built at install time', () => {
    expect({ available: reader.available, reason: reader.unavailableReason }).toEqual({ available: true, reason: null });
  });

  it.each(['127.0.0.1', '::1'])('reads a direct connection on %s as not redirected', async (host) => {
    const c = await accepted(host);
    try {
      expect(reader.read(c.socket)).toEqual({ kind: 'not-redirected' });
    } finally {
      await c.close();
    }
  });

  it('answers an error, not a crash, for a socket without a descriptor', async () => {
    const c = await accepted('127.0.0.1');
    await c.close();
    expect(reader.read(c.socket)).toEqual({ kind: 'error', code: 'EBADF' });
  });

  it('is unavailable, with the reason, when the addon is missing', async () => {
    const missing = loadOriginalDestinationReader(null);
    expect(missing.available).toBe(false);
    expect(missing.unavailableReason).toMatch(/the native addon is not built .*run: npm run build:native/);
    const c = await accepted('127.0.0.1');
    try {
      expect(missing.read(c.socket)).toEqual({ kind: 'unavailable' });
    } finally {
      await c.close();
    }
  });

  it('is unavailable, with the reason, when the addon does not load', async () => {
    const broken = join(tmp, 'broken.node');
    await writeFile(broken, 'not a shared object');
    const r = loadOriginalDestinationReader(broken);
    expect(r.available).toBe(false);
    expect(r.unavailableReason).toMatch(/^the native addon .*broken\.node did not load: /);
  });
});

/**
 * Event routes reachable from other hosts need a token, or an explicit
 * ingest.allow_unauthenticated: true that the detector warns about at every
 * start and on every reload; a reload cannot drop the token while the
 * running listener stays reachable. (check-config's refusal of the open
 * combination is tested with the schema and the CLI.)
 *
 * These detectors bind 0.0.0.0 on a free port for a moment — the only way to
 * have a listener that is not loopback — and every request goes to 127.0.0.1.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { heartbeat } from '../../unit/detector/scenario.js';
import {
  cloudTrailEventBridge,
  cloudTrailRecord,
  deepMerge,
  startDetector,
  validDetectorConfig,
  waitFor,
  writeSecretFile,
  type DetectorHarness,
  type JsonDoc,
} from '../../helpers/detector.js';

const TOKEN = 'secure-defaults-token-5b1f0e3c9a7d';

let h: DetectorHarness | undefined;

afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

function rawConfig(d: DetectorHarness): JsonDoc {
  return JSON.parse(readFileSync(d.configPath, 'utf8')) as JsonDoc;
}

describe('event routes reachable from other hosts', () => {
  it('allow_unauthenticated: true is warned about at every start and on reload, and the routes take events without a token', async () => {
    h = await startDetector({ config: { listen: '0.0.0.0:0', ingest: { allow_unauthenticated: true } } });
    const d = h;
    await waitFor(() => d.logs.find('ingest_unauthenticated').length === 1, 'the start-up warning');
    expect(d.logs.find('ingest_unauthenticated')[0]).toMatchObject({ level: 'warn', listen: '0.0.0.0:0' });
    const a = await d.postJson('/v1/cloudtrail', cloudTrailEventBridge(cloudTrailRecord({ time: Date.now() - 60_000 })));
    expect(a.status, a.text).toBe(200);
    expect((await d.signedPost(d.batch('gw1', [heartbeat('gw1', Date.now())]))).status).toBe(200);

    expect(await d.app.reload({ ok: true, value: validDetectorConfig(rawConfig(d)) })).toBe(true);
    await waitFor(() => d.logs.find('ingest_unauthenticated').length === 2, 'the warning again on reload');
    await d.restart();
    await waitFor(() => d.logs.find('ingest_unauthenticated').length === 1, 'the warning at the next start (fresh log)');
  });

  it('with a token there is no warning, the routes need the token, and a reload cannot drop it while the listener is reachable', async () => {
    h = await startDetector({
      config: async (dir) => {
        await writeSecretFile(join(dir, 'token'), TOKEN);
        return { listen: '0.0.0.0:0', ingest: { token_file: join(dir, 'token') } };
      },
    });
    const d = h;
    const event = () => cloudTrailEventBridge(cloudTrailRecord({ time: Date.now() - 60_000 }));
    expect((await d.postJson('/v1/cloudtrail', event())).status).toBe(401);
    expect((await d.postJson('/v1/cloudtrail', event(), { authorization: `Bearer ${TOKEN}` })).status).toBe(200);

    // The new file listens on loopback without a token: valid on its own, but the running
    // listener (a restart key) stays on 0.0.0.0 until a restart.
    const loopbackNoToken = deepMerge(rawConfig(d), { listen: '127.0.0.1:0', ingest: { token_file: null } });
    expect(await d.app.reload({ ok: true, value: validDetectorConfig(loopbackNoToken) })).toBe(false);
    await waitFor(() => d.logs.find('reload_failed').length === 1, 'the refused reload');
    expect(JSON.stringify(d.logs.find('reload_failed')[0])).toContain(
      'ingest.token_file: the running listener 0.0.0.0:0 is reachable from other hosts',
    );
    expect(await d.metric('egress_witness_config_last_reload_successful')).toBe(0);
    expect((await d.postJson('/v1/cloudtrail', event())).status).toBe(401);
    expect((await d.postJson('/v1/cloudtrail', event(), { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect(d.logs.find('ingest_unauthenticated')).toEqual([]);
  });

  it('on loopback, without a token, nothing to warn about', async () => {
    h = await startDetector();
    const d = h;
    await waitFor(() => d.logs.find('started').length === 1, 'the start line');
    expect(d.config.listen.host).toBe('127.0.0.1');
    expect(d.logs.find('ingest_unauthenticated')).toEqual([]);
    expect((await d.postJson('/v1/cloudtrail', cloudTrailEventBridge(cloudTrailRecord({ time: Date.now() - 60_000 })))).status).toBe(200);
  });
});

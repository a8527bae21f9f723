/**
 * Compressed and oversized inputs cost their budget, not their claimed size:
 * a .json.gz in the watch directory that inflates to a gigabyte is inflated
 * as a stream and stopped at cloudtrail.max_file_bytes, a huge plain file is
 * refused on its size before a byte is read, both are marked failed with the
 * reason, the files after them are read, and the daemon keeps answering
 * telemetry meanwhile — with its peak memory nowhere near the bomb's size.
 */
import { mkdir, open, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeat } from '../../unit/detector/scenario.js';
import { cloudTrailRecord, EXTERNAL_IP, newAccessKeyId, startDetector, waitFor, type DetectorHarness } from '../../helpers/detector.js';

const MiB = 1024 * 1024;
const BUDGET = 8 * MiB;

let h: DetectorHarness;
let watchDir: string;

beforeAll(async () => {
  h = await startDetector({
    config: (dir) => ({
      cloudtrail: { watch_dir: join(dir, 'cloudtrail'), poll_interval: '150ms', max_file_bytes: '8MiB' },
      correlation: { grace: '0s' },
    }),
  });
  watchDir = h.config.cloudtrail.watch_dir!;
  await mkdir(watchDir, { recursive: true });
});

afterAll(async () => {
  await h?.cleanup();
});

async function settle(path: string): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

function failedWith(path: string) {
  return h.logs.find('cloudtrail_file_failed').find((l) => l.path === path);
}

async function decisionFor(eventId: string) {
  return (await h.app.db.listDecisions({ sinceMs: 0, disposition: null, limit: 10_000 })).find((d) => d.subjectId === eventId) ?? null;
}

describe('watch directory: bombs and giants', () => {
  it('a .json.gz inflating to 1 GiB and a 1.5 GiB plain file are refused within the budget; the next file is read and telemetry is served meanwhile', async () => {
    // 16 gzip members of 64 MiB of zeros: about 1 MiB on disk, 1 GiB inflated.
    const member = gzipSync(Buffer.alloc(64 * MiB));
    const bomb = join(watchDir, 'a-bomb.json.gz');
    await writeFile(bomb, Buffer.concat(Array.from({ length: 16 }, () => member)));
    // A sparse file: 1.5 GiB by its size, nothing on disk.
    const giant = join(watchDir, 'b-giant.json');
    const fh = await open(giant, 'w');
    await fh.truncate(1.5 * 1024 * MiB);
    await fh.close();
    const record = cloudTrailRecord({ key: newAccessKeyId(), sourceIp: EXTERNAL_IP, time: Date.now() - 60_000 });
    const after = join(watchDir, 'c-after.json.gz');
    await writeFile(after, gzipSync(JSON.stringify({ Records: [record] })));
    const failedBefore = await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'failed' });
    const peakBefore = process.resourceUsage().maxRSS;

    await Promise.all([settle(bomb), settle(giant), settle(after)]);
    // Telemetry while the scan reads them: every batch is stored.
    for (let i = 0; i < 5; i++) {
      const a = await h.signedPost(h.batch('gw1', [heartbeat('gw1', Date.now())]));
      expect(a.status, a.text).toBe(200);
    }
    // The three files may settle in different scans: wait for all three outcomes, not only the last file's.
    await waitFor(
      () =>
        failedWith(bomb) !== undefined &&
        failedWith(giant) !== undefined &&
        h.logs.find('cloudtrail_file_processed').some((l) => l.path === after),
      'both refusals logged and the file after them processed',
    );

    expect(failedWith(bomb)).toMatchObject({ reason: `decompresses to more than ${BUDGET} bytes` });
    expect(failedWith(giant)).toMatchObject({ reason: `larger than ${BUDGET} bytes` });
    expect(await h.metric('egress_witness_detector_cloudtrail_files_total', { outcome: 'failed' })).toBe(failedBefore + 2);
    expect(await decisionFor(record.eventID)).toMatchObject({ disposition: 'finding', rule: 'external' });
    // Peak resident memory (KiB) grew by far less than either file claims.
    expect(process.resourceUsage().maxRSS - peakBefore).toBeLessThan(256 * 1024);
    const a = await h.signedPost(h.batch('gw1', [heartbeat('gw1', Date.now())]));
    expect(a.status, a.text).toBe(200);
  });

  it('refusals are final: neither file is read again on later scans', async () => {
    const marker = join(watchDir, 'd-marker.json');
    await writeFile(marker, JSON.stringify({ Records: [] }));
    await settle(marker);
    await waitFor(() => h.logs.find('cloudtrail_file_processed').some((l) => l.path === marker), 'a later scan');
    expect(h.logs.find('cloudtrail_file_failed')).toHaveLength(2);
  });
});

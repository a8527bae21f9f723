/**
 * The store's outbox, on a real SQLite file: what is queued survives a
 * reopen, an item queued again while undelivered is one row with a new
 * version, and an ack or a retry of an older version leaves the newer one due.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../../detector/store/sqlite-store.js';

let dir: string;
let path: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ew-outbox-'));
  path = join(dir, 'detector.db');
  store = new SqliteStore(path);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const SINK = 'securityhub';

describe('outbox', () => {
  it('queues per sink, due in order, and survives a reopen', async () => {
    await store.enqueueDelivery(SINK, 'f1', 1_000);
    await store.enqueueDelivery(SINK, 'f2', 2_000);
    await store.enqueueDelivery('other', 'f1', 1_000);
    expect((await store.dueDeliveries(SINK, 1_500, 10)).map((d) => d.itemId)).toEqual(['f1']);
    await store.close();
    store = new SqliteStore(path);
    expect(await store.dueDeliveries(SINK, 5_000, 10)).toEqual([
      { itemId: 'f1', version: 1, attempts: 0, enqueuedMs: 1_000 },
      { itemId: 'f2', version: 1, attempts: 0, enqueuedMs: 2_000 },
    ]);
    expect(await store.dueDeliveries(SINK, 5_000, 1)).toHaveLength(1);
    expect(await store.deliveryBacklog(SINK)).toEqual({ pending: 2, failed: 0, oldestPendingMs: 1_000 });
    expect(await store.nextDeliveryMs(SINK)).toBe(1_000);
  });

  it('an update while undelivered is the same row, a new version, due at once, and as old as the first change', async () => {
    await store.enqueueDelivery(SINK, 'f1', 1_000);
    const [v1] = await store.dueDeliveries(SINK, 1_000, 10);
    await store.retryDelivery(SINK, 'f1', v1!.version, 1, 60_000, 'ECONNREFUSED');
    expect(await store.dueDeliveries(SINK, 2_000, 10)).toEqual([]);
    await store.enqueueDelivery(SINK, 'f1', 3_000);
    expect(await store.dueDeliveries(SINK, 3_000, 10)).toEqual([{ itemId: 'f1', version: 2, attempts: 1, enqueuedMs: 1_000 }]);
  });

  it('an ack of an older version keeps the newer one; an ack of the current one removes the row', async () => {
    await store.enqueueDelivery(SINK, 'f1', 1_000);
    await store.enqueueDelivery(SINK, 'f1', 2_000);
    await store.ackDelivery(SINK, 'f1', 1);
    expect(await store.dueDeliveries(SINK, 2_000, 10)).toEqual([{ itemId: 'f1', version: 2, attempts: 0, enqueuedMs: 1_000 }]);
    await store.ackDelivery(SINK, 'f1', 2);
    expect(await store.dueDeliveries(SINK, 9_000, 10)).toEqual([]);
    expect(await store.deliveryBacklog(SINK)).toEqual({ pending: 0, failed: 0, oldestPendingMs: null });
    expect(await store.nextDeliveryMs(SINK)).toBeNull();
  });

  it('a retry of an older version does not delay the newer one', async () => {
    await store.enqueueDelivery(SINK, 'f1', 1_000);
    await store.enqueueDelivery(SINK, 'f1', 2_000);
    await store.retryDelivery(SINK, 'f1', 1, 1, 60_000, 'InternalFailure');
    expect((await store.dueDeliveries(SINK, 2_000, 10)).map((d) => d.version)).toEqual([2]);
  });

  it('a refused item is parked until it changes, then starts afresh', async () => {
    await store.enqueueDelivery(SINK, 'f1', 1_000);
    await store.failDelivery(SINK, 'f1', 1, 1, 'InvalidInput');
    expect(await store.dueDeliveries(SINK, 1e12, 10)).toEqual([]);
    expect(await store.deliveryBacklog(SINK)).toEqual({ pending: 0, failed: 1, oldestPendingMs: null });
    expect(await store.nextDeliveryMs(SINK)).toBeNull();
    await store.enqueueDelivery(SINK, 'f1', 5_000);
    expect(await store.dueDeliveries(SINK, 5_000, 10)).toEqual([{ itemId: 'f1', version: 2, attempts: 0, enqueuedMs: 5_000 }]);
  });
});

describe('finding occurrences', () => {
  it('keeps each event once, rechecks the least recently checked first, counts per finding, and prunes with the evidence', async () => {
    await store.addFindingOccurrence({ eventId: 'e1', findingId: 'F', eventTimeMs: 1_000, event: { eventId: 'e1' } }, 10);
    await store.addFindingOccurrence({ eventId: 'e2', findingId: 'F', eventTimeMs: 2_000, event: { eventId: 'e2' } }, 20);
    await store.addFindingOccurrence({ eventId: 'e2', findingId: 'F', eventTimeMs: 2_000, event: { eventId: 'again' } }, 30);
    expect((await store.occurrencesToRecheck(0, 10)).map((o) => o.event)).toEqual([{ eventId: 'e1' }, { eventId: 'e2' }]);
    await store.markOccurrenceChecked('e1', 40, false);
    expect((await store.occurrencesToRecheck(0, 10)).map((o) => o.eventId)).toEqual(['e2', 'e1']);
    expect((await store.occurrencesToRecheck(1_500, 10)).map((o) => o.eventId)).toEqual(['e2']);
    await store.markOccurrenceChecked('e2', 50, true);
    expect((await store.occurrencesToRecheck(0, 10)).map((o) => o.eventId)).toEqual(['e1']);
    expect(await store.occurrenceCounts('F')).toEqual({ stored: 2, unresolved: 1 });
    await store.prune(1_500);
    expect(await store.occurrenceCounts('F')).toEqual({ stored: 1, unresolved: 0 });
    expect(await store.occurrenceCounts('G')).toEqual({ stored: 0, unresolved: 0 });
  });
});

/**
 * The detector's instance inventory: which private addresses belonged to
 * which instance, and when (history.ts), kept in memory and rebuilt at every
 * start from its sources — the files of `inventory.files` (read again when
 * they change and on SIGHUP) and, with `inventory.ec2`, DescribeInstances in
 * every region of every account, every `refresh`. A source that cannot be
 * read keeps what it said last (counted, logged); a file that cannot be read
 * at start stops the start, naming it. Holdings that ended longer ago than
 * store.retention are dropped, like the evidence of that time.
 *
 *   files ─(start, change, SIGHUP)─┐
 *   EC2 (region × account, refresh) ┴▶ AddressHistory (immutable, replaced per read) ─▶ view() ─▶ correlation rules
 */
import { stat } from 'node:fs/promises';
import type { Logger } from '../../common/log/logger.js';
import type { InventoryView } from '../correlate/types.js';
import type { DetectorConfig } from '../config/schema.js';
import type { DetectorMetrics } from '../metrics/metrics.js';
import type { Ec2InventoryApi, Ec2Target } from './ec2-api.js';
import { fileSource, readInventoryFile } from './files.js';
import { AddressHistory } from './history.js';
import type { InventoryRead } from './parse.js';
import { inventoryView } from './view.js';

export type InventoryConfig = DetectorConfig['inventory'];

const ec2Source = (t: Ec2Target) => `ec2:${t.roleArn ?? 'own'}:${t.region}`;

export interface InventoryOptions {
  metrics: DetectorMetrics;
  logger: Logger;
  now: () => number;
  /** Holdings that ended longer ago are dropped. */
  retentionMs: () => number;
  /** The EC2 calls (default: the SDK, with inventory.ec2.endpoint). */
  ec2Api?: (endpoint: string | null) => Ec2InventoryApi;
  /** How often the files are checked for a change (default 5 s). */
  fileCheckMs?: number;
}

export class Inventory {
  private history = AddressHistory.empty();
  private current: InventoryView;
  private readonly stamps = new Map<string, string>();
  private fileTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private api: Ec2InventoryApi | null = null;
  private polling: Promise<void> | null = null;
  private checking: Promise<void> | null = null;

  constructor(
    private cfg: InventoryConfig,
    private readonly opts: InventoryOptions,
  ) {
    this.current = inventoryView(this.history, cfg.translated_networks);
  }

  /** What the rules read now: one stable view until the next read replaces it. */
  view(): InventoryView {
    return this.current;
  }

  /** Instances holding an address now, instances in the history, holdings kept. */
  get size(): { current: number; instances: number; holdings: number } {
    return this.history.size;
  }

  /** Reads every file; throws naming the first that cannot be read (the start stops there). */
  async load(): Promise<void> {
    for (const [i, path] of this.cfg.files.entries()) {
      try {
        await this.readFile(path, true);
      } catch (err) {
        throw new Error(`inventory.files[${i}] ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  /** Starts watching the files and polling EC2 (the first poll at once). */
  start(): void {
    this.fileTimer = setInterval(() => void this.checkFiles(), this.opts.fileCheckMs ?? 5_000);
    this.fileTimer.unref();
    this.startPolling();
  }

  /** SIGHUP: the new files, networks and EC2 settings; every file is read again. */
  async reconfigure(next: InventoryConfig): Promise<void> {
    const before = this.cfg;
    this.cfg = next;
    for (const path of before.files) {
      if (next.files.includes(path)) continue;
      this.stamps.delete(path);
      this.replace(this.history.withSource(fileSource(path), [], this.opts.now()));
    }
    for (const path of next.files) await this.readFile(path, false).catch(() => undefined);
    if (JSON.stringify(before.ec2) !== JSON.stringify(next.ec2)) {
      this.stopPolling();
      if (before.ec2 !== null) {
        // Regions or accounts no longer listed: what they said goes.
        for (const t of targets(before.ec2)) {
          if (next.ec2 === null || !targets(next.ec2).some((n) => ec2Source(n) === ec2Source(t)))
            this.replace(this.history.withSource(ec2Source(t), [], this.opts.now()));
        }
      }
      if (this.fileTimer !== null) this.startPolling();
    }
    this.replace(this.history);
  }

  /** Lists every region of every account once; a failed one keeps what it listed last. */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => (this.polling = null));
    return this.polling;
  }

  async stop(): Promise<void> {
    if (this.fileTimer) clearInterval(this.fileTimer);
    this.fileTimer = null;
    this.stopPolling();
    await this.polling;
    await this.checking;
  }

  private startPolling(): void {
    const ec2 = this.cfg.ec2;
    if (ec2 === null) return;
    this.pollTimer = setInterval(() => void this.poll(), ec2.refresh);
    this.pollTimer.unref();
    void this.poll();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    this.api?.close();
    this.api = null;
  }

  private async pollOnce(): Promise<void> {
    const ec2 = this.cfg.ec2;
    if (ec2 === null || this.pollTimer === null) return;
    if (this.api === null) {
      // The EC2 SDK is loaded only by a detector that polls.
      const api = this.opts.ec2Api
        ? this.opts.ec2Api(ec2.endpoint)
        : (await import('./ec2-api.js')).sdkEc2InventoryApi({ endpoint: ec2.endpoint });
      if (this.pollTimer === null || this.cfg.ec2 !== ec2) return api.close(); // stopped or reconfigured meanwhile
      this.api = api;
    }
    const api = this.api;
    const { metrics, logger } = this.opts;
    for (const t of targets(ec2)) {
      try {
        const read = await api.describeInstances(t);
        if (this.api !== api) return; // reconfigured meanwhile
        this.replace(this.history.withSource(ec2Source(t), read.instances, this.opts.now()));
        metrics.inventoryReads.inc({ source: 'ec2', outcome: 'ok' });
        this.rejected('ec2', ec2Source(t), read.rejected);
        logger.debug(
          { event: 'inventory_read', source: ec2Source(t), instances: read.instances.length },
          'listed the instances of a region',
        );
      } catch (err) {
        metrics.inventoryReads.inc({ source: 'ec2', outcome: 'failed' });
        logger.warn(
          { event: 'inventory_read_failed', source: ec2Source(t), region: t.region, role_arn: t.roleArn, err },
          `could not list the instances of ${t.region}${t.roleArn ? ` through ${t.roleArn}` : ''}; keeping what it listed last (inventory.ec2)`,
        );
      }
    }
  }

  private checkFiles(): Promise<void> {
    this.checking ??= (async () => {
      for (const path of this.cfg.files) await this.readFile(path, false).catch(() => undefined);
    })().finally(() => (this.checking = null));
    return this.checking;
  }

  /** Reads a file when it changed (or `force`); a failure keeps what it said last and is counted, then thrown. */
  private async readFile(path: string, force: boolean): Promise<void> {
    const { metrics, logger } = this.opts;
    let stamp: string;
    let read: InventoryRead;
    try {
      const s = await stat(path);
      stamp = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (!force && this.stamps.get(path) === stamp) return;
      read = await readInventoryFile(path);
    } catch (err) {
      if (!force && this.stamps.get(path) === 'failed') throw err;
      this.stamps.set(path, 'failed');
      metrics.inventoryReads.inc({ source: 'file', outcome: 'failed' });
      logger.error(
        { event: 'inventory_read_failed', source: fileSource(path), err },
        `could not read inventory file ${path}: ${(err as Error).message}; keeping what it said last (inventory.files)`,
      );
      throw err;
    }
    this.stamps.set(path, stamp);
    this.replace(this.history.withSource(fileSource(path), read.instances, this.opts.now()));
    metrics.inventoryReads.inc({ source: 'file', outcome: 'ok' });
    this.rejected('file', path, read.rejected);
    logger.info({ event: 'inventory_read', source: fileSource(path), instances: read.instances.length }, `read inventory file ${path}`);
  }

  private rejected(source: 'file' | 'ec2', where: string, reasons: readonly string[]): void {
    if (reasons.length === 0) return;
    this.opts.metrics.inventoryRejected.inc({ source }, reasons.length);
    this.opts.logger.warn(
      { event: 'inventory_entries_rejected', source: where, count: reasons.length, first: reasons.slice(0, 5) },
      `left out ${reasons.length} inventory entr${reasons.length === 1 ? 'y' : 'ies'} of ${where}: ${reasons[0]}`,
    );
  }

  private replace(history: AddressHistory): void {
    this.history = history.prunedBefore(this.opts.now() - this.opts.retentionMs());
    this.current = inventoryView(this.history, this.cfg.translated_networks);
    this.opts.metrics.inventoryInstances.set(this.history.size.current);
  }
}

function targets(ec2: NonNullable<InventoryConfig['ec2']>): Ec2Target[] {
  const roles = ec2.role_arns.length > 0 ? ec2.role_arns : [null];
  return roles.flatMap((roleArn) => ec2.regions.map((region) => ({ region, roleArn })));
}
